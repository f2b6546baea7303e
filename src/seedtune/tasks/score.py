"""The score task: one answer to one question, scored 1-10 on its own.

In: one request per question and model (:func:`build_score_requests`), with the reference
answer when there is one. Out: :class:`Score`, averaged per model (:func:`mean_scores`).
"""

from __future__ import annotations

from pydantic import Field

from seedtune.llm.client import LLMOutcome, LLMRequest
from seedtune.llm.prompts import PromptTemplate
from seedtune.tasks.base import Strict, load_template
from seedtune.tasks.judge import NO_ANSWER, NO_REFERENCE


def template() -> PromptTemplate:
    """The task's prompt (``templates/score.txt``)."""
    return load_template("score")


class Score(Strict):
    """What the single-answer scoring prompt asks for: 1-10 and why."""

    score: int = Field(ge=1, le=10)
    reason: str


def build_score_requests(
    questions: list[str],
    answers: dict[str, list[str]],
    template: PromptTemplate,
    judge_model: str,
    references: list[str] | None = None,
) -> list[LLMRequest]:
    """One 1-10 scoring request per question and model: ``<i>:<label>``."""
    refs = references or [""] * len(questions)
    return [
        LLMRequest(
            id=f"{i}:{label}",
            schema=Score,
            template_version=template.version,
            messages=template.render(
                question=q, reference=refs[i] or NO_REFERENCE, answer=texts[i] or NO_ANSWER
            ),
            model=judge_model,
        )
        for label, texts in answers.items()
        for i, q in enumerate(questions)
    ]


def mean_scores(outcomes: list[LLMOutcome], labels: list[str]) -> dict[str, float | None]:
    """Mean 1-10 score per model label over the scores that parsed (None when none did)."""
    out: dict[str, float | None] = {}
    for label in labels:
        got = [
            o.value["score"] for o in outcomes if o.value is not None and o.id.endswith(f":{label}")
        ]
        out[label] = sum(got) / len(got) if got else None
    return out
