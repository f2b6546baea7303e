"""Token estimates and dollar costs from the per-model price table in conf/prices/.

Prices are USD per million tokens: ``{model: {input: ..., output: ...}}``. A model missing
from the table is reported as unpriced (``priced: false``, ``cost_usd: null``), never
guessed. Calls are priced by the model the server answered as (see
:mod:`seedtune.llm.served`): ``gpt-4o-mini`` served as ``gpt-4o-mini-2024-07-18`` is priced
as gpt-4o-mini, served as ``tiny-gemma`` it is unpriced unless the table names tiny-gemma.
With ``llm.service_tier`` set, a table entry ``<model>@<tier>`` (e.g. ``gpt-4o-mini@flex``,
half price on OpenAI) wins over the model's own. Answers fetched through the Batch API
(``llm.mode: batch``) are priced at the entry's ``batch_input`` / ``batch_output``; an entry
without them leaves the run unpriced rather than guess a discount.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from seedtune.core.stats import CallStats
from seedtune.llm.served import price_name


@dataclass
class LLMStats(CallStats):
    """:class:`CallStats` with the tokens per requested and served model, live and cached:
    ``{requested: {served or "": [prompt, completion]}}``."""

    served_tokens: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    cached_served_tokens: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    service_tier: str | None = None
    batch: bool = False  # answers fetched through the Batch API: priced at its columns
    batches: int = 0  # batches this run created
    batch_requests: int = 0  # requests this run submitted in them

    def add_tokens(
        self, requested: str, served: str | None, prompt: int, completion: int, cached: bool = False
    ) -> None:
        """Count one answer's tokens under the model it was asked of and served as."""
        table = self.cached_served_tokens if cached else self.served_tokens
        with self._lock:
            counts = table.setdefault(requested, {}).setdefault(served or "", [0, 0])
            counts[0] += prompt
            counts[1] += completion

    def served_models(self) -> list[str]:
        """Every model a server answered as (live or cached), sorted."""
        return sorted(
            {
                s
                for t in (self.served_tokens, self.cached_served_tokens)
                for by in t.values()
                for s in by
                if s
            }
        )


def estimate_tokens(text: str) -> int:
    """Rough token count for Korean/English text without the model's tokenizer.

    Heuristic for BPE tokenizers such as OpenAI's o200k: about one token per Hangul
    syllable and one per four other characters. Good enough for budgets, not for billing.
    """
    hangul = sum(1 for c in text if "\uac00" <= c <= "\ud7a3")
    return hangul + math.ceil((len(text) - hangul) / 4)


def messages_tokens(messages: list[dict[str, str]]) -> int:
    """Estimated prompt tokens of chat messages (content plus ~4 tokens of framing each)."""
    return sum(estimate_tokens(m["content"]) + 4 for m in messages) + 3


def cost_usd(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    prices: Mapping[str, Mapping[str, float | None]],
    batch: bool = False,
) -> float | None:
    """Dollars for the tokens at ``prices[model]`` (``batch``: its Batch API columns); None
    when the model has no such price."""
    price = prices.get(model)
    if price is None:
        return None
    cin, cout = ("batch_input", "batch_output") if batch else ("input", "output")
    if price.get(cin) is None or price.get(cout) is None:
        return None
    return (prompt_tokens * price[cin] + completion_tokens * price[cout]) / 1e6  # type: ignore[operator]


def _served_cost(
    by_requested: dict[str, dict[str, list[int]]],
    tier: str | None,
    prices: Mapping[str, Mapping[str, float | None]],
    batch: bool = False,
) -> float | None:
    """Dollars of tokens counted per requested and served model; None if any is unpriced."""
    total = 0.0
    for requested, by_served in by_requested.items():
        for served, (prompt, completion) in by_served.items():
            name = price_name(requested, served or None, prices, tier)
            cost = cost_usd(name, prompt, completion, prices, batch) if name else None
            if cost is None:
                return None
            total += cost
    return total


def usage_metrics(
    model: str, stats: Any, prices: Mapping[str, Mapping[str, float | None]]
) -> dict[str, Any]:
    """Metrics for a stage's LLM use: calls, cache hits, tokens, rejects, dollars.

    ``cost_usd`` is what this run spent; ``saved_usd`` what the cache hits would have cost;
    both null when unpriced. With :class:`LLMStats` each answer is priced by the model it was
    served as (``served_model`` lists them), at Batch API prices in batch mode (``llm_mode``);
    else everything at ``model``'s price.
    """
    batch = isinstance(stats, LLMStats) and stats.batch
    spent = cost_usd(model, stats.prompt_tokens, stats.completion_tokens, prices, batch)
    saved = cost_usd(
        model, stats.cached_prompt_tokens, stats.cached_completion_tokens, prices, batch
    )
    served: list[str] = []
    extra: dict[str, Any] = {}
    if isinstance(stats, LLMStats):
        tier = stats.service_tier
        if stats.served_tokens:
            spent = _served_cost(stats.served_tokens, tier, prices, batch)
        if stats.cached_served_tokens:
            saved = _served_cost(stats.cached_served_tokens, tier, prices, batch)
        served = stats.served_models()
        if batch:  # sync metrics keep their keys
            extra = {
                "llm_mode": "batch",
                "batches": stats.batches,
                "batch_requests": stats.batch_requests,
            }
    priced = spent is not None and saved is not None
    return {
        "calls": stats.calls,
        "cache_hits": stats.cache_hits,
        "retries": stats.retries,
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "llm_rejects": stats.rejects,
        "cost_usd": round(spent, 6) if spent is not None else None,
        "saved_usd": round(saved, 6) if saved is not None else None,
        "priced": priced,
        "served_model": ", ".join(served) or None,
        **extra,
    }
