// starling.js in Node (fetch, ReadableStream and TextDecoder as in a browser) against the
// real broker: token refresh mid-stream, the end at the final event, Retry-After,
// multi-byte UTF-8 split across chunks, heartbeats and notices, AbortSignal.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import { SSEParser, StarlingError, publish, subscribe } from "../starling.js";
import { ENGINES, SECRET, channelName, mintToken, sleep, startBroker, waitFor, withTimeout } from "./broker.mjs";

const now = () => Math.floor(Date.now() / 1000);

for (const engine of ENGINES) {
  describe(`on the ${engine} engine`, () => {
    let broker;
    before(async () => { broker = await startBroker([], engine); });
    after(() => broker.stop());

    test("live events, then resume from an ID with nothing lost or repeated", async () => {
      const ch = channelName();
      const url = `${broker.url}/v1/channels/${ch}/events`;
      const got = [];
      let opened = false;
      const sub = subscribe(url, { onOpen: () => { opened = true; }, onEvent: (e) => got.push(e) });
      await waitFor(() => opened, 5000, "open");
      await publish(url, [{ event: "token", data: "مرحبا " }, { event: "token", data: "🚀\nline2" }, { data: { pct: 40 } }]);
      await waitFor(() => got.length === 3, 5000, "live events");
      sub.close();
      await sub.done;
      assert.deepEqual(got.map((e) => [e.event, e.data]), [["token", "مرحبا "], ["token", "🚀\nline2"], ["message", '{"pct":40}']]);
      const resumed = [];
      const sub2 = subscribe(url, { lastEventId: got[0].id, onEvent: (e) => resumed.push(e.data) });
      await waitFor(() => resumed.length === 2, 5000, "resume");
      await sleep(100);
      sub2.close();
      assert.deepEqual(resumed, ["🚀\nline2", '{"pct":40}']);
    });

    test("the end is signalled at the final event, not one retry later", async () => {
      const ch = channelName();
      const url = `${broker.url}/v1/channels/${ch}/events`;
      const got = [];
      let opened = false, endedAt = 0;
      // no retryMs: the broker's `retry: 2000` is the base delay
      const sub = subscribe(url, { onOpen: () => { opened = true; }, onEvent: (e) => got.push(e.data), onEnd: () => { endedAt = Date.now(); } });
      await waitFor(() => opened, 5000, "open");
      await publish(url, { event: "token", data: "a" });
      await publish(url, { event: "done", data: "b", final: true });
      const finalAt = Date.now();
      await withTimeout(sub.done, 5000, "end");
      assert.deepEqual(got, ["a", "b"]);
      assert.ok(endedAt - finalAt < 1000, `onEnd came ${endedAt - finalAt} ms after the final event (the retry is 2000 ms)`);
      // a completed channel: a new subscription ends at once (204)
      let ended = false;
      await withTimeout(subscribe(url, { onEnd: () => { ended = true; } }).done, 3000, "204");
      assert.ok(ended);
    });
  });
}

for (const engine of ENGINES) {
  test(`token refresh mid-stream loses and repeats nothing (${engine})`, async () => {
    const broker = await startBroker(["--jwt-secret", SECRET], engine);
    try {
      const ch = channelName();
      const url = `${broker.url}/v1/channels/${ch}/events`;
      const publishToken = mintToken({ starling: { publish: [ch] }, exp: now() + 60 });
      let asked = 0;
      // The broker allows 5 s of clock skew: exp 4 s ago leaves about one second.
      const getToken = async () => { asked += 1; return mintToken({ starling: { subscribe: [ch] }, exp: now() - 4 }); };
      const got = [], notices = [];
      const sub = subscribe(url, { getToken, lastEventId: "earliest", retryMs: 50, onEvent: (e) => got.push(e.data), onNotice: (e) => notices.push(e.event) });
      for (let k = 0; k < 25; k++) {
        await publish(url, { event: "token", data: `t${k}` }, { headers: { Authorization: `Bearer ${publishToken}` } });
        await sleep(120);
      }
      await publish(url, { event: "done", data: "end", final: true }, { getToken: () => publishToken });
      await withTimeout(sub.done, 10000, "end after refreshes");
      assert.deepEqual(got, [...Array.from({ length: 25 }, (_, k) => `t${k}`), "end"]);
      assert.ok(notices.includes("starling.expired"), `no expiry during the stream: ${notices}`);
      assert.ok(asked >= 3, `getToken asked ${asked} times`);
    } finally {
      await broker.stop();
    }
  });
}

