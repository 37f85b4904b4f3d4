#!/usr/bin/env python3
"""ops/bench/table.py: markdown tables from starling-load JSON reports.

Reads <server>.<scenario>.<run>.json files from a directory; prints, per scenario and
server, the median over runs of each figure (SPEC §9's columns) with the spread
(min–max) beside it, then, per scenario, each server's deliveries per server CPU-second
as a share of the floor's, as a ratio to Nchan's (a Redis engine against Nchan with its
Redis storage when that ran) and, for the Redis engines, as a ratio to the memory engine's
(SPEC §9: within 1.5×), and the runs that other processes disturbed (they took CPU on the
run's cores while it measured)."""
import json, os, statistics, sys

ORDER = ["broadcast-1k", "broadcast-10k", "channels", "channels-flat", "channels-light", "channels-workers", "idle", "replay", "slow-base", "slow"]
SERVERS = ["starling", "starling-paced", "starling-auth", "starling-redis", "starling-redis-paced", "starling-redis-unpaced", "starling-redis-cluster",
           "starling-redis-cluster-wait", "nchan", "nchan-redis", "floor"]
DISTURBED = 5.0  # % of a core used by other processes on the run's cores


def present(values):
    return [v for v in values if v is not None]


def med(values):
    values = present(values)
    return statistics.median(values) if values else None


def num(v, digits=0, scale=1.0):
    return "–" if v is None else f"{v / scale:,.{digits}f}"


def spread(values, digits=0, scale=1.0, unit=""):
    """median (min–max); just the median for one run."""
    values = present(values)
    if not values:
        return "–"
    m = num(statistics.median(values), digits, scale) + unit
    if len(values) == 1:
        return m
    return f"{m} ({num(min(values), digits, scale)}–{num(max(values), digits, scale)})"


def ratio(a, b):
    return None if a is None or not b else a / b


def peer_ratio(mine, peer):
    """median ratio, with the range a pair of runs can give (worst against best, best against worst)."""
    if not peer:
        return "–"
    m = ratio(statistics.median(mine), statistics.median(peer))
    lo, hi = ratio(min(mine), max(peer)), ratio(max(mine), min(peer))
    return f"{m:.2f}" + (f" ({lo:.2f}–{hi:.2f})" if len(mine) > 1 or len(peer) > 1 else "")


def publish_latency(rs):
    """Publish round trips (request to answer), p50 / p99 medians over the runs; '–' for a
    report without them (a scenario that publishes nothing, or an older load tool)."""
    pub = [r.get("publishLatency") or {} for r in rs]
    if not any(p.get("count", 0) > 0 for p in pub):
        return "–"
    return f"{num(med([p.get('p50Us') for p in pub]), 2, 1000)} / {num(med([p.get('p99Us') for p in pub]), 2, 1000)}"


def load(folder):
    runs = {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".json"):
            continue
        server, scenario, run = name[:-5].split(".")
        with open(os.path.join(folder, name)) as f:
            report = json.load(f)
        report["_run"] = run
        runs.setdefault((scenario, server), []).append(report)
    return runs


def key(k):
    return (ORDER.index(k[0]) if k[0] in ORDER else 99, SERVERS.index(k[1]) if k[1] in SERVERS else 99)


def main(folder):
    runs = load(folder)
    print("| scenario | server | runs | delivered ev/s | ev per server CPU-s | server CPU % | p50 ms | p99 ms "
          "| publish p50 / p99 ms | ev/read | client CPU % | others % | RSS/conn | RSS end MiB | connected | loss / dup / reord |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    disturbed = []
    for scenario, server in sorted(runs, key=key):
        rs = runs[(scenario, server)]
        sv = [r.get("server") or {} for r in rs]
        lat = [r.get("latency", {}) for r in rs]
        has_lat = any(l.get("count", 0) > 0 for l in lat)
        per_conn = scenario in ("idle", "broadcast-10k", "channels", "channels-flat", "channels-light")
        bad = sum(r["loss"] for r in rs), sum(r["duplicates"] for r in rs), sum(r["reordered"] for r in rs)
        for r, s in zip(rs, sv):
            if (s.get("otherCPUPercent") or 0) > DISTURBED:
                disturbed.append(f"{server} {scenario} run {r['_run']}: others {s['otherCPUPercent']:.1f} %"
                                 f" of a core on cores {','.join(map(str, s.get('cores', [])))}")
        print(f"| {scenario} | {server} | {len(rs)} "
              f"| {spread([r['deliveredPerSecond'] or None for r in rs])} "
              f"| {spread([s.get('eventsPerCPUSecond') for s in sv])} "
              f"| {spread([s.get('cpuPercent') for s in sv], 1)} "
              f"| {spread([l.get('p50Us') for l in lat], 2, 1000) if has_lat else '–'} "
              f"| {spread([l.get('p99Us') for l in lat], 2, 1000) if has_lat else '–'} "
              f"| {publish_latency(rs)} "
              f"| {spread([r.get('eventsPerRead') or None for r in rs], 1)} "
              f"| {spread([r.get('clientCPUPercent') for r in rs], 0)} "
              f"| {spread([s.get('otherCPUPercent') for s in sv], 1)} "
              f"| {spread([s.get('rssPerConnectionBytes') for s in sv], 0, 1, ' B') if per_conn else '–'} "
              f"| {spread([s.get('rssEndBytes') for s in sv], 1, 1048576)} "
              f"| {num(med([r['connected'] for r in rs]))}/{rs[0]['subscribers']} "
              f"| {bad[0]} / {bad[1]} / {bad[2]} |")

    # Against the peers: medians of deliveries per server CPU-second, with the range a
    # pair of runs can give (worst against best, best against worst).
    peers = []
    for scenario in sorted({s for s, _ in runs}, key=lambda s: ORDER.index(s) if s in ORDER else 99):
        eff = {srv: present([(r.get("server") or {}).get("eventsPerCPUSecond") for r in rs])
               for (sc, srv), rs in runs.items() if sc == scenario}
        floor, nchan, nchan_redis, memory = eff.get("floor"), eff.get("nchan"), eff.get("nchan-redis"), eff.get("starling")
        if not floor and not nchan and not nchan_redis and not memory:
            continue
        for server in sorted(eff, key=lambda s: SERVERS.index(s) if s in SERVERS else 99):
            if server == "floor" or not eff[server]:
                continue
            mine = eff[server]
            redis_engine = server.startswith("starling-redis")
            nchan_peer = nchan_redis if redis_engine and nchan_redis else nchan
            if server.startswith("nchan"):
                nchan_peer = None
            # Against the memory engine as it runs by default: starling-redis-paced paces its
            # calls to Redis (--redis-pace), which the memory engine does not make.
            same = memory
            cells = [peer_ratio(mine, floor), peer_ratio(mine, nchan_peer),
                     peer_ratio(mine, same) if redis_engine or server == "starling-auth" else "–"]
            if redis_engine and nchan_peer:
                cells[1] += " (Nchan+Redis)" if nchan_peer is nchan_redis else ""
            peers.append(f"| {scenario} | {server} | {spread(mine)} | {cells[0]} | {cells[1]} | {cells[2]} |")
    if peers:
        print()
        print("| scenario | server | ev per server CPU-s | share of floor | ratio to Nchan | ratio to memory engine |")
        print("|---|---|---|---|---|---|")
        print("\n".join(peers))
    if disturbed:
        print()
        print(f"Disturbed runs (other processes above {DISTURBED:.0f} % of a core on the run's cores):")
        for d in disturbed:
            print(f"- {d}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
