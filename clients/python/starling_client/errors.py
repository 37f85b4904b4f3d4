"""One error type per way a call can fail, all under StarlingError.

Refused: the broker answered with an error (`{"error":{"code","message"}}`), so nothing
of the refused request was stored (a streaming publish keeps the lines before the refused
one, and says how many in the message). Unavailable: no answer or 503 after every retry,
so the events may or may not be stored; the client has already given up the producer id
it used, so a later publish cannot collide with it.
"""
from __future__ import annotations

from typing import Optional


class StarlingError(Exception):
    """Anything the client raises on purpose."""


class Refused(StarlingError):
    """The broker answered with an error status: `status`, `code`, `message`."""

    def __init__(self, status: int, code: str, message: str, retry_after: Optional[float] = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class Cancelled(Refused):
    """The channel was stopped (409 `channel_cancelled`): someone called Stop
    (`client.cancel(channel)`, POST /v1/channels/{ch}/cancel). A generation in progress
    gets it at once, as the broker answers its open streaming publish."""


class Unavailable(StarlingError):
    """No usable answer after every retry (connection errors, timeouts, 503).

    `maybe_stored` is True when a request may have reached the broker: the events may be
    stored or not. `last_error` is the final cause.
    """

    def __init__(self, message: str, last_error: Optional[BaseException] = None, maybe_stored: bool = True) -> None:
        super().__init__(message)
        self.last_error = last_error
        self.maybe_stored = maybe_stored


def refused_from_response(status: int, body: bytes, retry_after: Optional[str] = None) -> Refused:
    """The typed error for an error answer, reading the broker's JSON error body."""
    import json

    code, message = "http_%d" % status, body.decode("utf-8", "replace")[:500]
    try:
        err = json.loads(body)["error"]
        code, message = str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        pass
    seconds = parse_retry_after(retry_after)
    cls = Cancelled if code == "channel_cancelled" else Refused
    return cls(status, code, message, seconds)


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None  # an HTTP date: the broker never sends one; fall back to backoff
