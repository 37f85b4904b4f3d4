"""Stop and leases against the real broker on both engines: a Stop reaches the worker's
open generation as `Cancelled` within 50 ms and subscribers as a final
`starling.cancelled`; a lease that nobody renews ends the channel with
`starling.abandoned`, while an open generation holds its lease."""
import threading
import time

import pytest

from support import collect
from starling_client import Abandoned, CancelledNotice, Cancelled, Client


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.001)
    return False


def test_stop_raises_cancelled_in_the_worker_within_50_ms(broker, channel):
    with Client(broker.url) as c, Client(broker.url) as stopper:
        g = c.stream(channel)
        g.token("Hel")
        assert wait_for(lambda: c.channel(channel)["length"] == 1)
        started = time.monotonic()
        answer = stopper.cancel(channel, reason="the user pressed Stop")
        assert wait_for(lambda: g.error is not None, 2.0)
        elapsed = time.monotonic() - started
        assert isinstance(g.error, Cancelled) and (g.error.status, g.error.code) == (409, "channel_cancelled")
        assert elapsed < 0.05, f"the worker learned of the Stop after {elapsed * 1000:.1f} ms"
        assert answer["state"] == "cancelled"
        with pytest.raises(Cancelled):
            g.token("lo")
        with pytest.raises(Cancelled):
            g.close()
        got = collect(c.subscribe(channel, last_event_id="earliest"))
        assert got[0].data == "Hel" and isinstance(got[-1], CancelledNotice) and len(got) == 2
        assert got[-1].reason == "the user pressed Stop" and got[-1].id == answer["id"]
        assert c.channel(channel)["final"] is True
        with pytest.raises(Cancelled):
            c.publish(channel, "late")


def test_unrenewed_lease_ends_the_channel_as_abandoned(broker, channel):
    with Client(broker.url) as c:
        c.publish(channel, "started", event="token", lease=1)  # then the worker "dies"
        got = collect(c.subscribe(channel, last_event_id="earliest"), timeout=10)
    assert got[0].data == "started" and isinstance(got[-1], Abandoned) and len(got) == 2


def test_open_generation_holds_its_lease(broker, channel):
    with Client(broker.url) as c:
        with c.stream(channel, lease=1) as g:
            g.token("a")
            time.sleep(2.2)  # twice the lease with nothing sent: the open request holds it
            g.token("b")
            g.final("done")
        got = collect(c.subscribe(channel, last_event_id="earliest"))
    assert [e.data for e in got] == ["a", "b", "done"] and not any(isinstance(e, Abandoned) for e in got)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_stop_whose_answer_is_lost_is_retried_and_ends_the_channel_once(broker, proxy_to, channel, asynchronous):
    """The proxy forwards the first Stop and drops its answer: the client retries, the broker
    answers the repeat `409 channel_cancelled`, and the client reports the Stop done with
    the `starling.cancelled` event's ID; subscribers see that event once."""
    import asyncio

    from starling_client import AsyncClient, Backoff

    fast = Backoff(attempts=4, initial=0.02, maximum=0.1)
    proxy = proxy_to(broker, {0: {"drop_answer": True}})
    with Client(broker.url) as direct:
        direct.publish(channel, "Hel", event="token")
        if asynchronous:
            async def stop():
                async with AsyncClient(proxy.url, backoff=fast) as c:
                    return await c.cancel(channel, reason="Stop")
            answer = asyncio.run(stop())
        else:
            with Client(proxy.url, backoff=fast) as c:
                answer = c.cancel(channel, reason="Stop")
        assert proxy.connections >= 2, "the first answer was dropped, so the Stop was sent again"
        got = collect(direct.subscribe(channel, last_event_id="earliest"))
        assert [type(e) for e in got].count(CancelledNotice) == 1 and got[0].data == "Hel" and len(got) == 2
        assert answer == {"id": got[-1].id, "state": "cancelled"}