test("Retry-After is honoured: no retry sooner than the broker asks", async () => {
  const broker = await startBroker(["--max-connections", "1"]);
  // Hold the broker's one connection, so the subscription's first attempt gets 503.
  const holder = net.connect(broker.port, "127.0.0.1");
  await new Promise((r) => holder.once("connect", r));
  await sleep(100);
  try {
    const ch = channelName();
    const errors = [], retries = [];
    let openedAt = 0;
    const sub = subscribe(`${broker.url}/v1/channels/${ch}/events`, {
      retryMs: 10,  // the client's own backoff alone would retry after 5–10 ms
      onError: (e) => errors.push({ at: Date.now(), e }),
      onRetry: (r) => retries.push(r),
      onOpen: () => { openedAt = Date.now(); },
    });
    await waitFor(() => errors.length === 1, 5000, "the 503");
    setTimeout(() => holder.destroy(), 200);
    await waitFor(() => openedAt > 0, 5000, "open after the wait");
    sub.close();
    assert.ok(errors[0].e instanceof StarlingError);
    assert.equal(errors[0].e.status, 503);
    assert.equal(errors[0].e.code, "too_many_connections");
    assert.equal(errors[0].e.retryAfterMs, 1000);
    assert.equal(errors.length, 1, "retried before Retry-After ran out");
    assert.ok(retries[0].delayMs >= 1000, `waited ${retries[0].delayMs} ms`);
    assert.ok(openedAt - errors[0].at >= 990, `reconnected after ${openedAt - errors[0].at} ms`);
  } finally {
    holder.destroy();
    await broker.stop();
  }
});

