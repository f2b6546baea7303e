"""Structured-output schemas for the LLM calls (pydantic -> JSON schema -> validation)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuestionList(_Strict):
    """What the queries prompt asks for."""

    questions: list[str] = Field(min_length=1)


class QA(_Strict):
    """What the synthesize prompt asks for."""

    question: str
    answer: str


class Score(_Strict):
    """What the single-answer scoring prompt asks for: 1-10 and why."""

    score: int = Field(ge=1, le=10)
    reason: str


class Verdict(_Strict):
    """What the judge prompt asks for: which of two answers is better."""

    verdict: Literal["A", "B", "tie"]
    reason: str

