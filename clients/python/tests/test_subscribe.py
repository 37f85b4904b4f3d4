"""Subscribing against the real broker on both engines: resume after a cut stream with
nothing lost or repeated, the end at the final event, typed notices, token refresh on
starling.expired, heartbeats, several channels."""
import time

from support import collect
from starling_client import Client, Event, Expired, Gap, Notice, Refused, mint_token

import pytest


def test_resume_after_a_cut_stream_loses_and_repeats_nothing(broker, proxy_to, channel):
    with Client(broker.url) as c:
        c.publish_batch(channel, [Event(f"tok{k:02d}-é🚀", "token") for k in range(30)])
        c.publish(channel, "bye", event="done", final=True)
    # The first stream is cut after 700 bytes, inside an event (and maybe a character).
    proxy = proxy_to(broker, {0: {"cut_down": 700}})
    with Client(proxy.url) as c:
        sub = c.subscribe(channel, last_event_id="earliest")
        got = collect(sub)
    assert [e.data for e in got] == [f"tok{k:02d}-é🚀" for k in range(30)] + ["bye"]
    assert sub.connects >= 3  # the cut one, the resumed one, the 204


def test_live_subscription_ends_at_the_final_event(broker, channel):
    with Client(broker.url) as c:
        sub = c.subscribe(channel)
        import threading

        got = []
        t = threading.Thread(target=lambda: got.extend(collect(sub, timeout=10)), daemon=True)
        t.start()
        deadline = time.monotonic() + 5  # live only: publish once the stream is open
        while c.channel(channel)["subscribers"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        c.publish(channel, "one", event="token")
        c.publish(channel, "two", event="done", final=True)
        t.join(5)  # the broker's retry is 2 s: ending within 5 s of the final is not a retry later
        assert not t.is_alive()
        assert [e.data for e in got] == ["one", "two"]
        assert sub.last_event_id == got[-1].id
        # a new live subscription to the completed channel ends at once (204)
        assert collect(c.subscribe(channel), timeout=5) == []


def test_gap_notice_is_a_typed_event(broker, channel):
    with Client(broker.url) as c:
        first = c.publish_batch(channel, ["a", "b"]).first
        sub = c.subscribe(channel, last_event_id="1-0")  # older than anything this channel holds
        got = collect(sub, until=lambda es: len(es) == 3)
    assert isinstance(got[0], Gap) and isinstance(got[0], Notice)
    assert got[0].channel == channel and got[0].requested == "1-0" and got[0].resumed_from == first
    assert got[0].id is None and [e.data for e in got[1:]] == ["a", "b"]
    assert sub.last_event_id == got[-1].id


def test_expired_token_is_replaced_and_nothing_is_lost(start_broker, channel):
    secret = "s3cret-for-tests-0123456789abcdef"
    b = start_broker("--jwt-secret", secret)
    minted = []

    def short_token():
        # The broker allows 5 s of skew, so exp 3 s ago leaves about two seconds: expiring
        # during the 3 s of publishing, yet enough for a busy machine to connect with it.
        minted.append(time.time())
        return mint_token(secret, subscribe=[channel], ttl=-3)

    publisher = Client(b.url, token=mint_token(secret, publish=[channel]))
    sub = Client(b.url).subscribe(channel, last_event_id="earliest", token=short_token)
    import threading

    got = []
    t = threading.Thread(target=lambda: got.extend(collect(sub, timeout=20)), daemon=True)
    t.start()
    for k in range(25):
        publisher.publish(channel, f"t{k}", event="token")
        time.sleep(0.12)
    publisher.publish(channel, "end", event="done", final=True)
    publisher.close()
    t.join(15)
    assert not t.is_alive()
    data = [e.data for e in got if not isinstance(e, Notice)]
    assert data == [f"t{k}" for k in range(25)] + ["end"]
    assert any(isinstance(e, Expired) for e in got), "the stream outlived no token: test too short"
    assert len(minted) >= 2


def test_static_expired_token_ends_with_refused(start_broker, channel):
    secret = "s3cret-for-tests-0123456789abcdef"
    b = start_broker("--jwt-secret", secret)
    with Client(b.url, token=mint_token(secret, subscribe=[channel], ttl=-10)) as c:
        with pytest.raises(Refused) as refused:
            collect(c.subscribe(channel))
        assert refused.value.status == 401


def test_heartbeats_reach_the_callback(start_broker, channel):
    b = start_broker("--heartbeat", "0.2")
    beats = []
    with Client(b.url) as c:
        sub = c.subscribe(channel, on_heartbeat=beats.append)
        import threading

        got = []
        t = threading.Thread(target=lambda: got.extend(collect(sub, timeout=10)), daemon=True)
        t.start()
        time.sleep(1.0)
        c.publish(channel, "x", final=True)
        t.join(5)
    assert len(beats) >= 2 and [e.data for e in got] == ["x"]


def test_several_channels_in_one_stream(broker, channel):
    a, b2 = channel + "-a", channel + "-b"
    with Client(broker.url) as c:
        c.publish(a, "to a", event="token")
        c.publish(b2, {"n": 1})
        c.publish(a, "a done", final=True)
        c.publish(b2, "b done", final=True)
        got = collect(c.subscribe([a, b2], last_event_id="earliest"))
    assert sorted((e.channel, e.event, e.data) for e in got) == sorted([
        (a, "token", "to a"), (b2, "message", '{"n":1}'), (a, "message", "a done"), (b2, "message", "b done")])


def test_a_503_is_retried_no_sooner_than_retry_after(start_broker, channel):
    import socket
    import threading

    b = start_broker("--max-connections", "2")
    holders = [socket.create_connection(("127.0.0.1", b.port)) for _ in range(2)]  # all the broker allows
    time.sleep(0.1)
    from starling_client import Backoff

    # The client's own backoff alone would retry after 5-10 ms.
    c = Client(b.url, backoff=Backoff(attempts=5, initial=0.01, maximum=0.01))
    sub = c.subscribe(channel)
    got, started = [], time.monotonic()
    t = threading.Thread(target=lambda: got.extend(collect(sub, timeout=10)), daemon=True)
    t.start()
    time.sleep(0.3)
    for h in holders:
        h.close()  # the next attempt finds room, and so does the publisher
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sub.connects < 2:
        time.sleep(0.01)
    opened = time.monotonic()
    with Client(b.url) as publisher:
        time.sleep(0.2)
        publisher.publish(channel, "x", final=True)
    t.join(5)
    assert [e.data for e in got] == ["x"]
    assert sub.connects >= 2 and opened - started >= 0.99, f"retried after {opened - started:.3f} s (Retry-After: 1)"
