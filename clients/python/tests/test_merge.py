"""subscribe(merge=True) against the real broker started with `--merge-events token`, on
both engines, sync and async: a late joiner gets each replayed run of tokens as one event
with the same text, every other event as published, and a stream cut inside a merged run
resumes from the last merged ID with nothing lost and nothing repeated; `merge=1` goes on
every (re)connect."""
import asyncio
import re

from support import collect
from starling_client import AsyncClient, Client, Event


def token(k: int) -> Event:
    return Event(f"t{k}\n" if k % 25 == 24 else f"t{k}é🚀 ", "token")


def publish_script(c: Client, channel: str) -> dict:
    """Two runs of 120 tokens split by a progress event, then a final event."""
    run1 = [token(k) for k in range(120)]
    run2 = [token(120 + k) for k in range(120)]
    r1 = c.publish_batch(channel, run1)
    c.publish(channel, {"pct": 50}, event="progress")
    r2 = c.publish_batch(channel, run2)
    c.publish(channel, "fin", event="done", final=True)
    return {"text1": "".join(e.data for e in run1), "text2": "".join(e.data for e in run2),
            "last1": r1.last, "last2": r2.last}


def text(events) -> str:
    return "".join(e.data for e in events if e.event == "token")


def subscribe_lines(proxy) -> list:
    return [line for t in proxy.traffic for line in re.findall(rb"GET [^ ]+ HTTP/1\.1", bytes(t))]


def test_late_joiner_with_merge_gets_each_run_as_one_event(start_broker, channel):
    broker = start_broker("--merge-events", "token")
    with Client(broker.url) as c:
        script = publish_script(c, channel)
        plain = collect(c.subscribe(channel, last_event_id="earliest"))
        merged = collect(c.subscribe(channel, last_event_id="earliest", merge=True))
    assert len(plain) == 242
    assert [(e.event, e.data, e.id) for e in merged] == [
        ("token", script["text1"], script["last1"]),
        ("progress", '{"pct":50}', plain[120].id),
        ("token", script["text2"], script["last2"]),
        ("done", "fin", plain[-1].id),
    ]
    assert text(merged) == text(plain)


def test_merged_subscription_resumes_after_a_cut_with_nothing_lost_or_repeated(start_broker, proxy_to, channel):
    broker = start_broker("--merge-events", "token")
    with Client(broker.url) as c:
        script = publish_script(c, channel)
    # The first answer is cut inside the second merged run, just before its token 130.
    proxy = proxy_to(broker, {0: {"cut_down_at": b"t130"}})
    with Client(proxy.url) as c:
        sub = c.subscribe(channel, last_event_id="earliest", merge=True)
        got = collect(sub)
    assert [e.id for e in got] == [script["last1"], got[1].id, script["last2"], got[3].id]
    assert [e.event for e in got] == ["token", "progress", "token", "done"]
    assert text(got) == script["text1"] + script["text2"]
    assert sub.connects >= 3  # the cut one, the resumed one, the 204
    lines = subscribe_lines(proxy)
    assert len(lines) == sub.connects and all(b"merge=1" in line for line in lines), lines


def test_async_merged_subscription_late_joiner_and_resume(start_broker, proxy_to, channel):
    broker = start_broker("--merge-events", "token")
    with Client(broker.url) as c:
        script = publish_script(c, channel)
    proxy = proxy_to(broker, {0: {"cut_down_at": b"t130"}})

    async def read(url):
        async with AsyncClient(url) as c:
            sub = c.subscribe(channel, last_event_id="earliest", merge=True)
            return sub, [e async for e in sub]

    async def main():
        whole = await asyncio.wait_for(read(broker.url), 10)
        resumed = await asyncio.wait_for(read(proxy.url), 10)
        return whole, resumed

    (_, whole), (sub, got) = asyncio.run(main())
    assert [(e.event, e.id) for e in whole] == [("token", script["last1"]), ("progress", whole[1].id),
                                                ("token", script["last2"]), ("done", whole[3].id)]
    assert text(whole) == script["text1"] + script["text2"]
    assert [(e.event, e.data, e.id) for e in got] == [(e.event, e.data, e.id) for e in whole]
    assert sub.connects >= 3
    lines = subscribe_lines(proxy)
    assert len(lines) == sub.connects and all(b"merge=1" in line for line in lines), lines
