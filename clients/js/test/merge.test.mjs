// `merge: true` against the real broker started with `--merge-events token`, on both
// engines: a late joiner gets each replayed run of tokens as one event with the same text,
// every other event as published, and a cut stream resumes from a merged event's ID with
// nothing lost and nothing repeated.
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import { publish, subscribe, withMerge } from "../starling.js";
import { ENGINES, channelName, startBroker, withTimeout } from "./broker.mjs";

const token = (k) => ({ event: "token", data: k % 25 === 24 ? `t${k}\n` : `t${k}é🚀 ` });

/** Two runs of 120 tokens split by a progress event, then a final event. */
async function publishScript(url) {
  const run1 = Array.from({ length: 120 }, (_, k) => token(k));
  const run2 = Array.from({ length: 120 }, (_, k) => token(120 + k));
  const r1 = await publish(url, run1);
  await publish(url, { event: "progress", data: { pct: 50 } });
  const r2 = await publish(url, run2);
  await publish(url, { event: "done", data: "fin", final: true });
  return { text1: run1.map((e) => e.data).join(""), text2: run2.map((e) => e.data).join(""), last1: r1.last, last2: r2.last, count: 242 };
}

const text = (events) => events.filter((e) => e.event === "token").map((e) => e.data).join("");

/** A loopback proxy that closes its first connection just before `mark` in the answer. */
async function cuttingProxy(port, mark) {
  let connections = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    let seen = connections++ === 0 ? Buffer.alloc(0) : null;  // the answer so far, on the first one
    client.pipe(upstream);
    upstream.on("data", (chunk) => {
      if (seen === null) return client.write(chunk);
      const at = Buffer.concat([seen, chunk]).indexOf(mark);
      if (at < 0) { seen = Buffer.concat([seen, chunk]); return client.write(chunk); }
      client.write(chunk.subarray(0, Math.max(0, at - seen.length)));
      client.destroy();
      upstream.destroy();
    });
    upstream.on("end", () => client.end());
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

for (const engine of ENGINES) {
  describe(`merge on the ${engine} engine`, () => {
    let broker;
    before(async () => { broker = await startBroker(["--merge-events", "token"], engine); });
    after(() => broker.stop());

    test("a late joiner with merge gets each run as one event, the same text", async () => {
      const ch = channelName();
      const url = `${broker.url}/v1/channels/${ch}/events`;
      const script = await publishScript(url);
      const plain = [], merged = [];
      await withTimeout(subscribe(url, { lastEventId: "earliest", onEvent: (e) => plain.push(e) }).done, 10000, "plain");
      await withTimeout(subscribe(url, { lastEventId: "earliest", merge: true, onEvent: (e) => merged.push(e) }).done, 10000, "merged");
      assert.equal(plain.length, script.count);
      assert.deepEqual(merged.map((e) => [e.event, e.data, e.id]), [
        ["token", script.text1, script.last1],
        ["progress", '{"pct":50}', plain[120].id],
        ["token", script.text2, script.last2],
        ["done", "fin", plain.at(-1).id],
      ]);
      assert.equal(text(merged), text(plain));
    });

    test("merge=1 on every reconnect: a cut stream resumes from a merged ID, nothing lost or repeated", async () => {
      const ch = channelName();
      const script = await publishScript(`${broker.url}/v1/channels/${ch}/events`);
      // The first answer is cut inside the second merged run, before its token 130.
      const proxy = await cuttingProxy(broker.port, "t130");
      try {
        const got = [], opens = [];
        const sub = subscribe(`${proxy.url}/v1/channels/${ch}/events`, {
          lastEventId: "earliest", merge: true, retryMs: 20,
          onOpen: (r) => opens.push({ url: r.url, before: got.length }), onEvent: (e) => got.push(e),
        });
        await withTimeout(sub.done, 10000, "merged resume to the end");
        assert.ok(opens.length >= 2, `connected ${opens.length} times`);
        assert.ok(opens.every((o) => new URL(o.url).searchParams.get("merge") === "1"), "merge=1 on every connect");
        assert.equal(opens[1].before, 2, "the cut came after run 1 and the progress event");
        assert.deepEqual(got.map((e) => e.id), [script.last1, got[1].id, script.last2, got[3].id]);
        assert.equal(text(got), script.text1 + script.text2);
        assert.deepEqual(got.filter((e) => e.event !== "token").map((e) => e.data), ['{"pct":50}', "fin"]);
      } finally {
        proxy.close();
      }
    });
  });
}

test("withMerge puts merge=1 in the query once, keeping the rest", () => {
  assert.equal(withMerge("/v1/channels/a/events"), "/v1/channels/a/events?merge=1");
  assert.equal(withMerge("http://h/v1/events?channel=a&channel=b"), "http://h/v1/events?channel=a&channel=b&merge=1");
  assert.equal(withMerge("/v1/channels/a/events?merge=0&lastEventId=earliest"), "/v1/channels/a/events?lastEventId=earliest&merge=1");
});
