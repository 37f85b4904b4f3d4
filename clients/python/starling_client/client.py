"""The HTTP client (sync): publish, stream a generation, subscribe, channel info.

    client = Client("http://127.0.0.1:8080", token=mint_token(secret, publish=["chat-*"]))
    client.publish("chat-42", "Hello", event="token")
    client.publish_batch("chat-42", [Event("wor", "token"), Event("ld", "token")])
    client.publish_many([("chat-42", Event({"pct": 50}, "progress")), ("chat-43", "hi")])

Every event goes out with a producer id and seq (producers.py), so the retries of
timeouts, dropped connections and 503s (with backoff, honouring Retry-After) can never
store an event twice.
"""
from __future__ import annotations

import json
import time
from contextlib import ExitStack
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import httpx

from .errors import Refused, Unavailable, refused_from_response
from .events import Event, PublishResult, as_event
from .generation import Generation
from .producers import Producers
from .retry import RETRY_STATUSES, Backoff
from .subscription import Subscription

TokenSource = Union[None, str, Callable[[], str]]


class Client:
    def __init__(
        self,
        url: str = "http://127.0.0.1:8080",
        token: TokenSource = None,
        *,
        timeout: float = 10.0,
        backoff: Optional[Backoff] = None,
    ) -> None:
        """`token`: a JWT, or a callable returning one (called for every request and
        reconnect, so it can refresh), or None when the broker runs open."""
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.backoff = backoff or Backoff()
        self._http = httpx.Client(timeout=timeout)
        self._producers = Producers()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def auth_headers(self, token: TokenSource = None) -> Dict[str, str]:
        source = token if token is not None else self.token
        value = source() if callable(source) else source
        return {"Authorization": f"Bearer {value}"} if value else {}

    # ---- publish ---------------------------------------------------------------------------

    def publish(self, channel: str, data: Any, *, event: str = "message", conflate: Optional[str] = None,
                final: bool = False, lease: Optional[float] = None) -> PublishResult:
        """One event. `data` is any JSON value (a str is sent as its raw text). `lease`
        (seconds): unless another publish renews it in time, the broker ends the channel
        with `starling.abandoned`."""
        return self.publish_batch(channel, [Event(data, event, conflate, final, lease)])

    def publish_batch(self, channel: str, events: Sequence[Any]) -> PublishResult:
        """An ordered batch on one channel, stored all or nothing. Items: Event, a dict
        with data/event/conflate/final, or a bare data value."""
        evs = [as_event(e) for e in events]
        if not evs:
            raise ValueError("a batch needs at least one event")
        with self._producers.lock(channel):
            producer, first = self._producers.reserve(channel, len(evs))
            body = [e.body(producer, first + k) for k, e in enumerate(evs)]
            return self._post(f"/v1/channels/{channel}/events", body, {channel: producer})

    def publish_many(self, events: Iterable[Tuple[str, Any]]) -> PublishResult:
        """Events for several channels in one request: (channel, event) pairs. Each
        channel's events are stored in order as one batch (atomic per channel)."""
        pairs = [(ch, as_event(e)) for ch, e in events]
        if not pairs:
            raise ValueError("publish_many needs at least one event")
        counts: Dict[str, int] = {}
        for ch, _ in pairs:
            counts[ch] = counts.get(ch, 0) + 1
        with ExitStack() as stack:
            for ch in sorted(counts):  # one order for every caller: no deadlock
                stack.enter_context(self._producers.lock(ch))
            producers: Dict[str, str] = {}
            next_seq: Dict[str, int] = {}
            for ch, n in counts.items():
                producers[ch], next_seq[ch] = self._producers.reserve(ch, n)
            body: List[dict] = []
            for ch, e in pairs:
                body.append(e.body(producers[ch], next_seq[ch], channel=ch))
                next_seq[ch] += 1
            return self._post("/v1/events", body, producers)

    def _post(self, path: str, body: List[dict], producers: Dict[str, str]) -> PublishResult:
        content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        maybe_stored = False
        retry_after: Optional[float] = None
        last: Optional[BaseException] = None
        for attempt in range(1, self.backoff.attempts + 1):
            if attempt > 1:
                time.sleep(self.backoff.delay(attempt - 1, retry_after))
            retry_after = None
            headers = {"Content-Type": "application/json", **self.auth_headers()}
            try:
                r = self._http.post(self.url + path, content=content, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                last = e  # never reached the broker
                continue
            except httpx.TransportError as e:
                last, maybe_stored = e, True
                continue
            if r.status_code == 200:
                return PublishResult.from_json(r.json(), attempt)
            err = refused_from_response(r.status_code, r.content, r.headers.get("retry-after"))
            if r.status_code in RETRY_STATUSES:
                last, maybe_stored, retry_after = err, True, err.retry_after
                continue
            self._retire(producers)
            raise err
        self._retire(producers)
        raise Unavailable(f"POST {path} failed {self.backoff.attempts} times: {last}", last, maybe_stored)

    def _retire(self, producers: Dict[str, str]) -> None:
        for ch, p in producers.items():
            self._producers.retire(ch, p)

    # ---- streaming generation ------------------------------------------------------------------

    def stream(self, channel: str, *, producer: Optional[str] = None, lease: Optional[float] = None) -> Generation:
        """A generation held open as one streaming NDJSON publish (generation.py). With
        `lease` (seconds, the `Starling-Lease` header) the open request holds the channel;
        if the worker dies without a final event, subscribers get `starling.abandoned`."""
        return Generation(self, channel, producer, lease)

    def cancel(self, channel: str, reason: Optional[str] = None) -> Dict[str, Any]:
        """Stop: ends the channel with a final `starling.cancelled` event; a generation
        streaming into it is refused at once (`Cancelled`). Returns `{"id","state"}`.
        Needs the channel in the token's `cancel` or `publish` claims."""
        body = json.dumps({"reason": reason} if reason is not None else {}).encode("utf-8")
        last: Optional[BaseException] = None
        retry_after: Optional[float] = None
        for attempt in range(1, self.backoff.attempts + 1):
            if attempt > 1:
                time.sleep(self.backoff.delay(attempt - 1, retry_after))
            try:
                r = self._http.post(f"{self.url}/v1/channels/{channel}/cancel", content=body,
                                    headers={"Content-Type": "application/json", **self.auth_headers()})
            except httpx.TransportError as e:  # a repeated Stop is harmless
                last = e
                continue
            if r.status_code == 200:
                return r.json()
            err = refused_from_response(r.status_code, r.content, r.headers.get("retry-after"))
            if r.status_code not in RETRY_STATUSES:
                raise err
            last, retry_after = err, err.retry_after
        raise Unavailable(f"cancel {channel} failed {self.backoff.attempts} times: {last}", last, True)

    # ---- subscribe and read ----------------------------------------------------------------------

    def subscribe(self, channels: Union[str, Sequence[str]], *, last_event_id: Optional[str] = None,
                  token: TokenSource = None, on_heartbeat: Optional[Callable[[str], None]] = None,
                  read_timeout: float = 60.0) -> Subscription:
        """Events of one channel (a str) or several (a list: one multiplexed stream).
        `last_event_id`: resume after this ID, "earliest" for all retained history, None
        for live only."""
        return Subscription(self, channels, last_event_id=last_event_id, token=token,
                            on_heartbeat=on_heartbeat, read_timeout=read_timeout)

    def channel(self, channel: str) -> Dict[str, Any]:
        """`{"last_id","length","final","subscribers"}` of a channel."""
        r = self._http.get(f"{self.url}/v1/channels/{channel}", headers=self.auth_headers())
        if r.status_code != 200:
            raise refused_from_response(r.status_code, r.content, r.headers.get("retry-after"))
        return r.json()


__all__ = ["Client", "TokenSource", "Refused"]
