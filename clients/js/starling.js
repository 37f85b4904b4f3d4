// starling.js: the browser and Node ES module for Starling streams (SPEC §8). The broker
// serves this very file at /starling.js (ops/scripts/embed-assets.sh embeds it).
// Unlike EventSource it uses fetch, so it can send an Authorization header, and it asks
// getToken() for a fresh token on every (re)connect and when the broker says
// `starling.expired`. It resumes with Last-Event-ID after any drop (nothing lost, nothing
// repeated), decodes UTF-8 split across chunks, backs off with jitter and honours
// Retry-After, and reports the end of a completed channel right after its final event.
// With `merge: true` it asks for `?merge=1` on every (re)connect: replayed runs of the
// broker's token events (`--merge-events`) come merged, the same text in fewer events.
//
//   import { subscribe } from "/starling.js";
//   const sub = subscribe("/v1/channels/chat-42/events", {
//     getToken: async () => (await fetch("/token")).text(),
//     onEvent: (e) => console.log(e.event, e.data, e.id),
//     onEnd: () => console.log("complete"),
//   });
//   sub.close();   // or pass { signal } and abort it

/**
 * Subscribes to a channel stream (`/v1/channels/{ch}/events`) or a multiplexed one
 * (`/v1/events?channel=A&channel=B`, whose envelopes are unwrapped into `e.channel`).
 */
export function subscribe(url, options = {}) {
  const {
    headers = {}, getToken = null, signal = null,
    onEvent = () => {}, onNotice = () => {}, onHeartbeat = () => {},
    onOpen = () => {}, onError = () => {}, onRetry = () => {}, onEnd = () => {},
  } = options;
  const maxRetryMs = options.maxRetryMs ?? 30000;
  const maxAttempts = options.maxAttempts ?? Infinity;
  let baseRetryMs = options.retryMs ?? null;  // null: the broker's `retry:` (2000 ms by default)
  let lastEventId = options.lastEventId ?? null;
  const multiplexed = /\/v1\/events(\?|$)/.test(url);
  const requestUrl = options.merge ? withMerge(url) : url;  // the same on every (re)connect
  const controller = new AbortController();
  let closed = false;
  let resolveDone, rejectDone;
  const done = new Promise((resolve, reject) => { resolveDone = resolve; rejectDone = reject; });
  done.catch(() => {});  // a caller that never awaits `done` gets onError instead

  const finish = (error) => {
    if (closed) return;
    closed = true;
    controller.abort();
    if (error) { onError(error); rejectDone(error); } else { onEnd(); resolveDone(); }
  };
  if (signal) {
    if (signal.aborted) closed = true;
    else signal.addEventListener("abort", () => { if (!closed) { closed = true; controller.abort(); resolveDone(); } }, { once: true });
  }

  async function connect() {
    let failures = 0;        // consecutive attempts that got nothing
    let retryAfterMs = 0;    // the broker's Retry-After, a floor for the next wait
    let unauthorized = 0;    // consecutive 401s: one fresh token is worth a try
    while (!closed) {
      if (failures > 0) {
        if (failures >= maxAttempts) return finish(new StarlingError(0, "unavailable", `gave up after ${failures} attempts`));
        const delay = backoffDelay(failures, baseRetryMs ?? 2000, maxRetryMs, retryAfterMs);
        onRetry({ attempt: failures, delayMs: delay, retryAfterMs });
        await sleep(delay, controller.signal);
        if (closed) return;
      }
      retryAfterMs = 0;
      let delivered = false;
      try {
        const h = { Accept: "text/event-stream", "Cache-Control": "no-cache", ...headers };
        if (getToken) {
          const token = await getToken();
          if (token) h.Authorization = `Bearer ${token}`;
        }
        if (lastEventId) h["Last-Event-ID"] = lastEventId;
        const response = await fetch(requestUrl, { headers: h, signal: controller.signal, cache: "no-store" });
        if (response.status === 204) return finish();  // complete: nothing after the resume point
        if (!response.ok) {
          const error = await StarlingError.from(response);
          if (response.status === 401 && getToken && unauthorized++ === 0) { onError(error); continue; }
          if (response.status === 503 || response.status === 502 || response.status === 504 || response.status === 429) {
            retryAfterMs = error.retryAfterMs;
            failures += 1;
            onError(error);
            continue;
          }
          return finish(error);  // 400, 401, 403, 404: retrying cannot help
        }
        unauthorized = 0;
        failures = 0;
        onOpen(response);
        delivered = await read(response.body);
      } catch (error) {
        if (closed) return;
        failures += 1;
        onError(error);
        continue;
      }
      // The stream ended cleanly: after a final event, a token expiry, a drain or a
      // slow-consumer cut. Reconnect at once; a completed channel answers 204 then.
      if (!delivered) failures += 1;
    }
  }

  // Reads one response; true when it carried at least one event.
  async function read(body) {
    const parser = new SSEParser();
    const reader = body.getReader();
    let delivered = false;
    try {
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) return delivered;
        for (const item of parser.feed(value)) {
          if (closed) return delivered;
          if (item.type === "retry") { if (options.retryMs == null) baseRetryMs = item.ms; continue; }
          if (item.type === "comment") { if (item.text !== "starling") onHeartbeat(item.text); continue; }
          delivered = true;
          if (item.id != null) lastEventId = item.id;
          const e = { event: item.event, data: item.data, id: lastEventId };
          if (item.event.startsWith("starling.")) {
            try { e.detail = JSON.parse(item.data); } catch { e.detail = null; }
            if (e.detail && typeof e.detail.channel === "string") e.channel = e.detail.channel;
            onNotice(e);  // starling.expired: the stream ends now and getToken() is asked again
            continue;
          }
          if (multiplexed) {
            const envelope = JSON.parse(item.data);
            e.channel = envelope.channel;
            e.data = typeof envelope.data === "string" ? envelope.data : JSON.stringify(envelope.data);
          }
          onEvent(e);
        }
      }
    } finally {
      reader.releaseLock?.();
    }
  }

  if (!closed) connect();
  return {
    close() { if (!closed) { closed = true; controller.abort(); resolveDone(); } },
    get lastEventId() { return lastEventId; },
    get closed() { return closed; },
    done,
  };
}

