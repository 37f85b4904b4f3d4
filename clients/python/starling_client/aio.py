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
import json
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Sequence, Tuple, Union

import httpx

from .client import TokenSource
from .errors import Refused, Unavailable, refused_from_response
from .events import Event, PublishResult, Received, as_event
from .generation import Generation
from .producers import Producers
from .retry import RETRY_STATUSES, Backoff
from .sse import SSEComment, SSEDecoder, SSEMessage
from .subscription import Subscription


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
        source = token if token is not None else self.token
        value = source() if callable(source) else source
        return {"Authorization": f"Bearer {value}"} if value else {}

    def _lock(self, channel: str) -> asyncio.Lock:
        return self._locks.setdefault(channel, asyncio.Lock())

    # ---- publish ---------------------------------------------------------------------------

    async def publish(self, channel: str, data: Any, *, event: str = "message", conflate: Optional[str] = None,
                      final: bool = False, lease: Optional[float] = None) -> PublishResult:
        return await self.publish_batch(channel, [Event(data, event, conflate, final, lease)])

    async def publish_batch(self, channel: str, events: Sequence[Any]) -> PublishResult:
        evs = [as_event(e) for e in events]
        if not evs:
            raise ValueError("a batch needs at least one event")
        async with self._lock(channel):
            producer, first = self._producers.reserve(channel, len(evs))
            body = [e.body(producer, first + k) for k, e in enumerate(evs)]
            return await self._post(f"/v1/channels/{channel}/events", body, {channel: producer})

    async def publish_many(self, events: Sequence[Tuple[str, Any]]) -> PublishResult:
        pairs = [(ch, as_event(e)) for ch, e in events]
        if not pairs:
            raise ValueError("publish_many needs at least one event")
        counts: Dict[str, int] = {}
        for ch, _ in pairs:
            counts[ch] = counts.get(ch, 0) + 1
        locks = [self._lock(ch) for ch in sorted(counts)]
        for lock in locks:
            await lock.acquire()
        try:
            producers: Dict[str, str] = {}
            next_seq: Dict[str, int] = {}
            for ch, n in counts.items():
                producers[ch], next_seq[ch] = self._producers.reserve(ch, n)
            body: List[dict] = []
            for ch, e in pairs:
                body.append(e.body(producers[ch], next_seq[ch], channel=ch))
                next_seq[ch] += 1
            return await self._post("/v1/events", body, producers)
        finally:
            for lock in locks:
                lock.release()

    async def _post(self, path: str, body: List[dict], producers: Dict[str, str]) -> PublishResult:
        """The retry loop of Client._post, awaited (see client.py for the reasons)."""
        content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        maybe_stored = False
        retry_after: Optional[float] = None
        last: Optional[BaseException] = None
        for attempt in range(1, self.backoff.attempts + 1):
            if attempt > 1:
                await asyncio.sleep(self.backoff.delay(attempt - 1, retry_after))
            retry_after = None
            headers = {"Content-Type": "application/json", **self.auth_headers()}
            try:
                r = await self._http.post(self.url + path, content=content, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                last = e
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

    async def channel(self, channel: str) -> Dict[str, Any]:
        r = await self._http.get(f"{self.url}/v1/channels/{channel}", headers=self.auth_headers())
        if r.status_code != 200:
            raise refused_from_response(r.status_code, r.content, r.headers.get("retry-after"))
        return r.json()

    # ---- generation and subscribe ---------------------------------------------------------------

    def stream(self, channel: str, *, producer: Optional[str] = None, lease: Optional[float] = None) -> "AsyncGeneration":
        return AsyncGeneration(Generation(self, channel, producer, lease))  # type: ignore[arg-type]

    async def cancel(self, channel: str, reason: Optional[str] = None) -> Dict[str, Any]:
        """Stop (see Client.cancel)."""
        body = json.dumps({"reason": reason} if reason is not None else {}).encode("utf-8")
        r = await self._http.post(f"{self.url}/v1/channels/{channel}/cancel", content=body,
                                  headers={"Content-Type": "application/json", **self.auth_headers()})
        if r.status_code != 200:
            raise refused_from_response(r.status_code, r.content, r.headers.get("retry-after"))
        return r.json()

    def subscribe(self, channels: Union[str, Sequence[str]], *, last_event_id: Optional[str] = None,
                  token: TokenSource = None, on_heartbeat: Optional[Callable[[str], None]] = None,
                  read_timeout: float = 60.0) -> "AsyncSubscription":
        return AsyncSubscription(self, channels, last_event_id=last_event_id, token=token,
                                 on_heartbeat=on_heartbeat, read_timeout=read_timeout)


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
        backoff = self.client.backoff
        failures = 0
        retry_after: Optional[float] = None
        last: Optional[BaseException] = None
        params = [("channel", c) for c in self.channels] if self.multiplexed else None
        try:
            while not self._closed.is_set():
                if failures:
                    if failures >= backoff.attempts:
                        raise Unavailable(f"subscribe to {','.join(self.channels)} failed {failures} times: {last}", last, False)
                    await asyncio.sleep(backoff.delay(failures, retry_after))
                retry_after = None
                delivered = False
                try:
                    self.connects += 1
                    async with self._ahttp.stream("GET", self._url(), params=params, headers=self._headers()) as r:
                        self._aresponse = r
                        if r.status_code == 204:
                            return
                        if r.status_code != 200:
                            err = refused_from_response(r.status_code, await r.aread(), r.headers.get("retry-after"))
                            if r.status_code in RETRY_STATUSES:
                                failures, last, retry_after = failures + 1, err, err.retry_after
                                continue
                            raise err
                        failures = 0
                        decoder = SSEDecoder()
                        async for chunk in r.aiter_raw():
                            for item in decoder.feed(chunk):
                                if isinstance(item, SSEMessage):
                                    delivered = True
                                    yield self._event(item)
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
                    self._aresponse = None
                if not delivered:
                    failures += 1
                    last = ConnectionError("the stream ended without an event")
        finally:
            await self._ahttp.aclose()
