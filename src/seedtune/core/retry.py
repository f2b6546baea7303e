"""Retries and rate limits, shared by every client of an outside service (LLM, Naver).

- :func:`backoff_s`: how long to wait before a retry: exponential backoff with full jitter,
  never less than what the server asked for.
- :func:`retry_after_s`: how long a 429/503 asks us to wait.
- :class:`AsyncTokenBucket`: ``llm.rpm`` / ``llm.tpm`` for asyncio code; capacity one
  minute's worth, refilled continuously.
- :class:`RateLimiter`: ``search.rps`` across threads, evenly spaced slots.
- :class:`RetryWarnings`: retries are visible while they happen, without flooding the log.

Staying under the provider's limits costs less wall time than tripping them and backing
off on 429s.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import threading
import time
from typing import Any

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
#: A Retry-After longer than this is not waited out in full (a stuck hint must not hang a run).
RETRY_AFTER_CAP_S = 60.0


def backoff_s(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    Full jitter, ``uniform(0, min(cap, base * 2**(attempt - 1)))``, so that many clients
    that failed together do not retry together; at least ``retry_after`` (the server's own
    hint, capped at :data:`RETRY_AFTER_CAP_S`) when one was given.
    """
    delay = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, attempt - 1)))
    if retry_after is not None:
        delay = max(delay, min(max(0.0, retry_after), RETRY_AFTER_CAP_S))
    return delay


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


class RetryWarnings:
    """One warning when a burst of retries starts (none in the last ``quiet_s`` seconds);
    the retries after it are counted, not logged, until the next quiet spell."""

    def __init__(self, log: logging.Logger, what: str, quiet_s: float = 30.0) -> None:
        self.log, self.what, self.quiet_s = log, what, quiet_s
        self._last = -float("inf")
        self._lock = threading.Lock()

    def note(self, reason: str, retries: int) -> None:
        """Record one retry caused by ``reason``; ``retries`` is the run's count so far."""
        now = time.monotonic()
        with self._lock:
            burst, self._last = now - self._last > self.quiet_s, now
        if burst:
            self.log.warning(
                "%s: %s; retrying with backoff (%d retries so far, the count is "
                "on the progress bar)",
                self.what,
                reason,
                retries,
            )
