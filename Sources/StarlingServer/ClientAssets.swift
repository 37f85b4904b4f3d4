// ClientAssets: the browser module and the demo page, served at /starling.js and /demo.
// Generated from Assets/ by ops/scripts/embed-assets.sh; a test checks they match.

enum ClientAssets {
    static let starlingJS = #"""
// starling.js: a small browser ES module for Starling streams (SPEC §8).
// Unlike EventSource it uses fetch, so it can send headers (Authorization), and it
// resumes with Last-Event-ID after any drop. TextDecoder in streaming mode keeps a
// multi-byte UTF-8 character that is split across chunks intact.
//
//   import { subscribe } from "/starling.js";
//   const sub = subscribe("/v1/channels/demo/events", {
//     headers: { Authorization: "Bearer …" },
//     onEvent: (e) => console.log(e.event, e.data, e.id),
//   });
//   sub.close();

export function subscribe(url, options = {}) {
  const { headers = {}, onEvent = () => {}, onOpen = () => {}, onError = () => {}, onEnd = () => {} } = options;
  let lastEventId = options.lastEventId ?? null;
  let retryMs = options.retryMs ?? 2000;
  const controller = new AbortController();
  let closed = false;

  async function connect() {
    while (!closed) {
      try {
        const h = { Accept: "text/event-stream", ...headers };
        if (lastEventId) h["Last-Event-ID"] = lastEventId;
        const response = await fetch(url, { headers: h, signal: controller.signal, cache: "no-store" });
        if (response.status === 204) { closed = true; onEnd(); return; }  // the channel is complete
        if (response.status === 401 || response.status === 403 || response.status === 400 || response.status === 404) {
          closed = true;
          onError(new Error(`HTTP ${response.status}: ${await response.text()}`));
          return;
        }
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        onOpen(response);
        await read(response.body);
      } catch (error) {
        if (closed) return;
        onError(error);
      }
      if (!closed) await new Promise((r) => setTimeout(r, retryMs));
    }
  }

  async function read(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder("utf-8");
    let buffer = "";
    let data = [];
    let event = "";
    let id = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      // Lines end with CRLF, LF or CR; a CR at the very end may be half a CRLF.
      let start = 0;
      for (let i = 0; i < buffer.length; i++) {
        const c = buffer[i];
        if (c !== "\n" && c !== "\r") continue;
        if (c === "\r" && i === buffer.length - 1) break;
        const line = buffer.slice(start, i);
        if (c === "\r" && buffer[i + 1] === "\n") i++;
        start = i + 1;
        if (line === "") {
          if (id !== null) lastEventId = id;
          if (data.length) onEvent({ event: event || "message", data: data.join("\n"), id: lastEventId });
          data = []; event = ""; id = null;
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let v = colon < 0 ? "" : line.slice(colon + 1);
        if (v.startsWith(" ")) v = v.slice(1);
        if (field === "data") data.push(v);
        else if (field === "event") event = v;
        else if (field === "id" && !v.includes("\0")) id = v;
        else if (field === "retry" && /^\d+$/.test(v)) retryMs = Number(v);
      }
      buffer = buffer.slice(start);
    }
  }

  connect();
  return {
    close() { closed = true; controller.abort(); },
    get lastEventId() { return lastEventId; },
  };
}

/// Publishes one event (or an array) as JSON; resolves to {count, first, last}.
export async function publish(url, events, { headers = {} } = {}) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(events),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body?.error?.message ?? `HTTP ${response.status}`);
  return body;
}

"""#

    static let demoHTML = #"""
<!doctype html>
<!-- The demo page served by the broker at /demo: subscribe to a channel with the
     fetch-based module, publish to it, watch tokens stream and resume after drops. -->
<html lang="en">
<head>
<meta charset="utf-8">
<title>Starling demo</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
  #out { white-space: pre-wrap; border: 1px solid #ccc; border-radius: 6px; padding: .75rem; min-height: 8rem; }
  #log { font: 12px/1.4 ui-monospace, monospace; color: #555; max-height: 14rem; overflow: auto; }
  input, button { font: inherit; }
</style>
</head>
<body>
<h1>Starling</h1>
<p>
  Channel <input id="channel" value="demo" size="16">
  <button id="connect">Subscribe</button>
  <span id="status">not connected</span>
</p>
<p><input id="text" value="Hello from Starling 👋 مرحبا" size="40"> <button id="send">Publish as tokens</button></p>
<div id="out"></div>
<h3>Events</h3>
<div id="log"></div>
<script type="module">
import { subscribe, publish } from "/starling.js";
const $ = (id) => document.getElementById(id);
let sub = null;
$("connect").onclick = () => {
  sub?.close();
  $("out").textContent = "";
  const ch = encodeURIComponent($("channel").value);
  sub = subscribe(`/v1/channels/${ch}/events?lastEventId=earliest`, {
    onOpen: () => { $("status").textContent = "connected"; },
    onError: (e) => { $("status").textContent = "reconnecting: " + e.message; },
    onEnd: () => { $("status").textContent = "channel complete"; },
    onEvent: (e) => {
      if (e.event === "token") $("out").textContent += e.data;
      const line = document.createElement("div");
      line.textContent = `${e.id ?? ""}  ${e.event}  ${e.data}`;
      $("log").prepend(line);
    },
  });
};
$("send").onclick = async () => {
  const ch = encodeURIComponent($("channel").value);
  const tokens = $("text").value.split(/(?<= )/).map((t) => ({ event: "token", data: t }));
  await publish(`/v1/channels/${ch}/events`, tokens);
};
$("connect").click();
</script>
</body>
</html>

"""#
}
