"""Publishing over HTTP against the real broker, on both engines: one event, a batch,
several channels, and retries that never store an event twice."""
import pytest

from support import collect
from starling_client import Backoff, Client, Event, Refused, Unavailable

FAST = Backoff(attempts=4, initial=0.02, maximum=0.1)


def texts(events):
    return [(e.event, e.data) for e in events]


def test_publish_one_batch_and_several_channels_are_stored_in_order(broker, channel):
    other = channel + "-b"
    with Client(broker.url) as c:
        r1 = c.publish(channel, "Hel", event="token")
        r2 = c.publish_batch(channel, [Event("lo", "token"), {"data": {"pct": 50}, "event": "progress", "conflate": "p"}, "plain"])
        r3 = c.publish_many([(channel, Event("!", "token")), (other, "elsewhere"), (channel, Event({"ok": True}, "done", final=True))])
        assert (r1.count, r2.count, r3.count) == (1, 3, 3)
        assert r3.channels[channel].count == 2 and r3.channels[other].count == 1
        got = collect(c.subscribe(channel, last_event_id="earliest"))
        assert texts(got) == [("token", "Hel"), ("token", "lo"), ("progress", '{"pct":50}'), ("message", "plain"),
                              ("token", "!"), ("done", '{"ok":true}')]
        assert [e.id for e in got][0] == r1.first and got[-1].id == r3.channels[channel].last
        assert c.channel(channel)["final"] is True
        with pytest.raises(Refused) as refused:
            c.publish(channel, "late")
        assert (refused.value.status, refused.value.code) == (409, "channel_final")


def test_bad_event_is_refused_with_the_brokers_code(broker, channel):
    with Client(broker.url) as c:
        assert c.publish(channel, "first").count == 1  # seq 1 of the client's producer
        with pytest.raises(Refused) as refused:
            c.publish(channel, "x", event="starling.mine")  # seq 2, refused: not stored
        assert refused.value.status == 400 and refused.value.code == "bad_event"
        # The refused producer is retired, so the next publish is not seq 3 of it (which
        # the broker would refuse as a jump ahead, 409 producer_seq_gap) but a fresh one.
        assert c.publish(channel, "ok").count == 1


def test_retry_after_a_dropped_answer_stores_each_event_once(broker, proxy_to, channel):
    # Connection 0 carries the request to the broker (which stores it) and loses the answer.
    proxy = proxy_to(broker, {0: {"drop_answer": True}})
    with Client(proxy.url, backoff=FAST) as c:
        r = c.publish_batch(channel, [Event("a", "token"), Event("b", "token")])
        assert r.attempts == 2 and r.count == 0 and r.duplicates == 2
        r2 = c.publish(channel, "c", event="token")
        assert r2.count == 1
    with Client(broker.url) as direct:
        assert direct.channel(channel)["length"] == 3


def test_retry_of_a_final_event_whose_answer_was_lost_succeeds(broker, proxy_to, channel):
    proxy = proxy_to(broker, {0: {"drop_answer": True}})
    with Client(proxy.url, backoff=FAST) as c:
        r = c.publish(channel, {"done": True}, event="done", final=True)
        assert r.attempts == 2 and r.duplicates == 1
    with Client(broker.url) as direct:
        info = direct.channel(channel)
        assert info["final"] is True and info["length"] == 1


def test_many_channels_retry_stores_each_event_once(broker, proxy_to, channel):
    proxy = proxy_to(broker, {0: {"drop_answer": True}})
    with Client(proxy.url, backoff=FAST) as c:
        r = c.publish_many([(channel, "1"), (channel + "-x", "2"), (channel, "3")])
        assert r.attempts == 2 and r.duplicates == 3
    with Client(broker.url) as direct:
        assert direct.channel(channel)["length"] == 2 and direct.channel(channel + "-x")["length"] == 1


def test_unreachable_broker_raises_unavailable_after_backoff(channel):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here
    with Client(f"http://127.0.0.1:{port}", backoff=FAST) as c:
        with pytest.raises(Unavailable) as err:
            c.publish(channel, "x")
        assert err.value.maybe_stored is False
