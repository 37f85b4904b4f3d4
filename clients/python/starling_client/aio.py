"""The asyncio client: the same calls as Client, awaited.

    async with AsyncClient("http://127.0.0.1:8080", token=token) as client:
        await client.publish("chat-42", "Hello", event="token")
        async with client.stream("chat-42") as g:
            g.token("Hel"); g.token("lo")       # never block: the line is queued for the sender
            await g.final({"done": True})
        async for e in client.subscribe("chat-42", last_event_id="earliest"):
            ...

Publishing and subscribing run on httpx.AsyncClient. A generation reuses the sync
Generation (generation.py): its sender thread is what lets the client watch the socket
for an early refusal while the request body is still open, and handing it a token is a
non-blocking queue append, so calling g.token() from a coroutine is fine; only the end
(final/close) is awaited in a worker thread. `token` may be a string or a plain
(non-async) callable, since the sender thread calls it too.
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Sequence, Tuple, Union

import httpx

from .errors import Refused
from .events import Event, PublishResult, Received
from .generation import Generation
from .producers import Producers
from .retry import Backoff
from .sse import SSEDecoder
from .subscription import Reconnects, Subscription
from .wire import (CancelAttempts, PublishAttempts, TokenSource, answer_json, auth_headers, batch_body, batch_events, cancel_content,
                   json_content, many_body, many_events)


class AsyncClient:
    def __init__(self, url: str = "http://127.0.0.1:8080", token: TokenSource = None, *, timeout: float = 10.0,
                 backoff: Optional[Backoff] = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.backoff = backoff or Backoff()
        self._http = httpx.AsyncClient(timeout=timeout)
        self._producers = Producers()
        self._locks: Dict[str, asyncio.Lock] = {}

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def auth_headers(self, token: TokenSource = None) -> Dict[str, str]:
        return auth_headers(token if token is not None else self.token)

    def _lock(self, channel: str) -> asyncio.Lock:
        return self._locks.setdefault(channel, asyncio.Lock())

    # ---- publish ---------------------------------------------------------------------------

    async def publish(self, channel: str, data: Any, *, event: str = "message", conflate: Optional[str] = None,
                      final: bool = False, lease: Optional[float] = None) -> PublishResult:
        return await self.publish_batch(channel, [Event(data, event, conflate, final, lease)])

    async def publish_batch(self, channel: str, events: Sequence[Any]) -> PublishResult:
        evs = batch_events(events)
        async with self._lock(channel):
            body, producers = batch_body(self._producers, channel, evs)
            return await self._post(f"/v1/channels/{channel}/events", body, producers)

    async def publish_many(self, events: Sequence[Tuple[str, Any]]) -> PublishResult:
        pairs, counts = many_events(events)
        locks = [self._lock(ch) for ch in sorted(counts)]
        for lock in locks:
            await lock.acquire()
        try:
            body, producers = many_body(self._producers, pairs, counts)
            return await self._post("/v1/events", body, producers)
        finally:
            for lock in locks:
                lock.release()

    async def _post(self, path: str, body: List[dict], producers: Dict[str, str]) -> PublishResult:
        """The retry loop of Client._post, awaited (see client.py for the reasons)."""
        content = json_content(body)
        tries = PublishAttempts(path, self.backoff, self._producers, producers)
        for attempt in range(1, self.backoff.attempts + 1):
            if attempt > 1:
                await asyncio.sleep(tries.delay(attempt))
            headers = {"Content-Type": "application/json", **self.auth_headers()}
            try:
                r = await self._http.post(self.url + path, content=content, headers=headers)
            except httpx.TransportError as e:
                tries.failed(e)
                continue
            result = tries.answered(r, attempt)
            if result is not None:
                return result
        raise tries.gave_up()

    async def channel(self, channel: str) -> Dict[str, Any]:
        return answer_json(await self._http.get(f"{self.url}/v1/channels/{channel}", headers=self.auth_headers()))

    # ---- generation and subscribe ---------------------------------------------------------------

    def stream(self, channel: str, *, producer: Optional[str] = None, lease: Optional[float] = None) -> "AsyncGeneration":
        return AsyncGeneration(Generation(self, channel, producer, lease))  # type: ignore[arg-type]

    async def cancel(self, channel: str, reason: Optional[str] = None) -> Dict[str, Any]:
        """Stop (see Client.cancel): retried as the sync client does."""
        body = cancel_content(reason)
        tries = CancelAttempts(channel, self.backoff)
        for attempt in range(1, self.backoff.attempts + 1):
            if attempt > 1:
                await asyncio.sleep(tries.delay(attempt))
            try:
                r = await self._http.post(f"{self.url}/v1/channels/{channel}/cancel", content=body,
                                          headers={"Content-Type": "application/json", **self.auth_headers()})
            except httpx.TransportError as e:
                tries.failed(e)
                continue
            result = tries.answered(r)
            if result is not None:
                if result["id"] is None:  # an earlier attempt got through: its event is the last one
                    result["id"] = (await self.channel(channel))["last_id"]
                return result
        raise tries.gave_up()

    def subscribe(self, channels: Union[str, Sequence[str]], *, last_event_id: Optional[str] = None,
                  token: TokenSource = None, on_heartbeat: Optional[Callable[[str], None]] = None,
                  read_timeout: float = 60.0, merge: bool = False) -> "AsyncSubscription":
        """See Client.subscribe (`merge=True`: replayed token runs come merged)."""
        return AsyncSubscription(self, channels, last_event_id=last_event_id, token=token,
                                 on_heartbeat=on_heartbeat, read_timeout=read_timeout, merge=merge)


class AsyncGeneration:
    """A Generation whose end is awaited. token/progress/preview/event never block."""

    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        self.channel = generation.channel
        self.producer = generation.producer

    async def __aenter__(self) -> "AsyncGeneration":
        self.generation.start()
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        try:
            await self.close()
        except Refused:
            if exc_type is None:
                raise

    @property
    def error(self):
        return self.generation.error

    def token(self, text: str) -> None:
        self.generation.token(text)

    def progress(self, data: Any, conflate: Optional[str] = None) -> None:
        self.generation.progress(data, conflate)

    def preview(self, data: Any, conflate: Optional[str] = None) -> None:
        self.generation.preview(data, conflate)

    def event(self, name: str, data: Any, conflate: Optional[str] = None) -> None:
        self.generation.event(name, data, conflate)

    async def final(self, data: Any = None, event: str = "final") -> PublishResult:
        return await asyncio.to_thread(self.generation.final, data, event)

    async def close(self) -> PublishResult:
        return await asyncio.to_thread(self.generation.close)


class AsyncSubscription(Subscription):
    """Subscription as an async iterator, on httpx.AsyncClient (same resume and end rules)."""

    def __init__(self, client: AsyncClient, channels: Union[str, Sequence[str]], **kw: Any) -> None:
        super().__init__(client, channels, **kw)  # type: ignore[arg-type]
        self._ahttp = httpx.AsyncClient(timeout=httpx.Timeout(client.timeout, read=self.read_timeout))
        self._aresponse: Optional[httpx.Response] = None

    def __aiter__(self) -> AsyncIterator[Received]:
        return self._aevents()

    async def __aenter__(self) -> "AsyncSubscription":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed.set()
        if self._aresponse is not None:
            await self._aresponse.aclose()
        await self._ahttp.aclose()

    async def _aevents(self) -> AsyncIterator[Received]:
        attempts = Reconnects(self.client.backoff, self.channels)
        try:
            while not self._closed.is_set():
                delay = attempts.delay()
                if delay is not None:
                    await asyncio.sleep(delay)
                delivered = False
                try:
                    self.connects += 1
                    url, params, headers = self._request()
                    async with self._ahttp.stream("GET", url, params=params, headers=headers) as r:
                        self._aresponse = r
                        if r.status_code == 204:
                            return
                        if r.status_code != 200:
                            attempts.refused(r.status_code, await r.aread(), r.headers.get("retry-after"))
                            continue
                        attempts.opened()
                        decoder = SSEDecoder()
                        async for chunk in r.aiter_raw():
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
                    self._aresponse = None
                attempts.ended(delivered)
        finally:
            await self._ahttp.aclose()
