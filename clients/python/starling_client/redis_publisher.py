"""The Redis path: publish straight into Redis through the broker's own script
(ops/redis/publish.lua, shipped in this package as publish.lua; a test keeps the two
identical), with the same calls as the HTTP client.

    pub = RedisPublisher("redis://127.0.0.1:6379/0", retain_events=1000, retain_seconds=3600)
    pub.publish("chat-42", "Hello", event="token")
    with pub.stream("chat-42") as g:
        g.token("Hel"); g.token("lo"); g.final({"done": True})

`retain_events` and `retain_seconds` must be the broker's `--retain-events` and
`--retain-seconds`. Every event carries a producer id and seq, so the retries of a
dropped Redis connection never store an event twice. Errors map to the HTTP client's:
`Refused(409, "channel_final" | "producer_seq_gap" | "producer_fenced")`, a bad event
`Refused(400, "bad_event")`.

On Redis Cluster, give it a redis-py `RedisCluster`, or the seed URLs (what the broker's
`--redis-cluster` takes) with `cluster=True`:

    pub = RedisPublisher(RedisCluster(host="10.0.0.1", port=7000))
    pub = RedisPublisher("redis://10.0.0.1:7000,redis://10.0.0.2:7001", cluster=True)

The script's one key is the channel's `starling:{ch}`, so each call goes to the master of
that key's slot (RedisCluster follows MOVED and ASK). A shard between masters (failover)
answers CLUSTERDOWN or TRYAGAIN or drops the connection: those are retried with the
backoff like a dropped connection, and producer/seq keep the retries from doubling an event.
"""
from __future__ import annotations

import json
import time
from importlib import resources
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import redis

from .errors import Refused, StarlingError, Unavailable
from .events import Event, PublishResult, as_event
from .producers import Producers, new_producer_id
from .retry import Backoff


# Retried with the backoff: a lost connection or a timeout, and on Redis Cluster a shard
# without a master yet (CLUSTERDOWN, MASTERDOWN), a slot in the middle of a move (TRYAGAIN),
# a slot map redis-py could not settle (too many redirections, no node for the slot).
RETRIED = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError, redis.exceptions.TryAgainError,
           redis.exceptions.RedisClusterException)

# The script's error prefixes and the HTTP codes the broker gives them (409 each);
# anything else ("ERR starling: ...") is a bad argument, 400 bad_event.
SCRIPT_ERRORS = {"FINAL": "channel_final", "SEQGAP": "producer_seq_gap", "FENCED": "producer_fenced"}


def script_text() -> str:
    return resources.files("starling_client").joinpath("publish.lua").read_text(encoding="utf-8")


def script_args(e: Event, producer: str = "", seq: Optional[int] = None) -> List[str]:
    """The script's 7 arguments for one event: name data kind conflate final producer seq."""
    if isinstance(e.data, str):
        kind, text = "text", e.data
    else:
        kind, text = "json", json.dumps(e.data, separators=(",", ":"), ensure_ascii=False)
    return [e.event, text, kind, e.conflate or "", "1" if e.final else "0", producer, "" if seq is None else str(seq)]


def cluster_client(seeds: str, **kwargs: Any) -> Any:
    """A redis-py `RedisCluster` from seed URLs, comma-separated (`redis://host:port,...`,
    as the broker's `--redis-cluster`); a password or user in a URL, `rediss://` for TLS.
    It reads the slot map from the first seed that answers."""
    from urllib.parse import urlparse

    from redis.cluster import ClusterNode, RedisCluster

    nodes, options = [], dict(kwargs)
    for url in (u.strip() for u in seeds.split(",") if u.strip()):
        u = urlparse(url if "://" in url else "redis://" + url)
        nodes.append(ClusterNode(u.hostname or "127.0.0.1", u.port or 6379))
        if u.password:
            options.setdefault("password", u.password)
        if u.username:
            options.setdefault("username", u.username)
        if u.scheme == "rediss":
            options.setdefault("ssl", True)
    if not nodes:
        raise ValueError("no seed URL in %r" % seeds)
    return RedisCluster(startup_nodes=nodes, **options)


