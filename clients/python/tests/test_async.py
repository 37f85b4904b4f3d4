"""The asyncio client against the real broker on both engines: publish with retries that
store once, a generation whose refusal raises, a subscription that resumes after a cut."""
import asyncio
import time

import pytest

from starling_client import AsyncClient, Backoff, Event, Refused

FAST = Backoff(attempts=4, initial=0.02, maximum=0.1)


async def gather(sub, limit=100, timeout=10.0):
    out = []

    async def run():
        async for e in sub:
            out.append(e)
            if len(out) >= limit:
                break

    await asyncio.wait_for(run(), timeout)
    return out


def test_async_publish_and_subscribe_to_the_end(broker, channel):
    async def main():
        async with AsyncClient(broker.url) as c:
            await c.publish(channel, "Hel", event="token")
            await c.publish_batch(channel, [Event("lo", "token"), {"data": {"pct": 50}, "event": "progress"}])
            r = await c.publish_many([(channel, Event("!", "token")), (channel + "-b", "x"), (channel, Event("end", "done", final=True))])
            assert r.channels[channel].count == 2
            got = await gather(c.subscribe(channel, last_event_id="earliest"))
            assert [(e.event, e.data) for e in got] == [("token", "Hel"), ("token", "lo"), ("progress", '{"pct":50}'),
                                                         ("token", "!"), ("done", "end")]
            assert (await c.channel(channel))["final"] is True
            with pytest.raises(Refused):
                await c.publish(channel, "late")

    asyncio.run(main())


def test_async_retry_after_a_dropped_answer_stores_once(broker, proxy_to, channel):
    proxy = proxy_to(broker, {0: {"drop_answer": True}})

    async def main():
        async with AsyncClient(proxy.url, backoff=FAST) as c:
            r = await c.publish_batch(channel, ["a", "b", "c"])
            assert r.attempts == 2 and r.duplicates == 3 and r.count == 0
        async with AsyncClient(broker.url) as direct:
            assert (await direct.channel(channel))["length"] == 3

    asyncio.run(main())


def test_async_generation_streams_and_raises_on_refusal(broker, channel):
    async def main():
        async with AsyncClient(broker.url) as c:
            async with c.stream(channel) as g:
                g.token("Hel")
                g.token("lo")
                result = await g.final({"text": "Hello"})
            assert result.count == 3
            g2 = c.stream(channel + "-2")
            with pytest.raises(Refused):  # the refusal also ends the block
                async with g2:
                    g2.token("a")
                    while (await c.channel(channel + "-2"))["length"] == 0:
                        await asyncio.sleep(0.005)
                    await c.publish(channel + "-2", "ended elsewhere", final=True)
                    sent = time.monotonic()
                    g2.token("b")
                    while g2.error is None and time.monotonic() - sent < 2:
                        await asyncio.sleep(0.005)
                    assert isinstance(g2.error, Refused) and g2.error.code == "channel_final"
                    assert time.monotonic() - sent < 0.25
                    g2.token("c")

    asyncio.run(main())


def test_async_subscription_resumes_after_a_cut(broker, proxy_to, channel):
    async def main():
        async with AsyncClient(broker.url) as c:
            await c.publish_batch(channel, [Event(f"tok{k:02d}-é🚀", "token") for k in range(30)] + [Event("bye", final=True)])
        proxy = proxy_to(broker, {0: {"cut_down": 700}})
        async with AsyncClient(proxy.url) as c:
            sub = c.subscribe(channel, last_event_id="earliest")
            got = await gather(sub)
            assert [e.data for e in got] == [f"tok{k:02d}-é🚀" for k in range(30)] + ["bye"]
            assert sub.connects >= 3

    asyncio.run(main())
