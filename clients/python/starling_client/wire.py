"""What Client and AsyncClient share: building requests and reading answers, free of I/O.

Each client only sends and waits (httpx.Client or httpx.AsyncClient, time.sleep or
asyncio.sleep); the bodies, headers, producer seqs and the retry decisions of a publish
are made here once.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import httpx

from .errors import Refused, Unavailable, refused_from_response
from .events import Event, PublishResult, as_event
from .producers import Producers
from .retry import RETRY_STATUSES, Backoff

TokenSource = Union[None, str, Callable[[], str]]


def auth_headers(token: TokenSource) -> Dict[str, str]:
    """`Authorization: Bearer` for a token or a callable returning one (called now)."""
    value = token() if callable(token) else token
    return {"Authorization": f"Bearer {value}"} if value else {}


def json_content(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def cancel_content(reason: Optional[str]) -> bytes:
    return json.dumps({"reason": reason} if reason is not None else {}).encode("utf-8")


def refused(r: httpx.Response) -> Refused:
    """The typed error for an error answer whose body has been read."""
    return refused_from_response(r.status_code, r.content, r.headers.get("retry-after"))


def answer_json(r: httpx.Response) -> Dict[str, Any]:
    """The JSON of a 200, else the typed error raised."""
    if r.status_code != 200:
        raise refused(r)
    return r.json()


def batch_events(events: Sequence[Any]) -> List[Event]:
    evs = [as_event(e) for e in events]
    if not evs:
        raise ValueError("a batch needs at least one event")
    return evs


def batch_body(producers: Producers, channel: str, evs: List[Event]) -> Tuple[List[dict], Dict[str, str]]:
    """The request body of a batch on one channel, with its producer and seqs, and the
    producer used. Call holding the channel's lock."""
    producer, first = producers.reserve(channel, len(evs))
    return [e.body(producer, first + k) for k, e in enumerate(evs)], {channel: producer}


def many_events(events: Iterable[Tuple[str, Any]]) -> Tuple[List[Tuple[str, Event]], Dict[str, int]]:
    """(channel, Event) pairs and how many each channel has (lock them in sorted order)."""
    pairs = [(ch, as_event(e)) for ch, e in events]
    if not pairs:
        raise ValueError("publish_many needs at least one event")
    counts: Dict[str, int] = {}
    for ch, _ in pairs:
        counts[ch] = counts.get(ch, 0) + 1
    return pairs, counts


def many_body(producers: Producers, pairs: List[Tuple[str, Event]], counts: Dict[str, int]) -> Tuple[List[dict], Dict[str, str]]:
    """The request body of POST /v1/events and the producers used. Call holding every
    channel's lock."""
    used: Dict[str, str] = {}
    next_seq: Dict[str, int] = {}
    for ch, n in counts.items():
        used[ch], next_seq[ch] = producers.reserve(ch, n)
    body: List[dict] = []
    for ch, e in pairs:
        body.append(e.body(used[ch], next_seq[ch], channel=ch))
        next_seq[ch] += 1
    return body, used


class _Backoffs:
    """What every retry loop keeps: the backoff, the last failure, and a Retry-After the
    broker asked for, which floors the next wait only."""

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        self.retry_after: Optional[float] = None
        self.last: Optional[BaseException] = None

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt` (2 for the first retry)."""
        wait = self.backoff.delay(attempt - 1, self.retry_after)
        self.retry_after = None
        return wait


class PublishAttempts(_Backoffs):
    """The retry decisions of one publish request. Connection errors before the broker was
    reached, transport errors after it (the events may be stored) and 502/503/504 (with
    their Retry-After) are retried; any other refusal is final. A request that fails for
    good retires the producers it used (`used`: channel -> producer id), as their seqs are
    in doubt."""

    def __init__(self, path: str, backoff: Backoff, producers: Producers, used: Dict[str, str]) -> None:
        super().__init__(backoff)
        self.path = path
        self.producers = producers
        self.used = used
        self.maybe_stored = False

    def failed(self, error: httpx.TransportError) -> None:
        self.last = error
        if not isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout)):
            self.maybe_stored = True  # it may have reached the broker

    def answered(self, r: httpx.Response, attempt: int) -> Optional[PublishResult]:
        """The result of a 200, or None: retry. A final refusal is raised."""
        if r.status_code == 200:
            return PublishResult.from_json(r.json(), attempt)
        err = refused(r)
        if r.status_code not in RETRY_STATUSES:
            self.producers.retire_all(self.used)
            raise err
        self.last, self.maybe_stored, self.retry_after = err, True, err.retry_after
        return None

    def gave_up(self) -> Unavailable:
        """The error to raise when every attempt failed."""
        self.producers.retire_all(self.used)
        return Unavailable(f"POST {self.path} failed {self.backoff.attempts} times: {self.last}", self.last, self.maybe_stored)


class CancelAttempts(_Backoffs):
    """The retry decisions of one Stop (POST /v1/channels/{ch}/cancel), for the sync and
    async clients alike. Connection errors, timeouts and 502/503/504 (with their
    Retry-After) are retried; any other refusal is final. The broker answers a second Stop
    `409 channel_cancelled`, so when an earlier attempt may have got through (its answer
    was lost) that 409 means this Stop did its work: the result is `{"id": None, "state":
    "cancelled"}` and the client fills the ID from the channel (its last event is the
    `starling.cancelled` one)."""

    def __init__(self, channel: str, backoff: Backoff) -> None:
        super().__init__(backoff)
        self.channel = channel
        self.maybe_done = False

    def failed(self, error: httpx.TransportError) -> None:
        self.last = error
        if not isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout)):
            self.maybe_done = True  # it may have reached the broker

    def answered(self, r: httpx.Response) -> Optional[Dict[str, Any]]:
        """`{"id","state"}` of a 200, or None: retry. A final refusal is raised."""
        if r.status_code == 200:
            return r.json()  # type: ignore[no-any-return]
        err = refused(r)
        if self.maybe_done and r.status_code == 409 and err.code == "channel_cancelled":
            return {"id": None, "state": "cancelled"}
        if r.status_code not in RETRY_STATUSES:
            raise err
        self.last, self.retry_after = err, err.retry_after
        self.maybe_done = self.maybe_done or r.status_code != 503  # a proxy's 502/504 may follow a Stop that got through
        return None

    def gave_up(self) -> Unavailable:
        return Unavailable(f"cancel {self.channel} failed {self.backoff.attempts} times: {self.last}", self.last, True)
