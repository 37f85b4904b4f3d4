// Drives the broker's own /starling.js module in Node against the real broker.
// argv: <module path> <base url> <channel>. Prints one JSON line of results.
const [modulePath, base, channel] = process.argv.slice(2);
const { subscribe, publish } = await import(modulePath);
const results = {};
const withTimeout = (p, ms, what) => Promise.race([p, new Promise((_, no) => setTimeout(() => no(new Error(`timeout: ${what}`)), ms))]);

// 1. Live events with multi-byte text, a custom header, and ids.
const got = [];
let firstId = null;
const sub = subscribe(`${base}/v1/channels/${channel}/events`, {
  headers: { "X-Client": "node" },
  onEvent: (e) => { got.push(e); if (!firstId) firstId = e.id; },
});
await new Promise((r) => setTimeout(r, 300));
await publish(`${base}/v1/channels/${channel}/events`, [
  { event: "token", data: "مرحبا " }, { event: "token", data: "🚀\nline2" }, { data: { pct: 40 } },
]);
await withTimeout(new Promise((r) => { const t = setInterval(() => { if (got.length >= 3) { clearInterval(t); r(); } }, 20); }), 5000, "live events");
sub.close();
results.live = got.map((e) => [e.event, e.data]);

// 2. Resume from the first event's ID: exactly the two after it.
const resumed = [];
const sub2 = subscribe(`${base}/v1/channels/${channel}/events`, { lastEventId: firstId, onEvent: (e) => resumed.push(e.data) });
await withTimeout(new Promise((r) => { const t = setInterval(() => { if (resumed.length >= 2) { clearInterval(t); r(); } }, 20); }), 5000, "resume");
await new Promise((r) => setTimeout(r, 200));
sub2.close();
results.resumed = resumed;

// 3. A completed channel: the stream ends and a reconnect gets 204, so onEnd fires.
await publish(`${base}/v1/channels/${channel}/events`, { data: "bye", final: true });
const ended = await withTimeout(new Promise((r) => {
  subscribe(`${base}/v1/channels/${channel}/events`, { retryMs: 50, onEnd: () => r(true), onEvent: () => {} });
}), 5000, "end");
results.ended = ended;

// 4. Chunks split inside a multi-byte character and inside a CRLF decode the same.
const bytes = new TextEncoder().encode("id: 1-0\r\nevent: token\r\ndata: é🚀ش\r\n\r\n");
const chunks = [bytes.slice(0, 5), bytes.slice(5, 33), bytes.slice(33, 34), bytes.slice(34, 36), bytes.slice(36)];
const realFetch = globalThis.fetch;
let calls = 0;
globalThis.fetch = async () => {
  calls += 1;
  if (calls > 1) return new Response(null, { status: 204 });
  return new Response(new ReadableStream({ start(c) { for (const ch of chunks) c.enqueue(ch); c.close(); } }), { status: 200 });
};
const split = [];
await withTimeout(new Promise((r) => subscribe("http://split.invalid/", { retryMs: 10, onEvent: (e) => split.push([e.id, e.event, e.data]), onEnd: r })), 5000, "split");
globalThis.fetch = realFetch;
results.split = split;
console.log(JSON.stringify(results));
process.exit(0);