test("multi-byte UTF-8 split across chunks from the real broker decodes whole", async () => {
  const broker = await startBroker();
  // A proxy that hands the client the broker's answer one byte per write.
  const proxy = net.createServer((client) => {
    const upstream = net.connect(broker.port, "127.0.0.1");
    client.pipe(upstream);
    const queue = [];
    let pumping = false;
    const pump = async () => {
      if (pumping) return;
      pumping = true;
      while (queue.length) {
        const b = queue.shift();
        if (client.destroyed) break;
        client.write(b);
        await sleep(1);
      }
      pumping = false;
      if (upstream.readableEnded && !queue.length) client.end();
    };
    upstream.on("data", (chunk) => { for (const b of chunk) queue.push(Buffer.from([b])); pump(); });
    upstream.on("end", () => { if (!pumping && !queue.length) client.end(); });
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  await new Promise((r) => proxy.listen(0, "127.0.0.1", r));
  try {
    const ch = channelName();
    const text = ["é🚀ش", "日本語", "🇺🇦 flags", "ok"];
    await publish(`${broker.url}/v1/channels/${ch}/events`, [
      ...text.map((t) => ({ event: "token", data: t })), { event: "done", data: "fin", final: true }]);
    const got = [];
    const sub = subscribe(`http://127.0.0.1:${proxy.address().port}/v1/channels/${ch}/events`,
                          { lastEventId: "earliest", onEvent: (e) => got.push(e.data) });
    await withTimeout(sub.done, 15000, "split stream");
    assert.deepEqual(got, [...text, "fin"]);
  } finally {
    proxy.close();
    await broker.stop();
  }
});

test("heartbeats, gap notices and several channels reach their callbacks", async () => {
  const broker = await startBroker(["--heartbeat", "0.2"]);
  try {
    const a = channelName(), b = channelName();
    const first = await publish(`${broker.url}/v1/channels/${a}/events`, [{ data: "x" }, { data: "y" }]);
    const notices = [], got = [];
    let beats = 0;
    const sub = subscribe(`${broker.url}/v1/channels/${a}/events`, {
      lastEventId: "1-0",  // older than the channel's history: a gap
      onNotice: (e) => notices.push(e), onEvent: (e) => got.push(e.data), onHeartbeat: () => { beats += 1; },
    });
    await waitFor(() => got.length === 2 && beats >= 2, 5000, "events and heartbeats");
    sub.close();
    assert.equal(notices[0].event, "starling.gap");
    assert.equal(notices[0].channel, a);
    assert.deepEqual(notices[0].detail, { channel: a, requested: "1-0", resumed_from: first.first });
    assert.deepEqual(got, ["x", "y"]);

    await publish(`${broker.url}/v1/channels/${b}/events`, { data: { n: 1 }, final: true });
    await publish(`${broker.url}/v1/channels/${a}/events`, { data: "z", final: true });
    const multi = [];
    const m = subscribe(`${broker.url}/v1/events?channel=${a}&channel=${b}`, { lastEventId: "earliest", onEvent: (e) => multi.push([e.channel, e.data]) });
    await withTimeout(m.done, 5000, "multiplexed end");
    assert.deepEqual(multi.filter(([c]) => c === a), [[a, "x"], [a, "y"], [a, "z"]]);
    assert.deepEqual(multi.filter(([c]) => c === b), [[b, '{"n":1}']]);
  } finally {
    await broker.stop();
  }
});

test("AbortSignal closes the subscription; a refused one rejects done", async () => {
  const broker = await startBroker();
  try {
    const ch = channelName();
    const controller = new AbortController();
    let opened = false;
    const sub = subscribe(`${broker.url}/v1/channels/${ch}/events`, { signal: controller.signal, onOpen: () => { opened = true; } });
    await waitFor(() => opened, 5000, "open");
    controller.abort();
    await withTimeout(sub.done, 2000, "abort");
    assert.equal(sub.closed, true);
    let subscribers = -1;
    for (let i = 0; i < 50 && subscribers !== 0; i++) {
      subscribers = (await (await fetch(`${broker.url}/v1/channels/${ch}`)).json()).subscribers;
      if (subscribers) await sleep(20);
    }
    assert.equal(subscribers, 0, "the aborted stream is still open at the broker");

    const bad = subscribe(`${broker.url}/v1/channels/${ch}/events`, { lastEventId: "not-an-id", onError: () => {} });
    await assert.rejects(bad.done, (e) => e instanceof StarlingError && e.status === 400 && e.code === "bad_last_event_id");
  } finally {
    await broker.stop();
  }
});

test("the broker serves this very file at /starling.js", async () => {
  const broker = await startBroker();
  try {
    const served = await (await fetch(`${broker.url}/starling.js`)).text();
    assert.equal(served, readFileSync(new URL("../starling.js", import.meta.url), "utf8"),
                 "run ops/scripts/embed-assets.sh after editing clients/js/starling.js");
  } finally {
    await broker.stop();
  }
});

test("SSEParser: CRLF, CR and characters split anywhere decode the same", () => {
  const bytes = new TextEncoder().encode("retry: 10\r\n: hb\r\nid: 1-0\r\nevent: token\r\ndata: é🚀ش\r\ndata: two\r\r\nid: 2-0\rdata: x\n\n");
  for (let cut = 1; cut < bytes.length; cut++) {
    const p = new SSEParser();
    const items = [...p.feed(bytes.slice(0, cut)), ...p.feed(bytes.slice(cut))];
    assert.deepEqual(items, [
      { type: "retry", ms: 10 }, { type: "comment", text: "hb" },
      { type: "event", event: "token", data: "é🚀ش\ntwo", id: "1-0" },
      { type: "event", event: "message", data: "x", id: "2-0" },
    ], `cut at ${cut}`);
  }
});
