"""Pieces of the LLM client and the queries stage, without a server."""

from __future__ import annotations

import asyncio
import time

import pytest

from seedtune.config import QueriesConfig
from seedtune.costs import cost_usd, estimate_tokens
from seedtune.llm import LLMOutcome, backoff_s, retry_after_s
from seedtune.questions import candidates, filter_questions
from seedtune.ratelimit import AsyncTokenBucket


def test_retry_after_headers() -> None:
    assert retry_after_s({"retry-after-ms": "250"}) == 0.25
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert 0 <= retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) <= 1
    assert retry_after_s({}) is None and retry_after_s(None) is None


def test_backoff_is_jittered_and_capped() -> None:
    assert all(0 <= backoff_s(a) <= min(30, 0.5 * 2**a) for a in range(12) for _ in range(20))
    assert len({backoff_s(5) for _ in range(10)}) > 1


def test_token_bucket_waits_once_the_minute_is_spent() -> None:
    async def go() -> float:
        bucket = AsyncTokenBucket(per_minute=120)  # 2 per second, a minute's burst
        await bucket.acquire(120)
        t0 = time.monotonic()
        await bucket.acquire(2)
        return time.monotonic() - t0

    assert asyncio.run(go()) >= 0.9
    assert asyncio.run(_unlimited()) < 0.1


async def _unlimited() -> float:
    bucket = AsyncTokenBucket(None)
    t0 = time.monotonic()
    for _ in range(1000):
        await bucket.acquire(10_000)
    return time.monotonic() - t0


def test_costs() -> None:
    prices = {"m": {"input": 0.15, "output": 0.60}}
    assert cost_usd("m", 1_000_000, 1_000_000, prices) == pytest.approx(0.75)
    assert cost_usd("unknown", 10, 10, prices) is None
    assert estimate_tokens("전세 계약") == 4 + 1
    assert estimate_tokens("hello world!") == 3


def test_user_questions_are_merged_with_provenance() -> None:
    outcomes = [LLMOutcome("전세", value={"questions": ["전세 보증금은 어떻게 돌려받나요?"]}),
                LLMOutcome("청약", reject="invalid answer")]
    rows = candidates(outcomes, "gpt-x", "v1", ["  1. 제 질문: 월세 세액공제는 어떻게 받나요? "])
    kept, counts = filter_questions(rows, QueriesConfig())
    assert [(r["seed"], r["source"], r["model"], r["template"]) for r in kept] == [
        ("전세", "llm", "gpt-x", "v1"), (None, "user", None, None)]
    assert kept[1]["question"] == "제 질문: 월세 세액공제는 어떻게 받나요?"
    assert counts["kept"] == 2
