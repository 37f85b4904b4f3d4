"""Retry policy: exponential backoff with full jitter, honouring Retry-After.

Only what is safe to repeat is retried: connection errors, timeouts, 502/503/504. Every
published event carries a producer id and seq, so a repeat of something the broker
already stored is acknowledged as a duplicate, never stored twice.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass
class Backoff:
    attempts: int = 6          # tries in all, the first included
    initial: float = 0.1       # seconds before the first retry (before jitter)
    maximum: float = 5.0       # longest single wait
    multiplier: float = 2.0

    def delay(self, retry: int, retry_after: Optional[float] = None) -> float:
        """Seconds to wait before retry number `retry` (1 for the first retry). A
        Retry-After from the broker is a floor: never retry sooner than it asks."""
        ceiling = min(self.maximum, self.initial * self.multiplier ** (retry - 1))
        wait = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait
