"""Subscribe: an iterator of events that resumes by Last-Event-ID on its own.

    for e in client.subscribe("chat-42", last_event_id="earliest"):
        if isinstance(e, Gap): ...           # history asked for is gone
        elif e.event == "token": print(e.data, end="")

After any drop the subscription reconnects with the ID of the last event it yielded, so
the broker replays exactly what was missed. It ends (the loop finishes) when the broker
answers 204: the channel is complete and everything up to its final event was yielded.
The broker ends a stream right after its final event, so the subscription reconnects at
once after a stream that ended cleanly, and the 204 comes one round trip later.

`token` may be a callable: it is called on every (re)connect, and a `starling.expired`
notice makes the subscription reconnect with a fresh one. Notices (`starling.*`) are
yielded as typed events (Gap, Expired, ...) and never move the resume point.
"""
from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Callable, Iterator, List, Optional, Sequence, Union

import httpx

from .errors import Unavailable, refused_from_response
from .events import Notice, Received, received
from .retry import RETRY_STATUSES
from .sse import SSEComment, SSEDecoder, SSEMessage

if TYPE_CHECKING:
    from .client import Client, TokenSource


class Subscription:
    def __init__(
        self,
        client: "Client",
        channels: Union[str, Sequence[str]],
        *,
        last_event_id: Optional[str] = None,
        token: "TokenSource" = None,
        on_heartbeat: Optional[Callable[[str], None]] = None,
        read_timeout: float = 60.0,
    ) -> None:
        self.client = client
        self.channels: List[str] = [channels] if isinstance(channels, str) else list(channels)
        if not self.channels:
            raise ValueError("subscribe to at least one channel")
        self.multiplexed = not isinstance(channels, str)
        self.last_event_id = last_event_id
        self.token = token if token is not None else client.token
        self.on_heartbeat = on_heartbeat
        self.read_timeout = read_timeout
        self.connects = 0
        self._closed = threading.Event()
        self._response: Optional[httpx.Response] = None

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[Received]:
        return self._events()

    def close(self) -> None:
        self._closed.set()
        r = self._response
        if r is not None:
            try:
                r.close()
            except Exception:  # noqa: BLE001 - closing from another thread mid-read
                pass

    def _url(self) -> str:
        if self.multiplexed:
            return f"{self.client.url}/v1/events"
        return f"{self.client.url}/v1/channels/{self.channels[0]}/events"

    def _headers(self) -> dict:
        h = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        h.update(self.client.auth_headers(self.token))
        if self.last_event_id:
            h["Last-Event-ID"] = self.last_event_id
        return h

    def _events(self) -> Iterator[Received]:
        backoff = self.client.backoff
        failures = 0
        retry_after: Optional[float] = None
        last: Optional[BaseException] = None
        params = [("channel", c) for c in self.channels] if self.multiplexed else None
        http = httpx.Client(timeout=httpx.Timeout(self.client.timeout, read=self.read_timeout))
        try:
            while not self._closed.is_set():
                if failures:
                    if failures >= backoff.attempts:
                        raise Unavailable(f"subscribe to {','.join(self.channels)} failed {failures} times: {last}", last, False)
                    if self._closed.wait(backoff.delay(failures, retry_after)):
                        return
                retry_after = None
                delivered = False
                try:
                    self.connects += 1
                    with http.stream("GET", self._url(), params=params, headers=self._headers()) as r:
                        self._response = r
                        if r.status_code == 204:
                            return  # complete: nothing after the resume point
                        if r.status_code != 200:
                            err = refused_from_response(r.status_code, r.read(), r.headers.get("retry-after"))
                            if r.status_code in RETRY_STATUSES:
                                failures, last, retry_after = failures + 1, err, err.retry_after
                                continue
                            raise err
                        failures = 0
                        decoder = SSEDecoder()
                        for chunk in r.iter_raw():
                            for item in decoder.feed(chunk):
                                if isinstance(item, SSEMessage):
                                    e = self._event(item)
                                    delivered = True
                                    yield e
                                    if self._closed.is_set():
                                        return
                                elif isinstance(item, SSEComment) and self.on_heartbeat is not None and item.text != "starling":
                                    self.on_heartbeat(item.text)
                except httpx.TransportError as e:
                    if self._closed.is_set():
                        return
                    failures, last = failures + 1, e
                    continue
                finally:
                    self._response = None
                # The stream ended cleanly (after a final event, a token expiry, a drain or
                # a slow-consumer cut): reconnect at once if it carried anything.
                if not delivered:
                    failures += 1
                    last = ConnectionError("the stream ended without an event")
        finally:
            http.close()

    def _event(self, m: SSEMessage) -> Received:
        if m.id is not None:
            self.last_event_id = m.id
        if self.multiplexed and not m.event.startswith("starling."):
            envelope = json.loads(m.data)
            data = envelope["data"]
            text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
            return received(m.event, text, m.id, envelope["channel"])
        channel = None if self.multiplexed else self.channels[0]
        e = received(m.event, m.data, m.id, channel)
        if isinstance(e, Notice) and e.channel is None:
            try:
                e.channel = e.json().get("channel")
            except (ValueError, AttributeError):
                pass
        return e
