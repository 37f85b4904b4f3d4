"""Producer ids and sequence numbers, handed out per channel (docs/api.md, idempotent
producers).

The broker stores an event carrying `producer`+`seq` only when `seq` is higher than the
highest it has seen from that producer on that channel, so:
- a retry sends the same seqs again and is acknowledged as a duplicate, never stored twice;
- publishes that share a producer on one channel must reach the broker in seq order,
  so they are serialised by a per-channel lock (an earlier seq arriving late would be
  taken for a repeat and dropped);
- after a failed request the seqs it used are in doubt, so that producer is retired and
  the next publish on the channel starts a fresh producer id (its first seq may be
  anything).
"""
from __future__ import annotations

import threading
import uuid
from typing import Dict, List, Tuple


def new_producer_id(prefix: str = "py") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


class Producers:
    def __init__(self, prefix: str = "py") -> None:
        self._prefix = prefix
        self._guard = threading.Lock()
        self._locks: Dict[str, threading.Lock] = {}
        self._state: Dict[str, List] = {}  # channel -> [producer id, next seq]

    def lock(self, channel: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(channel, threading.Lock())

    def reserve(self, channel: str, count: int) -> Tuple[str, int]:
        """A producer id and the first of `count` consecutive seqs. Call holding lock(channel)."""
        with self._guard:
            state = self._state.get(channel)
            if state is None:
                state = self._state[channel] = [new_producer_id(self._prefix), 1]
            first = state[1]
            state[1] += count
            return state[0], first

    def retire(self, channel: str, producer: str) -> None:
        with self._guard:
            state = self._state.get(channel)
            if state is not None and state[0] == producer:
                del self._state[channel]

    def retire_all(self, producers: Dict[str, str]) -> None:
        """Retires the producer each channel of a failed request used."""
        for channel, producer in producers.items():
            self.retire(channel, producer)
