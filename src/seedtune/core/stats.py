"""What a batch of outside calls cost: one counter shape for the LLM and the Naver clients."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class CallStats:
    """Calls made, cache hits, retries, rejects and tokens; safe to update from threads."""

    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    rejects: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: tokens the cache hits cost when they were first paid for (what the cache saved)
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, n: int = 1) -> None:
        """Increment counter ``name`` by ``n``."""
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def as_dict(self, *names: str) -> dict[str, Any]:
        """The counters ``names`` (all when none) as a plain dict, for metrics."""
        names = names or tuple(f.name for f in fields(self) if not f.name.startswith("_"))
        return {n: getattr(self, n) for n in names}
