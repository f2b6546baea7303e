"""Token estimates and dollar costs from the per-model price table in conf/prices/.

Prices are USD per million tokens: ``{model: {input: ..., output: ...}}``. A model missing
from the table costs 0 and is reported as unpriced rather than guessed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


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


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int,
             prices: Mapping[str, Mapping[str, float]]) -> float | None:
    """Dollars for the tokens at ``prices[model]``; None when the model has no price."""
    price = prices.get(model)
    if price is None:
        return None
    return (prompt_tokens * price["input"] + completion_tokens * price["output"]) / 1e6


def usage_metrics(model: str, stats: Any, prices: Mapping[str, Mapping[str, float]]
                  ) -> dict[str, Any]:
    """Metrics for a stage's LLM use: calls, cache hits, tokens, rejects, dollars.

    ``cost_usd`` is what this run spent; ``saved_usd`` what the cache hits would have cost.
    """
    spent = cost_usd(model, stats.prompt_tokens, stats.completion_tokens, prices)
    saved = cost_usd(model, stats.cached_prompt_tokens, stats.cached_completion_tokens, prices)
    return {"calls": stats.calls, "cache_hits": stats.cache_hits, "retries": stats.retries,
            "prompt_tokens": stats.prompt_tokens, "completion_tokens": stats.completion_tokens,
            "llm_rejects": stats.rejects, "cost_usd": round(spent or 0.0, 6),
            "saved_usd": round(saved or 0.0, 6), "priced": spent is not None}
