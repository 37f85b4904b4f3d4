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

import time
from contextlib import ExitStack
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import httpx

from .errors import Refused, Unavailable
from .events import Event, PublishResult
from .generation import Generation
from .producers import Producers
from .retry import Backoff
from .subscription import Subscription
from .wire import (CancelAttempts, PublishAttempts, TokenSource, answer_json, auth_headers, batch_body, batch_events, cancel_content,
                   json_content, many_body, many_events)


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
        return auth_headers(token if token is not None else self.token)

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
        evs = batch_events(events)
        with self._producers.lock(channel):
            body, producers = batch_body(self._producers, channel, evs)
            return self._post(f"/v1/channels/{channel}/events", body, producers)

    def publish_many(self, events: Iterable[Tuple[str, Any]]) -> PublishResult:
        """Events for several channels in one request: (channel, event) pairs. Each
        channel's events are stored in order as one batch (atomic per channel)."""
        pairs, counts = many_events(events)
        with ExitStack() as stack:
            for ch in sorted(counts):  # one order for every caller: no deadlock
                stack.enter_context(self._producers.lock(ch))
            body, producers = many_body(self._producers, pairs, counts)
            return self._post("/v1/events", body, producers)

    def _post(self, path: str, body: List[dict], producers: Dict[str, str]) -> PublishResult:
        content = json_content(body)
        tries = PublishAttempts(path, self.backoff, self._producers, producers)
        for attempt in range(1, self.backoff.attempts + 1):
            if attempt > 1:
                time.sleep(tries.delay(attempt))
            headers = {"Content-Type": "application/json", **self.auth_headers()}
            try:
                r = self._http.post(self.url + path, content=content, headers=headers)
            except httpx.TransportError as e:
                tries.failed(e)
                continue
            result = tries.answered(r, attempt)
            if result is not None:
                return result
        raise tries.gave_up()

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
        body = cancel_content(reason)
        tries = CancelAttempts(channel, self.backoff)
        for attempt in range(1, self.backoff.attempts + 1):
            if attempt > 1:
                time.sleep(tries.delay(attempt))
            try:
                r = self._http.post(f"{self.url}/v1/channels/{channel}/cancel", content=body,
                                    headers={"Content-Type": "application/json", **self.auth_headers()})
            except httpx.TransportError as e:
                tries.failed(e)
                continue
            result = tries.answered(r)
            if result is not None:
                if result["id"] is None:  # an earlier attempt got through: its event is the last one
                    result["id"] = self.channel(channel)["last_id"]
                return result
        raise tries.gave_up()

    # ---- subscribe and read ----------------------------------------------------------------------

    def subscribe(self, channels: Union[str, Sequence[str]], *, last_event_id: Optional[str] = None,
                  token: TokenSource = None, on_heartbeat: Optional[Callable[[str], None]] = None,
                  read_timeout: float = 60.0, merge: bool = False) -> Subscription:
        """Events of one channel (a str) or several (a list: one multiplexed stream).
        `last_event_id`: resume after this ID, "earliest" for all retained history, None
        for live only. `merge=True`: `?merge=1` on every (re)connect, so replayed runs of
        token events come merged (the same text in fewer events; subscription.py)."""
        return Subscription(self, channels, last_event_id=last_event_id, token=token,
                            on_heartbeat=on_heartbeat, read_timeout=read_timeout, merge=merge)

    def channel(self, channel: str) -> Dict[str, Any]:
        """`{"last_id","length","final","subscribers"}` of a channel."""
        return answer_json(self._http.get(f"{self.url}/v1/channels/{channel}", headers=self.auth_headers()))


__all__ = ["Client", "TokenSource", "Refused"]
