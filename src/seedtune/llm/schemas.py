"""Structured-output schemas for the LLM calls (pydantic -> JSON schema -> validation)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuestionList(_Strict):
    """What the queries prompt asks for."""

    questions: list[str] = Field(min_length=1)


#: Why a forum title gives no question (the titles prompt explains each to the LLM).
DropReason = Literal["off_topic", "not_answerable", "unsafe", "personal"]


class TitleVerdict(_Strict):
    """One title of a titles prompt, by its number there: a question, or why none."""

    index: int = Field(ge=1)
    question: str | None
    drop: DropReason | None

    @model_validator(mode="after")
    def _one_of_them(self) -> TitleVerdict:
        if (self.question is None) == (self.drop is None):
            raise ValueError(f"title {self.index}: give either a question or a drop reason")
        if self.question is not None and not self.question.strip():
            raise ValueError(f"title {self.index}: empty question (give a drop reason instead)")
        return self


class TitleVerdicts(_Strict):
    """What the titles prompt asks for: a verdict per numbered title."""

    items: list[TitleVerdict] = Field(min_length=1)


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
