#!/usr/bin/env python3
"""Publish into Starling straight from a worker, without HTTP: run the shipped script
(ops/redis/publish.lua) with redis-py. Subscribers on every broker node get the events
exactly as if they had been POSTed. See ops/redis/README.md for the argument convention.

    python3 ops/redis/worker_example.py redis://127.0.0.1:6379/0 my-channel
    python3 ops/redis/worker_example.py --cluster redis://127.0.0.1:7000,redis://127.0.0.1:7001 my-channel

With --cluster the worker talks to a Redis Cluster through redis-py's RedisCluster: the
script's one key, starling:{channel}, picks the slot, and RedisCluster sends each call to
that slot's master (following MOVED and ASK). Nothing else changes.
"""
import json
import pathlib
import sys

import redis

SCRIPT = pathlib.Path(__file__).with_name("publish.lua").read_text()
RETAIN_EVENTS = 1000      # the broker's --retain-events
RETAIN_SECONDS = 3600     # the broker's --retain-seconds


def event(name, data, conflate="", final=False, producer="", seq=""):
    """The script's 7 arguments for one event. A str is sent as its raw text; any other
    value as compact JSON (as the HTTP API does with a JSON value)."""
    if isinstance(data, str):
        kind, text = "text", data
    else:
        kind, text = "json", json.dumps(data, separators=(",", ":"))
    return [name, text, kind, conflate, "1" if final else "0", producer, str(seq)]


def connect(argv):
    """(client, channel) from the command line: a Redis URL, or --cluster and seed URLs."""
    if argv[1] == "--cluster":
        from redis.cluster import ClusterNode, RedisCluster
        seeds = [u.split("://", 1)[-1].rsplit(":", 1) for u in argv[2].split(",")]
        return RedisCluster(startup_nodes=[ClusterNode(host, int(port)) for host, port in seeds]), argv[3]
    return redis.Redis.from_url(argv[1]), argv[2]


def main():
    r, channel = connect(sys.argv)
    publish = r.register_script(SCRIPT)  # EVALSHA, loading the script on NOSCRIPT
    key = "starling:{%s}" % channel

    # One call per batch: stored in order, all or nothing; returns the IDs.
    tokens = ["Hel", "lo", ", wor", "ld"]
    args = [RETAIN_EVENTS, RETAIN_SECONDS]
    for i, t in enumerate(tokens, 1):
        # producer/seq: a retry after a timeout never doubles a token.
        args += event("token", t, producer="worker-1", seq=i)
    ids = publish(keys=[key], args=args)
    print("stored", [i.decode() for i in ids])

    publish(keys=[key], args=[RETAIN_EVENTS, RETAIN_SECONDS] + event("progress", {"pct": 100}, conflate="task-1"))
    try:
        publish(keys=[key], args=[RETAIN_EVENTS, RETAIN_SECONDS] + event("done", {"ok": True}, final=True))
    except redis.exceptions.ResponseError as e:
        # "FINAL ...": the channel was already completed (HTTP would answer 409).
        print("refused:", e)


if __name__ == "__main__":
    main()
