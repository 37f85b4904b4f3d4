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

`merge=True` asks for `?merge=1` on every (re)connect: the history replayed from the
resume point comes with each run of the broker's token events (`--merge-events`) merged
into one event, the same text in fewer events; its ID is the last merged event's, so a
resume from it loses and repeats nothing. Live events still come one by one.

The reconnect rules and the SSE reading live here once: Subscription (sync) and
AsyncSubscription (aio.py) differ only in how they wait and read.
"""
from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Callable, Iterator, List, Optional, Sequence, Tuple, Union

import httpx

from .errors import Unavailable, refused_from_response
from .events import Notice, Received, received
from .retry import RETRY_STATUSES, Backoff
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
        merge: bool = False,
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
        self.merge = merge
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

    def _request(self) -> Tuple[str, Optional[List[Tuple[str, str]]], dict]:
        """URL, query and headers of one (re)connect: the resume point and token as they
        are now, `merge=1` when asked."""
        if self.multiplexed:
            url = f"{self.client.url}/v1/events"
            params: List[Tuple[str, str]] = [("channel", c) for c in self.channels]
        else:
            url, params = f"{self.client.url}/v1/channels/{self.channels[0]}/events", []
        if self.merge:
            params.append(("merge", "1"))
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        headers.update(self.client.auth_headers(self.token))
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        return url, params or None, headers

    def _received(self, decoder: SSEDecoder, chunk: bytes) -> Iterator[Received]:
        """The events a chunk completes; heartbeat comments go to on_heartbeat."""
        for item in decoder.feed(chunk):
            if isinstance(item, SSEMessage):
                yield self._event(item)
            elif isinstance(item, SSEComment) and self.on_heartbeat is not None and item.text != "starling":
                self.on_heartbeat(item.text)

    def _events(self) -> Iterator[Received]:
        attempts = Reconnects(self.client.backoff, self.channels)
        http = httpx.Client(timeout=httpx.Timeout(self.client.timeout, read=self.read_timeout))
        try:
            while not self._closed.is_set():
                delay = attempts.delay()
                if delay is not None and self._closed.wait(delay):
                    return
                delivered = False
                try:
                    self.connects += 1
                    url, params, headers = self._request()
                    with http.stream("GET", url, params=params, headers=headers) as r:
                        self._response = r
                        if r.status_code == 204:
                            return  # complete: nothing after the resume point
                        if r.status_code != 200:
                            attempts.refused(r.status_code, r.read(), r.headers.get("retry-after"))
                            continue
                        attempts.opened()
                        decoder = SSEDecoder()
                        for chunk in r.iter_raw():
                            for e in self._received(decoder, chunk):
                                delivered = True
                                yield e
                                if self._closed.is_set():
                                    return
                except httpx.TransportError as e:
                    if self._closed.is_set():
                        return
                    attempts.dropped(e)
                    continue
                finally:
                    self._response = None
                attempts.ended(delivered)
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


class Reconnects:
    """When a subscription connects again, and when it gives up: the state both readers
    share. Consecutive failures back off (honouring Retry-After); a stream that carried an
    event resets them, so after a clean end the next connect comes at once."""

    def __init__(self, backoff: Backoff, channels: Sequence[str]) -> None:
        self.backoff = backoff
        self.channels = channels
        self.failures = 0
        self.retry_after: Optional[float] = None
        self.last: Optional[BaseException] = None

    def delay(self) -> Optional[float]:
        """Seconds to wait before the next connect (None: at once). Raises Unavailable
        once every attempt failed."""
        if not self.failures:
            return None
        if self.failures >= self.backoff.attempts:
            raise Unavailable(f"subscribe to {','.join(self.channels)} failed {self.failures} times: {self.last}",
                              self.last, False)
        wait = self.backoff.delay(self.failures, self.retry_after)
        self.retry_after = None
        return wait

    def refused(self, status: int, body: bytes, retry_after: Optional[str]) -> None:
        """An answer other than 200 and 204: a 502/503/504 counts as a failure, any other
        is raised (retrying cannot help)."""
        err = refused_from_response(status, body, retry_after)
        if status not in RETRY_STATUSES:
            raise err
        self.failures, self.last, self.retry_after = self.failures + 1, err, err.retry_after

    def opened(self) -> None:
        self.failures = 0

    def dropped(self, error: BaseException) -> None:
        self.failures, self.last = self.failures + 1, error

    def ended(self, delivered: bool) -> None:
        """The stream ended cleanly (after a final event, a token expiry, a drain or a
        slow-consumer cut): reconnect at once if it carried anything."""
        if not delivered:
            self.failures += 1
            self.last = ConnectionError("the stream ended without an event")
