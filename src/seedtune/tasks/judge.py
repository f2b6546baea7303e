"""The judge task: which of two answers to one question is better, asked in both orders.

In: two requests per question, tuned-first and base-first (:func:`build_requests`), each
with the reference answer when there is one. Out: :class:`Verdict` per order, combined
into the tuned model's win, loss or tie (:func:`combine`): a verdict that flips with the
order (position bias) counts as a tie.
"""

from __future__ import annotations

from typing import Any, Literal

from seedtune.llm.client import LLMOutcome, LLMRequest
from seedtune.llm.prompts import PromptTemplate
from seedtune.tasks.base import Strict, load_template

#: What the judge reads where a question has no reference answer, or a model no answer
#: (the score task says the same).
NO_REFERENCE = "(참고 답변 없음)"
NO_ANSWER = "(빈 답변)"


def template() -> PromptTemplate:
    """The task's prompt (``templates/judge.txt``)."""
    return load_template("judge")


class Verdict(Strict):
    """What the judge prompt asks for: which of two answers is better."""

    verdict: Literal["A", "B", "tie"]
    reason: str


def build_requests(
    questions: list[str],
    tuned: list[str],
    base: list[str],
    template: PromptTemplate,
    judge_model: str,
    references: list[str] | None = None,
) -> list[LLMRequest]:
    """Two requests per question: ``<i>:tuned_first`` and ``<i>:base_first``."""
    refs = references or [""] * len(questions)
    reqs = []
    for i, (q, t, b, ref) in enumerate(zip(questions, tuned, base, refs, strict=True)):
        for order, (a, bb) in (("tuned_first", (t, b)), ("base_first", (b, t))):
            reqs.append(
                LLMRequest(
                    id=f"{i}:{order}",
                    messages=template.render(
                        question=q,
                        reference=ref or NO_REFERENCE,
                        answer_a=a or NO_ANSWER,
                        answer_b=bb or NO_ANSWER,
                    ),
                    schema=Verdict,
                    template_version=template.version,
                    model=judge_model,
                )
            )
    return reqs


def combine(outcomes: list[LLMOutcome], n: int) -> list[dict[str, Any]]:
    """Per question: the tuned model's result (win, loss, tie) or a reject."""
    by_id = {o.id: o for o in outcomes}
    results = []
    for i in range(n):
        first, second = by_id.get(f"{i}:tuned_first"), by_id.get(f"{i}:base_first")
        if not first or not second or first.value is None or second.value is None:
            reason = next((o.reject for o in (first, second) if o and o.reject), "no verdict")
            results.append({"result": None, "reject": reason})
            continue
        # tuned is A in the first order, B in the second
        v1 = {"A": "win", "B": "loss", "tie": "tie"}[first.value["verdict"]]
        v2 = {"A": "loss", "B": "win", "tie": "tie"}[second.value["verdict"]]
        result = v1 if v1 == v2 else "tie"
        results.append(
            {"result": result, "reasons": [first.value["reason"], second.value["reason"]]}
        )
    return results
