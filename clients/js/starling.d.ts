// Type declarations for starling.js (the module the broker serves at /starling.js).

/** One event from a stream. `data` is the SSE data text: a JSON string's content, or
 * compact JSON for any other value. `id` is the resume point after this event. */
export interface StarlingEvent {
  event: string;
  data: string;
  id: string | null;
  /** On a multiplexed stream (/v1/events?channel=…), and on notices that name one. */
  channel?: string;
}

/** A `starling.*` notice written by the broker (starling.gap, starling.expired, …).
 * `detail` is its parsed JSON data. Notices never move the resume point. */
export interface StarlingNotice extends StarlingEvent {
  detail: any;
}

export interface RetryInfo {
  /** Consecutive failed attempts so far (1 for the first retry). */
  attempt: number;
  /** How long the client waits before the next attempt. */
  delayMs: number;
  /** The broker's Retry-After in ms (0 when it sent none): a floor for delayMs. */
  retryAfterMs: number;
}

export interface SubscribeOptions {
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** Called on every (re)connect and after `starling.expired`; its token goes in
   * `Authorization: Bearer`. */
  getToken?: () => string | null | Promise<string | null>;
  /** Resume after this ID (or "earliest" for all retained history); none: live only. */
  lastEventId?: string | null;
  /** Ask for merged replay: `merge=1` is added to the URL on every (re)connect. Replayed
   * runs of the broker's token events (`--merge-events`) then arrive as fewer events whose
   * `data` concatenates to the same text; each one's `id` is the last merged event's, so a
   * resume loses and repeats nothing. Live events still come one by one. Default false. */
  merge?: boolean;
  /** Aborting it closes the subscription (as close() does). */
  signal?: AbortSignal;
  /** Base backoff in ms (default: the broker's `retry:`, 2000). Doubles per failure. */
  retryMs?: number;
  /** Longest single wait between attempts (default 30000). */
  maxRetryMs?: number;
  /** Give up (onError, `done` rejects) after this many consecutive failures (default: never). */
  maxAttempts?: number;
  onEvent?: (e: StarlingEvent) => void;
  onNotice?: (e: StarlingNotice) => void;
  /** SSE comment lines: the broker's heartbeats. */
  onHeartbeat?: (text: string) => void;
  onOpen?: (response: Response) => void;
  /** Every failure; reconnects follow unless the error is final (then `done` rejects). */
  onError?: (error: Error | StarlingError) => void;
  onRetry?: (info: RetryInfo) => void;
  /** The channel is complete: everything up to its final event was delivered. */
  onEnd?: () => void;
}

export interface Subscription {
  close(): void;
  readonly lastEventId: string | null;
  readonly closed: boolean;
  /** Resolves at the end (final event / 204) or on close(); rejects on a final error. */
  readonly done: Promise<void>;
}

export function subscribe(url: string, options?: SubscribeOptions): Subscription;

export interface PublishResult {
  count: number;
  first: string | null;
  last: string | null;
  duplicates?: number;
}

export interface PublishEvent {
  data: unknown;
  event?: string;
  conflate?: string;
  final?: boolean;
  producer?: string;
  seq?: number;
}

export function publish(
  url: string,
  events: PublishEvent | PublishEvent[],
  options?: { headers?: Record<string, string>; getToken?: () => string | Promise<string>; signal?: AbortSignal },
): Promise<PublishResult>;

export class StarlingError extends Error {
  constructor(status: number, code: string, message: string, retryAfterMs?: number);
  readonly status: number;
  readonly code: string;
  readonly retryAfterMs: number;
  static from(response: Response): Promise<StarlingError>;
}

/** `url` with `merge=1` in its query (replacing any `merge=`); what `merge: true` fetches. */
export function withMerge(url: string): string;

export function backoffDelay(attempt: number, baseMs: number, maxMs: number, retryAfterMs?: number): number;

export type SSEItem =
  | { type: "event"; event: string; data: string; id: string | null }
  | { type: "comment"; text: string }
  | { type: "retry"; ms: number };

export class SSEParser {
  feed(bytes: Uint8Array): SSEItem[];
}
