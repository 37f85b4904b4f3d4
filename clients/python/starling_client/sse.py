"""The text/event-stream format, inbound: bytes in, dispatched messages out.

Lines are split on bytes (CRLF, LF or CR; a CR at the end of a chunk may be half a CRLF),
and each line is decoded as UTF-8 only once it is whole, so a multi-byte character split
across network chunks is never broken. Comments are reported too: they are the broker's
heartbeats.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional, Union


@dataclass
class SSEMessage:
    event: str
    data: str
    id: Optional[str]  # the `id:` field of this message, None when it had none


@dataclass
class SSEComment:
    text: str


@dataclass
class SSERetry:
    milliseconds: int


SSEItem = Union[SSEMessage, SSEComment, SSERetry]


class SSEDecoder:
    def __init__(self) -> None:
        self._buffer = b""
        self._data: List[str] = []
        self._event = ""
        self._id: Optional[str] = None
        self._has_data = False

    def feed(self, chunk: bytes) -> Iterator[SSEItem]:
        buffer = self._buffer + chunk
        start = 0
        n = len(buffer)
        i = 0
        while i < n:
            c = buffer[i]
            if c != 0x0A and c != 0x0D:
                i += 1
                continue
            if c == 0x0D and i == n - 1:
                break  # maybe half a CRLF: wait for the next byte
            line = buffer[start:i]
            if c == 0x0D and buffer[i + 1] == 0x0A:
                i += 1
            i += 1
            start = i
            item = self._line(line.decode("utf-8", errors="replace"))
            if item is not None:
                yield item
        self._buffer = buffer[start:]

    def _line(self, line: str) -> Optional[SSEItem]:
        if line == "":
            if not self._has_data:
                self._event, self._id = "", None
                return None
            message = SSEMessage(self._event or "message", "\n".join(self._data), self._id)
            self._data, self._event, self._id, self._has_data = [], "", None, False
            return message
        if line.startswith(":"):
            return SSEComment(line[1:].lstrip(" "))
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
            self._has_data = True
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self._id = value
        elif field == "retry" and value.isdigit():
            return SSERetry(int(value))
        return None
