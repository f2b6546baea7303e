"""Client-side rate limits and the servers' own pacing hints, shared by the API clients.

- :class:`AsyncTokenBucket`: ``llm.rpm`` / ``llm.tpm`` for asyncio code; capacity one
  minute's worth, refilled continuously.
- :class:`RateLimiter`: ``search.rps`` across threads, evenly spaced slots.
- :func:`retry_after_s`: how long a 429/503 asks us to wait.

Staying under the provider's limits costs less wall time than tripping them and backing
off on 429s.
"""

from __future__ import annotations

import asyncio
import email.utils
import threading
import time
from typing import Any


def retry_after_s(headers: Any) -> float | None:
    """Seconds the server asks us to wait (``retry-after-ms``, ``Retry-After`` secs or date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time()) if when else None


class RateLimiter:
    """At most ``rps`` calls per second across threads (evenly spaced slots)."""

    def __init__(self, rps: float) -> None:
        self.interval = 1.0 / rps
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until this caller's slot."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


class AsyncTokenBucket:
    """``acquire(n)`` waits until ``n`` units fit under ``per_minute`` (None: no limit)."""

    def __init__(self, per_minute: float | None) -> None:
        self.rate = per_minute / 60.0 if per_minute else None
        self.capacity = float(per_minute or 0)
        self.level = self.capacity
        self.stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self, amount: float = 1.0) -> None:
        """Take ``amount`` units, sleeping as long as the bucket needs to refill."""
        if self.rate is None:
            return
        amount = min(amount, self.capacity)  # one oversized request must still go through
        async with self._lock:
            while True:
                now = time.monotonic()
                self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.level >= amount:
                    self.level -= amount
                    return
                await asyncio.sleep((amount - self.level) / self.rate)
