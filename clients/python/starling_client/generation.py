"""A generation: one streaming NDJSON publish held open while a model produces tokens.

    with client.stream("chat-42") as g:
        for piece in model():
            g.token(piece)            # on the wire at once, one NDJSON line
        g.progress({"pct": 100})
        g.final({"done": True})       # the last event; waits for the broker's answer

A sender thread runs the HTTP request; its body is an iterator that yields each line the
moment the worker hands it over. While it waits for the next line it also watches the
socket: the broker answers a streaming publish early only to refuse it (401, 400, 409,
413: docs/api.md), so as soon as the socket turns readable the body ends, the answer is
read, and the worker's next call raises `Refused` (`Cancelled` when the channel was
stopped: the broker answers within milliseconds of the Stop). If the connection drops (or the broker
answers 503), the sender reconnects with backoff and sends every line of the generation
again from the first: each line carries this generation's producer id and its seq, so the
broker acknowledges the lines it already has as duplicates and stores only the rest.
"""
from __future__ import annotations

import json
import os
import select
import threading
import time
from typing import TYPE_CHECKING, Any, Iterator, List, Optional

import httpx

from .errors import Refused, StarlingError, Unavailable, refused_from_response
from .events import Event, PublishResult
from .producers import new_producer_id
from .retry import RETRY_STATUSES

if TYPE_CHECKING:
    from .client import Client


class Generation:
    def __init__(self, client: "Client", channel: str, producer: Optional[str] = None,
                 lease: Optional[float] = None) -> None:
        self.client = client
        self.channel = channel
        self.lease = lease
        self.producer = producer or new_producer_id("gen")
        self.result: Optional[PublishResult] = None
        self.error: Optional[StarlingError] = None
        self.attempts = 0
        self._lines: List[bytes] = []
        self._has_final = False
        self._closing = False
        self._cond = threading.Condition()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name=f"starling-stream-{channel}", daemon=True)
        self._started = False

    # ---- the worker's side ---------------------------------------------------------------

    def __enter__(self) -> "Generation":
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            # The worker failed: end the request without a final event, keep what was sent.
            try:
                self.close(timeout=self.client.timeout)
            except StarlingError:
                pass

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def token(self, text: str) -> None:
        """One generation token (event `token`, never conflated)."""
        self.event("token", text)

    def progress(self, data: Any, conflate: Optional[str] = None) -> None:
        """A progress snapshot (event `progress`); conflated per channel, so a slow
        subscriber may skip to the newest."""
        self.event("progress", data, conflate=conflate or f"{self.channel}:progress")

    def preview(self, data: Any, conflate: Optional[str] = None) -> None:
        """A preview snapshot (event `preview`), conflated like progress."""
        self.event("preview", data, conflate=conflate or f"{self.channel}:preview")

    def event(self, name: str, data: Any, conflate: Optional[str] = None) -> None:
        self._append(Event(data, name, conflate))

    def final(self, data: Any = None, event: str = "final") -> PublishResult:
        """The last event: completes the channel, ends the request, returns the answer."""
        self._append(Event({} if data is None else data, event, final=True))
        return self.close()

    def close(self, timeout: Optional[float] = None) -> PublishResult:
        """Ends the request body and waits for the broker's answer (again: the same)."""
        if self._wake_r < 0:
            if self.error is not None:
                raise self.error
            assert self.result is not None
            return self.result
        self.start()
        with self._cond:
            self._closing = True
        self._wake()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise Unavailable(f"the stream to {self.channel} did not finish within {timeout} s")
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._wake_r = self._wake_w = -1
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    @property
    def sent(self) -> int:
        """Lines handed to the stream so far."""
        return len(self._lines)

    def _append(self, e: Event) -> None:
        if self.error is not None:
            raise self.error
        with self._cond:
            if self._closing or self._has_final:
                raise StarlingError(f"the generation on {self.channel} is already closed")
            seq = len(self._lines) + 1
            line = json.dumps(e.body(self.producer, seq), separators=(",", ":"), ensure_ascii=False) + "\n"
            self._lines.append(line.encode("utf-8"))
            self._has_final = e.final
        self._wake()
        self.start()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except (BlockingIOError, OSError):
            pass  # already awake (pipe full) or closed

    # ---- the sender thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._send_all()
        except Exception as e:  # noqa: BLE001 - a bug here must not leave close() waiting on nothing
            if self.result is None and self.error is None:
                self.error = StarlingError(f"the stream to {self.channel} failed: {e!r}")

    def _send_all(self) -> None:
        backoff = self.client.backoff
        failures = 0
        high_water = 0   # lines sent in any attempt so far
        maybe_stored = False
        retry_after: Optional[float] = None
        last: Optional[BaseException] = None
        http = httpx.Client(timeout=self.client.timeout, limits=httpx.Limits(max_keepalive_connections=0))
        try:
            while True:
                if failures:
                    if failures >= backoff.attempts:
                        self.error = Unavailable(f"streaming publish to {self.channel} failed {failures} times: {last}", last, maybe_stored)
                        return
                    time.sleep(backoff.delay(failures, retry_after))
                self.attempts += 1
                sent = [0]
                outcome = self._attempt(http, sent)
                if sent[0] > high_water:
                    high_water = sent[0]
                    failures = 0  # progress: count failures afresh
                if isinstance(outcome, PublishResult):
                    outcome.attempts = self.attempts
                    self.result = outcome
                    return
                failures += 1
                last = outcome
                maybe_stored = maybe_stored or sent[0] > 0
                retry_after = outcome.retry_after if isinstance(outcome, Refused) else None
                if isinstance(outcome, Refused) and outcome.status not in RETRY_STATUSES:
                    self.error = outcome
                    return
        finally:
            http.close()

    def _attempt(self, http: httpx.Client, sent: List[int]) -> Any:
        """One request: a PublishResult, a Refused answer, or the transport error."""
        sock: List[Any] = []

        def trace(name: str, info: dict) -> None:
            if name.endswith("connect_tcp.complete") and info.get("return_value") is not None:
                sock.append(info["return_value"].get_extra_info("socket"))

        headers = {"Content-Type": "application/x-ndjson", **self.client.auth_headers()}
        if self.lease is not None:
            headers["Starling-Lease"] = f"{self.lease:g}"
        try:
            with http.stream("POST", f"{self.client.url}/v1/channels/{self.channel}/events",
                             content=self._body(sock, sent), headers=headers, extensions={"trace": trace}) as r:
                body = r.read()
        except httpx.TransportError as e:
            return e
        if r.status_code == 200:
            return PublishResult.from_json(json.loads(body))
        return refused_from_response(r.status_code, body, r.headers.get("retry-after"))

    def _body(self, sock: List[Any], sent: List[int]) -> Iterator[bytes]:
        """Every line from the first, then each new one as it comes, until closed or until
        the broker has something to say."""
        while True:
            with self._cond:
                pending = self._lines[sent[0]:]
                closing = self._closing
            if pending:
                sent[0] += len(pending)
                yield b"".join(pending)
                continue
            if closing:
                return
            watch = [self._wake_r] + [s for s in sock[:1] if s is not None]
            readable, _, _ = select.select(watch, [], [])
            if self._wake_r in readable:
                try:
                    os.read(self._wake_r, 4096)
                except BlockingIOError:
                    pass
            if len(watch) > 1 and watch[1] in readable:
                return  # an early answer (or a close): stop sending and read it
