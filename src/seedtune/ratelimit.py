"""Client-side request and token rate limits (``llm.rpm``, ``llm.tpm``) for asyncio code.

A token bucket per limit: capacity one minute's worth, refilled continuously. Staying under
the provider's limits costs less wall time than tripping them and backing off on 429s.
"""

from __future__ import annotations

import asyncio
import time


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
