"""The Redis path: events published with redis-py through the shipped script reach the
real broker's HTTP subscribers (Redis engine), with the HTTP client's API and errors."""
import pathlib
from urllib.parse import urlparse

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from support import ROOT, Broker, CuttingProxy, collect, redis_url
from starling_client import Abandoned, Client, Event, Refused, RedisPublisher


@pytest.fixture
def redis_broker():
    b = Broker("--redis", redis_url())
    yield b
    b.stop()


def test_redis_script_is_the_shipped_one():
    shipped = (ROOT / "ops" / "redis" / "publish.lua").read_text()
    packaged = (pathlib.Path(__file__).resolve().parents[1] / "starling_client" / "publish.lua").read_text()
    assert packaged == shipped, "run ops/redis/embed-script.sh after editing ops/redis/publish.lua"


def test_redis_publisher_reaches_http_subscribers(redis_broker, channel):
    pub = RedisPublisher(redis_url())
    try:
        r1 = pub.publish(channel, "Hel", event="token")
        r2 = pub.publish_batch(channel, [Event("lo", "token"), Event({"pct": 50}, "progress", conflate="p")])
        r3 = pub.publish_many([(channel, Event(" wor", "token")), (channel + "-side", "side")])
        with pub.stream(channel) as g:
            g.token("ld")
            g.preview({"url": "/x.png"})
            done = g.final({"text": "Hello world"})
        assert (r1.count, r2.count, r3.count, done.count) == (1, 2, 2, 3)
        with Client(redis_broker.url) as c:
            got = collect(c.subscribe(channel, last_event_id="earliest"))
            assert [(e.event, e.data) for e in got] == [
                ("token", "Hel"), ("token", "lo"), ("progress", '{"pct":50}'), ("token", " wor"), ("token", "ld"),
                ("preview", '{"url":"/x.png"}'), ("final", '{"text":"Hello world"}')]
            assert got[0].id == r1.first
            assert c.channel(channel)["final"] is True
        with pytest.raises(Refused) as refused:
            pub.publish(channel, "late")
        assert (refused.value.status, refused.value.code) == (409, "channel_final")
    finally:
        pub.close()


def test_redis_retry_after_a_dropped_reply_stores_once(redis_broker, channel):
    url = urlparse(redis_url())
    direct = redis.Redis(host=url.hostname, port=url.port)
    from starling_client.redis_publisher import script_text
    direct.script_load(script_text())  # so the first EVALSHA stores rather than answers NOSCRIPT
    proxy = CuttingProxy(url.port, {0: {"drop_answer_after": b"EVALSHA"}})
    try:
        via_proxy = redis.Redis(host="127.0.0.1", port=proxy.port, retry=Retry(NoBackoff(), 0))
        pub = RedisPublisher(via_proxy)
        r = pub.publish_batch(channel, [Event("a", "token"), Event("b", "token")])
        assert r.attempts == 2 and r.count == 0 and r.duplicates == 2
        assert direct.xlen("starling:{%s}" % channel) == 2
        with Client(redis_broker.url) as c:
            assert c.channel(channel)["length"] == 2
    finally:
        proxy.close()
        direct.close()


def test_redis_script_refusals_carry_the_http_codes(redis_broker, channel):
    pub = RedisPublisher(redis_url())
    try:
        assert pub.call(channel, [Event("a")], "worker-1", 1).count == 1
        assert pub.call(channel, [Event("a")], "worker-1", 1).duplicates == 1   # a repeat
        with pytest.raises(Refused) as gap:
            pub.call(channel, [Event("c")], "worker-1", 3)                        # 2 was skipped
        assert (gap.value.status, gap.value.code) == (409, "producer_seq_gap")
        with pytest.raises(Refused) as bad:
            pub.publish(channel, "x", event="starling.mine")
        assert (bad.value.status, bad.value.code) == (400, "bad_event")
    finally:
        pub.close()


def test_redis_path_lease_ends_an_unrenewed_channel_as_abandoned(redis_broker, channel):
    pub = RedisPublisher(redis_url())
    try:
        pub.publish(channel, "started", event="token", lease=1)  # then the worker "dies"
        with Client(redis_broker.url) as c:
            got = collect(c.subscribe(channel, last_event_id="earliest"), timeout=10)
        assert got[0].data == "started" and isinstance(got[-1], Abandoned) and len(got) == 2
    finally:
        pub.close()
