"""A generation as one streaming NDJSON publish, against the real broker on both engines:
tokens reach subscribers while the request is still open, a refusal raises at once, and
a cut upload is resent without storing a token twice."""
import threading
import time

import pytest

from support import collect
from starling_client import Backoff, Client, Refused, mint_token

FAST = Backoff(attempts=5, initial=0.02, maximum=0.2)


def wait_for(predicate, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_streaming_generation_reaches_subscribers_while_open(broker, channel):
    with Client(broker.url) as c:
        seen = []
        sub = c.subscribe(channel, last_event_id="earliest")
        reader = threading.Thread(target=lambda: [seen.append(e) for e in sub], daemon=True)
        reader.start()
        with c.stream(channel) as g:
            g.token("Hel")
            # the first token is delivered before the second is even written
            assert wait_for(lambda: any(e.data == "Hel" for e in seen)), "token not delivered while the request is open"
            g.token("lo 🚀")
            g.progress({"pct": 50})
            g.preview({"url": "/p.png"})
            result = g.final({"text": "Hello 🚀"})
        assert result.count == 5 and result.duplicates == 0
        reader.join(10)
        assert not reader.is_alive(), "the subscription did not end after the final event"
        assert [(e.event, e.data) for e in seen] == [
            ("token", "Hel"), ("token", "lo 🚀"), ("progress", '{"pct":50}'), ("preview", '{"url":"/p.png"}'),
            ("final", '{"text":"Hello 🚀"}')]
        assert c.channel(channel)["final"] is True


def test_stream_refused_mid_generation_raises_at_once(broker, channel):
    with Client(broker.url) as c:
        g = c.stream(channel)
        g.token("a")
        assert wait_for(lambda: c.channel(channel)["length"] == 1)
        c.publish(channel, "someone else ended it", final=True)
        sent = time.monotonic()
        g.token("b")  # the broker refuses this line and answers at once
        assert wait_for(lambda: g.error is not None, 2.0), "no early answer"
        assert time.monotonic() - sent < 0.25, "the refusal must arrive while the request is open, not at its end"
        assert isinstance(g.error, Refused) and (g.error.status, g.error.code) == (409, "channel_final")
        with pytest.raises(Refused):
            g.token("c")
        with pytest.raises(Refused):
            g.close()


def test_stream_line_too_large_is_refused_at_once(start_broker, channel):
    b = start_broker("--max-event-bytes", "1024")
    with Client(b.url) as c:
        g = c.stream(channel)
        g.token("fine")
        g.token("x" * 5000)
        assert wait_for(lambda: g.error is not None, 2.0)
        assert (g.error.status, g.error.code) == (413, "event_too_large")
        with pytest.raises(Refused):
            g.token("more")
        # The line before the refused one is stored; the refusal may overtake its store.
        assert wait_for(lambda: c.channel(channel)["length"] == 1, 2.0)


def test_stream_bad_event_name_is_refused_with_400(broker, channel):
    with Client(broker.url) as c:
        with pytest.raises(Refused) as refused:
            with c.stream(channel) as g:
                g.event("starling.reserved", "x")
                assert wait_for(lambda: g.error is not None, 2.0)
                g.token("after")
        assert (refused.value.status, refused.value.code) == (400, "bad_event")


def test_stream_without_a_token_is_refused_401(start_broker, channel):
    b = start_broker("--jwt-secret", "s3cret-for-tests-0123456789abcdef")
    with Client(b.url) as c:
        g = c.stream(channel)
        g.token("a")
        assert wait_for(lambda: g.error is not None, 2.0)
        assert (g.error.status, g.error.code) == (401, "unauthorized")
    token = mint_token("s3cret-for-tests-0123456789abcdef", publish=[channel])
    with Client(b.url, token=token) as c:
        with c.stream(channel) as g:
            g.token("a")
            assert g.final().count == 2


def test_cut_upload_is_resent_and_each_token_stored_once(broker, proxy_to, channel):
    # Connection 0 dies after 1500 bytes of upload; the generation reconnects and resends.
    proxy = proxy_to(broker, {0: {"cut_up": 1500}})
    with Client(proxy.url, backoff=FAST) as c:
        with c.stream(channel) as g:
            for k in range(40):
                g.token(f"t{k} ")
                time.sleep(0.002)
            result = g.final("end")
        assert result.attempts >= 2 and proxy.connections >= 2
        assert result.duplicates > 0  # the resent lines the broker already had
    with Client(broker.url) as direct:
        got = collect(direct.subscribe(channel, last_event_id="earliest"))
    assert [e.data for e in got] == [f"t{k} " for k in range(40)] + ["end"]
