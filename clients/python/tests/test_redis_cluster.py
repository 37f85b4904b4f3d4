"""The Redis path on Redis Cluster: a worker publishing through redis-py's RedisCluster with
the shipped script, against the test command's real 6-node cluster
($STARLING_TEST_REDIS_CLUSTER). Each call is routed by its one key, the channel's
`starling:{ch}`: the events land in that key's stream on the master of its slot, the
notification leaves from that shard (PUBLISH, or SPUBLISH once the script uses sharded
pub/sub: the test listens for both), and an SSE subscriber of a broker running on the
cluster (`--redis-cluster`) gets them, on every shard."""
import threading
import time
import uuid
from typing import Dict, List, Tuple

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from support import Broker, redis_cluster_seeds
from starling_client import Client, Event, Refused, RedisPublisher


def seed_nodes() -> List[Tuple[str, int]]:
    out = []
    for url in redis_cluster_seeds().split(","):
        host, port = url.strip().split("://", 1)[1].rsplit(":", 1)
        out.append((host, int(port.split("/")[0])))
    return out


@pytest.fixture
def cluster():
    rc = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in seed_nodes()])
    yield rc
    rc.close()


def plain(port: int) -> redis.Redis:
    """A plain connection to one node: what it holds, not what a cluster client routes to."""
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True)


def masters() -> Dict[int, List[Tuple[int, int]]]:
    """port -> slot ranges of every master serving slots, from a seed's CLUSTER NODES."""
    for host, port in seed_nodes():
        try:
            text = plain(port).execute_command("CLUSTER", "NODES")  # as text (no response callback)
        except redis.ConnectionError:
            continue
        out: Dict[int, List[Tuple[int, int]]] = {}
        for line in text.splitlines():
            f = line.split()
            if "master" not in f[2] or "fail" in f[2] or len(f) < 9:
                continue
            ranges = []
            for s in f[8:]:
                if s.startswith("["):
                    continue
                a, _, b = s.partition("-")
                ranges.append((int(a), int(b or a)))
            out[int(f[1].split("@")[0].rsplit(":", 1)[1])] = ranges
        return out
    raise RuntimeError("no seed of the test cluster answers")


def owner(key: str) -> int:
    """The port of the master serving the key's slot (CLUSTER KEYSLOT, CLUSTER NODES)."""
    slot = plain(seed_nodes()[0][1]).execute_command("CLUSTER KEYSLOT", key)
    for port, ranges in masters().items():
        if any(a <= slot <= b for a, b in ranges):
            return port
    raise RuntimeError(f"no master serves slot {slot}")


def spread_channels() -> List[str]:
    """One new channel on each master."""
    found: Dict[int, str] = {}
    base = f"py-cl-{uuid.uuid4().hex[:10]}"
    for i in range(1000):
        ch = f"{base}-{i}"
        found.setdefault(owner("starling:{%s}" % ch), ch)
        if len(found) == len(masters()):
            return [found[p] for p in sorted(found)]
    raise RuntimeError("could not place a channel on every master")


def test_cluster_worker_stores_each_channel_on_its_slots_master(cluster):
    channels = spread_channels()
    assert len(channels) == 3, "a channel on each of the three masters"
    pub = RedisPublisher(cluster)
    try:
        for ch in channels:
            key = "starling:{%s}" % ch
            r = pub.publish_batch(ch, [Event("Hel", "token"), Event("lo", "token")])
            done = pub.publish(ch, {"text": "Hello"}, event="done", final=True)
            assert (r.count, done.count) == (2, 1)
            # In the stream on the master of the key's slot, nowhere else.
            home = owner(key)
            entries = plain(home).xrange(key)
            assert [e[0] for e in entries] == [r.first, r.last, done.first]
            assert [(f["e"], f["d"]) for _, f in entries] == [("token", "Hel"), ("token", "lo"), ("done", '{"text":"Hello"}')]
            assert entries[-1][1].get("f") == "1"
            for other in masters():
                if other != home:
                    with pytest.raises(redis.exceptions.MovedError) as moved:
                        plain(other).xlen(key)
                    assert moved.value.port == home
            # The script's refusals keep their HTTP codes through the cluster client.
            with pytest.raises(Refused) as refused:
                pub.publish(ch, "late")
            assert (refused.value.status, refused.value.code) == (409, "channel_final")
    finally:
        pub.close()


def test_cluster_seed_urls_with_cluster_true_and_the_notification_leaves_the_right_shard():
    ch = spread_channels()[1]
    key = "starling:{%s}" % ch
    home = owner(key)
    # Listen on the channel's master both ways: classic pub/sub (PUBLISH in the script) and
    # sharded pub/sub (SPUBLISH); exactly the one the script uses gets the notification.
    classic = plain(home).pubsub()
    classic.subscribe(key)
    sharded = plain(home).pubsub()
    sharded.ssubscribe(key)
    for p in (classic, sharded):
        assert p.get_message(timeout=2)["type"] in ("subscribe", "ssubscribe")
    pub = RedisPublisher(redis_cluster_seeds(), cluster=True)
    try:
        r = pub.publish(ch, "ping", event="token")
        got = []
        deadline = time.time() + 5
        while not got and time.time() < deadline:
            m = classic.get_message(timeout=0.1)
            if m and m["type"] == "message":
                got.append(("PUBLISH", m["data"]))
            m = sharded.get_sharded_message(timeout=0.1)
            if m and m["type"] == "smessage":
                got.append(("SPUBLISH", m["data"]))
        # and nothing on the other listener a moment later
        m = classic.get_message(timeout=0.3)
        if m and m["type"] == "message":
            got.append(("PUBLISH", m["data"]))
        m = sharded.get_sharded_message(timeout=0.3)
        if m and m["type"] == "smessage":
            got.append(("SPUBLISH", m["data"]))
        assert len(got) == 1, f"one notification on the channel's shard: {got}"
        assert r.first in got[0][1] and "ping" in got[0][1]
        assert plain(home).xlen(key) == 1
    finally:
        pub.close()
        classic.close()
        sharded.close()


def test_cluster_worker_reaches_sse_subscribers_of_a_broker_on_the_cluster(cluster):
    broker = Broker("--redis-cluster", redis_cluster_seeds())
    pub = RedisPublisher(cluster)
    channels = spread_channels()
    got = {ch: [] for ch in channels}
    replayed = {ch: threading.Event() for ch in channels}
    errors = []

    def read(ch):
        try:
            with Client(broker.url) as c:
                for e in c.subscribe(ch, last_event_id="earliest"):   # ends at the final event
                    got[ch].append((e.event, e.data))
                    replayed[ch].set()
        except Exception as e:  # noqa: BLE001 - reported to the test
            errors.append(e)
            replayed[ch].set()

    try:
        for ch in channels:
            pub.publish(ch, "before", event="token")                  # from the stream (replay)
        readers = [threading.Thread(target=read, args=(ch,), daemon=True) for ch in channels]
        for t in readers:
            t.start()
        for ch in channels:
            assert replayed[ch].wait(10), f"nothing replayed on {ch}"
        for ch in channels:                                            # live, once subscribed
            pub.publish_batch(ch, [Event("live-1", "token"), Event("live-2", "token")])
            pub.publish(ch, {"done": True}, event="done", final=True)
        for t in readers:
            t.join(15)
        assert not errors, errors
        for ch in channels:
            assert got[ch] == [("token", "before"), ("token", "live-1"), ("token", "live-2"), ("done", '{"done":true}')], ch
    finally:
        pub.close()
        broker.stop()
