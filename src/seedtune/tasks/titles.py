"""The titles task: the LLM turns real people's forum titles into standalone questions.

In: a seed word's titles, ``queries.titles.per_prompt`` at a time (a :class:`Batch`),
numbered and fenced as untrusted material (:func:`build_requests`). Out:
:class:`TitleVerdicts`, a question or a drop reason per number, made into question rows
and rejects (:func:`verdicts`). Where the titles come from (Naver's ``cafearticle`` and
``kin`` results) is :mod:`seedtune.synthesis.titles`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, model_validator

from seedtune.core.config import TitlesConfig
from seedtune.llm.client import LLMOutcome, LLMRequest
from seedtune.llm.prompts import PromptTemplate, fence_safe
from seedtune.tasks.base import Strict, load_template


def template() -> PromptTemplate:
    """The task's prompt (``templates/titles.txt``)."""
    return load_template("titles")


#: Why a forum title gives no question (the titles prompt explains each to the LLM).
DropReason = Literal["off_topic", "not_answerable", "unsafe", "personal"]


class TitleVerdict(Strict):
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


class TitleVerdicts(Strict):
    """What the titles prompt asks for: a verdict per numbered title."""

    items: list[TitleVerdict] = Field(min_length=1)


#: What the titles prompt asks for each mix of ``queries.forms`` (per title, so worded as
#: an instruction, unlike the per-seed prompt's description of the whole list).
FORMS = {
    ("question",): "물음표로 끝나는 의문문으로 씁니다.",
    ("instruction",): '"~알려 주세요", "~설명해 주세요"처럼 요청하는 지시문(명령문)으로 씁니다.',
    ("instruction", "question"): '물음표로 끝나는 의문문이나 "~알려 주세요"처럼 요청하는 '
    "지시문 가운데 제목에 어울리는 쪽으로 씁니다.",
}


@dataclass(frozen=True)
class Batch:
    """One titles prompt: a seed word's titles, numbered from 1 in ``titles`` order."""

    seed: str
    titles: list[dict[str, Any]]  # {source, seed, title, link, category}


@dataclass
class Judged:
    """What the LLM made of the titles: question rows, rejects, and how many titles were
    lost to failures (a failed request, a number missing from an answer)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    lost: int = 0


def build_requests(
    batches: Sequence[Batch], forms: list[str], cfg: TitlesConfig, template: PromptTemplate
) -> list[LLMRequest]:
    """One structured-output request per batch."""
    wording = FORMS[tuple(sorted(set(forms)))]
    reqs = []
    for b in batches:
        # titles are untrusted: each on its line, none able to close the fenced block
        lines = "\n".join(f"{i}. {fence_safe(t['title'])}" for i, t in enumerate(b.titles, 1))
        reqs.append(
            LLMRequest(
                id=f"titles:{b.seed}:{b.titles[0]['link']}",
                messages=template.render(seed=b.seed, n=len(b.titles), titles=lines, forms=wording),
                schema=TitleVerdicts,
                temperature=cfg.temperature,
                template_version=template.version,
            )
        )
    return reqs


def verdicts(
    batches: Sequence[Batch], outcomes: list[LLMOutcome], model: str, template_version: str
) -> Judged:
    """The question rows and rejects the LLM's answers make of the titles.

    Every title ends as exactly one of: a question row carrying the title, link and category
    it came from; a reject with the LLM's drop reason; a reject ``unanswered`` (its number
    was missing from the answer); or, when the whole request failed, a reject with the
    request's reason. The last two are failures and count against ``llm.max_reject_rate``.
    """
    out = Judged()
    for b, o in zip(batches, outcomes, strict=True):
        if o.value is None:
            out.rejects += [{**t, "reason": o.reject or "no answer"} for t in b.titles]
            out.lost += len(b.titles)
            continue
        answers: dict[int, dict[str, Any]] = {}
        for item in o.value["items"]:
            answers.setdefault(item["index"], item)  # a repeated number: the first counts
        for i, t in enumerate(b.titles, 1):
            item = answers.get(i)
            if item is None:
                out.rejects.append({**t, "reason": "unanswered"})
                out.lost += 1
            elif item["drop"] is not None:
                out.rejects.append({**t, "reason": item["drop"]})
            else:
                out.rows.append(
                    {
                        "question": item["question"],
                        **t,
                        "model": o.model or model,  # as the server answered
                        "template": template_version,
                    }
                )
    return out
