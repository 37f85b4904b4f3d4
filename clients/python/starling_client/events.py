"""The values the client sends and receives.

Event: one event to publish (name, data, conflate key, final). Received: one event read
from a stream, with its ID and channel. Notices (`starling.*` events the broker writes)
arrive as subclasses of Notice, so a subscriber can match on the type. PublishResult:
the broker's answer `{"count","first","last"[,"duplicates"][,"channels"]}`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

JSON = Any


@dataclass
class Event:
    """One event to publish. `data` is any JSON value: a str goes on the wire as its raw
    text, anything else as compact JSON."""

    data: JSON
    event: str = "message"
    conflate: Optional[str] = None
    final: bool = False
    lease: Optional[float] = None  # seconds (1..86400): the channel is abandoned if nothing renews it

    def body(self, producer: Optional[str] = None, seq: Optional[int] = None, channel: Optional[str] = None) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        if channel is not None:
            out["channel"] = channel
        if self.event != "message":
            out["event"] = self.event
        out["data"] = self.data
        if self.conflate is not None:
            out["conflate"] = self.conflate
        if self.final:
            out["final"] = True
        if self.lease is not None:
            out["lease"] = self.lease
        if producer is not None:
            out["producer"] = producer
            out["seq"] = seq
        return out


def as_event(value: Any) -> Event:
    """An Event from an Event, a dict with the API's keys, or a bare data value."""
    if isinstance(value, Event):
        return value
    if isinstance(value, dict) and "data" in value and set(value) <= {"data", "event", "conflate", "final", "lease"}:
        return Event(value["data"], value.get("event", "message"), value.get("conflate"), bool(value.get("final", False)),
                     value.get("lease"))
    if isinstance(value, dict):
        raise ValueError("an event dict takes data, event, conflate, final, lease (producer/seq are set by the client)")
    return Event(value)


@dataclass
class Received:
    """One event from a stream. `data` is the text of the SSE data (a JSON string's
    content, or compact JSON for any other value); `json()` parses it."""

    event: str
    data: str
    id: Optional[str]
    channel: Optional[str] = None

    def json(self) -> Any:
        return json.loads(self.data)


class Notice(Received):
    """A `starling.*` event written by the broker. Notices have no ID: they never move
    the resume point."""


class Gap(Notice):
    """History the subscriber asked for is gone: `requested` → `resumed_from`."""

    @property
    def requested(self) -> Optional[str]:
        return self.json().get("requested")

    @property
    def resumed_from(self) -> Optional[str]:
        return self.json().get("resumed_from")


class Expired(Notice):
    """The token that opened the stream expired; the subscription reconnects with a
    fresh one when it was given a callable token."""


class CancelledNotice(Notice):
    """`starling.cancelled`: the channel was stopped (POST /v1/channels/{ch}/cancel). It is
    the channel's final event: `reason` says why, when the stopper gave one."""

    @property
    def reason(self) -> Optional[str]:
        return self.json().get("reason")


class Abandoned(Notice):
    """`starling.abandoned`: the channel's lease ran out with nothing renewing it (the
    worker died). It is the channel's final event."""


NOTICE_TYPES = {
    "starling.gap": Gap,
    "starling.expired": Expired,
    "starling.cancelled": CancelledNotice,
    "starling.abandoned": Abandoned,
}


def received(event: str, data: str, id: Optional[str], channel: Optional[str] = None) -> Received:
    if event.startswith("starling."):
        cls = NOTICE_TYPES.get(event, Notice)
        return cls(event, data, id, channel)
    return Received(event, data, id, channel)


@dataclass
class ChannelResult:
    count: int
    first: Optional[str]
    last: Optional[str]


@dataclass
class PublishResult:
    """What the broker stored. `duplicates` counts events acknowledged without being
    stored again (a retry of something already stored)."""

    count: int
    first: Optional[str]
    last: Optional[str]
    duplicates: int = 0
    channels: Dict[str, ChannelResult] = field(default_factory=dict)
    attempts: int = 1

    @classmethod
    def from_json(cls, body: Dict[str, Any], attempts: int = 1) -> "PublishResult":
        channels = {
            name: ChannelResult(int(c["count"]), c.get("first"), c.get("last"))
            for name, c in (body.get("channels") or {}).items()
        }
        return cls(int(body["count"]), body.get("first"), body.get("last"), int(body.get("duplicates", 0)), channels, attempts)