class RedisPublisher:
    def __init__(self, url_or_client: Any = "redis://127.0.0.1:6379/0", *, retain_events: int = 1000,
                 retain_seconds: int = 3600, backoff: Optional[Backoff] = None, cluster: bool = False) -> None:
        """`url_or_client`: a Redis URL, seed URLs with `cluster=True`, or a redis-py client
        (`Redis` or `RedisCluster`)."""
        if isinstance(url_or_client, str):
            self.redis = cluster_client(url_or_client) if cluster else redis.Redis.from_url(url_or_client)
        else:
            self.redis = url_or_client
        self.retain_events = retain_events
        self.retain_seconds = retain_seconds
        self.backoff = backoff or Backoff()
        self._script = self.redis.register_script(script_text())  # EVALSHA, loads on NOSCRIPT
        self._producers = Producers("redis")

    def close(self) -> None:
        self.redis.close()

    def publish(self, channel: str, data: Any, *, event: str = "message", conflate: Optional[str] = None,
                final: bool = False, lease: Optional[float] = None) -> PublishResult:
        return self.publish_batch(channel, [Event(data, event, conflate, final, lease)])

    def publish_batch(self, channel: str, events: Sequence[Any]) -> PublishResult:
        evs = [as_event(e) for e in events]
        if not evs:
            raise ValueError("a batch needs at least one event")
        with self._producers.lock(channel):
            producer, first = self._producers.reserve(channel, len(evs))
            try:
                return self.call(channel, evs, producer, first)
            except StarlingError:
                self._producers.retire(channel, producer)
                raise

    def publish_many(self, events: Iterable[Tuple[str, Any]]) -> PublishResult:
        """One script call per channel, in the order channels first appear: atomic per
        channel, as over HTTP."""
        groups: Dict[str, List[Event]] = {}
        for ch, e in events:
            groups.setdefault(ch, []).append(as_event(e))
        total = PublishResult(0, None, None)
        for ch, evs in groups.items():
            r = self.publish_batch(ch, evs)
            total.count += r.count
            total.duplicates += r.duplicates
            total.first = total.first or r.first
            total.last = r.last or total.last
            total.channels[ch] = r.channels[ch]
        return total

    def stream(self, channel: str, *, producer: Optional[str] = None) -> "RedisGeneration":
        return RedisGeneration(self, channel, producer)

    def call(self, channel: str, evs: List[Event], producer: str, first_seq: int) -> PublishResult:
        """One script call for an ordered batch, retried on connection errors."""
        from .events import ChannelResult

        lease = next((e.lease for e in evs if e.lease is not None), None)
        args: List[Any] = ["lease", int(lease * 1000)] if lease is not None else []
        args += [self.retain_events, self.retain_seconds]
        for k, e in enumerate(evs):
            args += script_args(e, producer, first_seq + k)
        key = "starling:{%s}" % channel
        last: Optional[BaseException] = None
        for attempt in range(1, self.backoff.attempts + 1):
            if attempt > 1:
                time.sleep(self.backoff.delay(attempt - 1))
            try:
                ids = self._script(keys=[key], args=args)
            except RETRIED as e:
                last = e
                continue
            except redis.ResponseError as e:
                text = str(e)
                code = SCRIPT_ERRORS.get(text.split(" ", 1)[0])
                if code is not None:
                    raise Refused(409, code, text) from e
                raise Refused(400, "bad_event", text) from e
            stored = [i.decode() if isinstance(i, bytes) else i for i in ids if i]
            first, final = (stored[0] if stored else None), (stored[-1] if stored else None)
            return PublishResult(len(stored), first, final, len(ids) - len(stored),
                                 {channel: ChannelResult(len(stored), first, final)}, attempt)
        raise Unavailable(f"the publish script on {key} failed {self.backoff.attempts} times: {last}", last, True)


class RedisGeneration:
    """A generation over Redis: each call is one script call (a Redis round trip), in order."""

    def __init__(self, publisher: RedisPublisher, channel: str, producer: Optional[str]) -> None:
        self.publisher = publisher
        self.channel = channel
        self.producer = producer or new_producer_id("gen")
        self.seq = 0
        self.result = PublishResult(0, None, None)
        self.closed = False

    def __enter__(self) -> "RedisGeneration":
        return self

    def __exit__(self, *exc) -> None:
        self.closed = True

    def token(self, text: str) -> None:
        self.event("token", text)

    def progress(self, data: Any, conflate: Optional[str] = None) -> None:
        self.event("progress", data, conflate=conflate or f"{self.channel}:progress")

    def preview(self, data: Any, conflate: Optional[str] = None) -> None:
        self.event("preview", data, conflate=conflate or f"{self.channel}:preview")

    def event(self, name: str, data: Any, conflate: Optional[str] = None) -> None:
        self._send(Event(data, name, conflate))

    def final(self, data: Any = None, event: str = "final") -> PublishResult:
        self._send(Event({} if data is None else data, event, final=True))
        self.closed = True
        return self.result

    def close(self) -> PublishResult:
        self.closed = True
        return self.result

    def _send(self, e: Event) -> None:
        if self.closed:
            raise StarlingError(f"the generation on {self.channel} is already closed")
        self.seq += 1
        r = self.publisher.call(self.channel, [e], self.producer, self.seq)
        self.result.count += r.count
        self.result.duplicates += r.duplicates
        self.result.first = self.result.first or r.first
        self.result.last = r.last or self.result.last
