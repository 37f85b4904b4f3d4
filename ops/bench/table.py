#!/usr/bin/env python3
"""ops/bench/table.py: one markdown table from starling-load JSON reports.

Reads <server>.<scenario>.<run>.json files from a directory; prints, per scenario and
server, the median over runs of each figure (SPEC §9's columns)."""
import json, os, statistics, sys

ORDER = ["broadcast-1k", "broadcast-10k", "channels", "idle", "replay", "slow-base", "slow"]
SERVERS = ["starling", "starling-redis", "nchan"]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def num(v, digits=0, scale=1.0):
    return "–" if v is None else f"{v / scale:,.{digits}f}"


def main(folder):
    runs = {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".json"):
            continue
        server, scenario, _ = name[:-5].split(".")
        with open(os.path.join(folder, name)) as f:
            runs.setdefault((scenario, server), []).append(json.load(f))
    print("| scenario | server | runs | delivered ev/s | ev per server CPU-s | server CPU % | p50 ms | p99 ms "
          "| RSS/conn | RSS end MiB | connected | loss / dup / reord |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    keys = sorted(runs, key=lambda k: (ORDER.index(k[0]) if k[0] in ORDER else 99,
                                        SERVERS.index(k[1]) if k[1] in SERVERS else 99))
    for scenario, server in keys:
        rs = runs[(scenario, server)]
        sv = [r.get("server") or {} for r in rs]
        lat = [r.get("latency", {}) for r in rs]
        has_lat = any(l.get("count", 0) > 0 for l in lat)
        rss = med([s.get("rssPerConnectionBytes") for s in sv]) if scenario in ("idle", "broadcast-10k", "channels") else None
        bad = sum(r["loss"] for r in rs), sum(r["duplicates"] for r in rs), sum(r["reordered"] for r in rs)
        print(f"| {scenario} | {server} | {len(rs)} "
              f"| {num(med([r['deliveredPerSecond'] or None for r in rs]))} "
              f"| {num(med([s.get('eventsPerCPUSecond') for s in sv]))} "
              f"| {num(med([s.get('cpuPercent') for s in sv]), 1)} "
              f"| {num(med([l.get('p50Us') for l in lat]) if has_lat else None, 2, 1000)} "
              f"| {num(med([l.get('p99Us') for l in lat]) if has_lat else None, 2, 1000)} "
              f"| {num(rss, 0) + ' B' if rss is not None else '–'} "
              f"| {num(med([s.get('rssEndBytes') for s in sv]), 1, 1048576)} "
              f"| {num(med([r['connected'] for r in rs]))}/{rs[0]['subscribers']} "
              f"| {bad[0]} / {bad[1]} / {bad[2]} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