/**
 * Publishes one event or an array (one batch) as JSON; resolves to {count, first, last}.
 * Rejects with a StarlingError carrying the broker's code.
 */
export async function publish(url, events, { headers = {}, getToken = null, signal } = {}) {
  const h = { "Content-Type": "application/json", ...headers };
  if (getToken) h.Authorization = `Bearer ${await getToken()}`;
  const response = await fetch(url, { method: "POST", headers: h, body: JSON.stringify(events), signal });
  if (!response.ok) throw await StarlingError.from(response);
  return response.json();
}

/** An error answer from the broker: `status`, `code`, `message`, `retryAfterMs`. */
export class StarlingError extends Error {
  constructor(status, code, message, retryAfterMs = 0) {
    super(status ? `HTTP ${status} ${code}: ${message}` : message);
    this.name = "StarlingError";
    this.status = status;
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }

  static async from(response) {
    let code = `http_${response.status}`, message = "";
    try {
      const text = await response.text();
      message = text.slice(0, 500);
      const body = JSON.parse(text);
      if (body && body.error) { code = body.error.code ?? code; message = body.error.message ?? message; }
    } catch { /* not the broker's JSON: keep the raw text */ }
    const seconds = Number(response.headers.get("retry-after"));
    return new StarlingError(response.status, code, message, Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0);
  }
}

/** Exponential backoff with jitter: attempt n waits a random time in [d/2, d], with
 * d = min(max, base·2^(n−1)), and never less than the broker's Retry-After. */
export function backoffDelay(attempt, baseMs, maxMs, retryAfterMs = 0) {
  const ceiling = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
  return Math.max(retryAfterMs, ceiling / 2 + Math.random() * (ceiling / 2));
}

/**
 * The text/event-stream format, inbound. feed(bytes) returns the items completed by
 * those bytes: {type:"event", event, data, id}, {type:"comment", text}, {type:"retry", ms}.
 * TextDecoder in streaming mode keeps a character split across chunks whole; a CR at the
 * end of a chunk may be half a CRLF, so it waits for the next byte.
 */
export class SSEParser {
  constructor() {
    this.decoder = new TextDecoder("utf-8");
    this.buffer = "";
    this.data = [];
    this.hasData = false;
    this.event = "";
    this.id = null;
  }

  feed(bytes) {
    const out = [];
    this.buffer += this.decoder.decode(bytes, { stream: true });
    let start = 0;
    const b = this.buffer;
    for (let i = 0; i < b.length; i++) {
      const c = b[i];
      if (c !== "\n" && c !== "\r") continue;
      if (c === "\r" && i === b.length - 1) break;
      const line = b.slice(start, i);
      if (c === "\r" && b[i + 1] === "\n") i++;
      start = i + 1;
      const item = this.line(line);
      if (item) out.push(item);
    }
    this.buffer = b.slice(start);
    return out;
  }

  line(line) {
    if (line === "") {
      if (!this.hasData) { this.event = ""; this.id = null; return null; }
      const item = { type: "event", event: this.event || "message", data: this.data.join("\n"), id: this.id };
      this.data = []; this.hasData = false; this.event = ""; this.id = null;
      return item;
    }
    if (line.startsWith(":")) return { type: "comment", text: line.slice(1).trimStart() };
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let v = colon < 0 ? "" : line.slice(colon + 1);
    if (v.startsWith(" ")) v = v.slice(1);
    if (field === "data") { this.data.push(v); this.hasData = true; }
    else if (field === "event") this.event = v;
    else if (field === "id" && !v.includes("\0")) this.id = v;
    else if (field === "retry" && /^\d+$/.test(v)) return { type: "retry", ms: Number(v) };
    return null;
  }
}

/** The subscribe URL with `merge=1` in its query (any `merge=` it had is replaced);
 * relative URLs stay relative. */
export function withMerge(url) {
  const hash = url.indexOf("#");
  const base = hash < 0 ? url : url.slice(0, hash);
  const q = base.indexOf("?");
  const path = q < 0 ? base : base.slice(0, q);
  const params = q < 0 ? [] : base.slice(q + 1).split("&").filter((p) => p !== "" && !/^merge(=|$)/.test(p));
  return `${path}?${[...params, "merge=1"].join("&")}`;
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
