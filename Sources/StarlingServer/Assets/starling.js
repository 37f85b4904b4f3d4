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
