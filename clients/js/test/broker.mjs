// Test helpers: the real broker binary on a free port (memory or Redis engine), HS256
// tokens, and small waiting helpers. Nothing here stands in for the broker.
//   STARLING_BIN          the binary (default: the debug build of this checkout)
//   STARLING_TEST_REDIS   the Redis engine's URL (ops/scripts/test.sh starts one); tests
//                         on that engine fail, never skip, without it
import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const BIN = process.env.STARLING_BIN ?? fileURLToPath(new URL("../../../.build/debug/starling", import.meta.url));
export const ENGINES = ["memory", "redis"];

export function engineArgs(engine) {
  if (engine !== "redis") return [];
  const url = process.env.STARLING_TEST_REDIS;
  if (!url) throw new Error("STARLING_TEST_REDIS is not set: run ops/scripts/test.sh (make test), which starts a private Redis");
  return ["--redis", url];
}

/** Starts `starling serve --listen 127.0.0.1:0 …` and resolves once it printed its port. */
export function startBroker(args = [], engine = "memory") {
  if (!existsSync(BIN)) throw new Error(`no broker binary at ${BIN}: build it or set STARLING_BIN`);
  // STARLING_* variables are the broker's settings: the suite's own would be unknown to it.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("STARLING_")));
  const child = spawn(BIN, ["serve", "--listen", "127.0.0.1:0", ...engineArgs(engine), ...args],
                      { env, stdio: ["ignore", "pipe", process.env.STARLING_TEST_LOGS ? "inherit" : "ignore"] });
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => { child.kill("SIGKILL"); reject(new Error(`starling did not report its port: ${seen}`)); }, 10000);
    child.stdout.on("data", (chunk) => {
      seen += chunk;
      const m = /listening on http:\/\/[^\s]*:(\d+)/.exec(seen);
      if (m) {
        clearTimeout(timer);
        child.stdout.removeAllListeners("data");
        child.stdout.resume();
        const port = Number(m[1]);
        resolve({
          port, url: `http://127.0.0.1:${port}`,
          stop: () => new Promise((r) => { if (child.exitCode !== null) return r(); child.once("exit", r); child.kill("SIGTERM"); }),
        });
      }
    });
    child.once("exit", (code) => { clearTimeout(timer); reject(new Error(`starling exited (${code}): ${seen}`)); });
  });
}

export const SECRET = "s3cret-for-tests-0123456789abcdef";

/** An HS256 JWT with the claims the broker reads. */
export function mintToken(claims, secret = SECRET) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

export const channelName = (prefix = "js") => `${prefix}-${randomBytes(8).toString("hex")}`;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(predicate, ms = 5000, what = "condition") {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (predicate()) return;
    await sleep(5);
  }
  throw new Error(`timed out waiting for ${what}`);
}

export function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([promise, new Promise((_, no) => { t = setTimeout(() => no(new Error(`timeout: ${what}`)), ms); })])
    .finally(() => clearTimeout(t));
}
