"""The queries task: the LLM writes ``queries.per_seed`` questions about one seed word.

In: one request per seed word (:func:`build_requests`), so adding a word costs only that
word's call. Out: :class:`QuestionList`, each question a row with its provenance
(:func:`candidates`); a failed request, a reject (:func:`failures`).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from seedtune.core.config import QueriesConfig
from seedtune.llm.client import LLMOutcome, LLMRequest
from seedtune.llm.prompts import PromptTemplate
from seedtune.tasks.base import Strict, load_template


def template() -> PromptTemplate:
    """The task's prompt (``templates/queries.txt``)."""
    return load_template("queries")


class QuestionList(Strict):
    """What the queries prompt asks for."""

    questions: list[str] = Field(min_length=1)


#: How the prompt asks for each mix of ``queries.forms``.
_INSTRUCTIONS = '"~알려 주세요", "~설명해 주세요"처럼 요청하는 지시문(명령문)'
FORMS = {
    ("question",): "모두 물음표로 끝나는 의문문입니다.",
    ("instruction",): f"모두 {_INSTRUCTIONS}입니다.",
    ("instruction", "question"): f"물음표로 끝나는 의문문과 {_INSTRUCTIONS}을 섞어 씁니다.",
}


def build_requests(
    seeds: list[str], cfg: QueriesConfig, template: PromptTemplate
) -> list[LLMRequest]:
    """One structured-output request per seed word, asking for ``queries.forms``."""
    forms = FORMS[tuple(sorted(set(cfg.forms)))]
    return [
        LLMRequest(
            id=seed,
            messages=template.render(seed=seed, n=cfg.per_seed, forms=forms),
            schema=QuestionList,
            temperature=cfg.temperature,
            template_version=template.version,
        )
        for seed in seeds
    ]


def candidates(
    outcomes: list[LLMOutcome], model: str, template_version: str, extra: list[str]
) -> list[dict[str, Any]]:
    """Every question generated or supplied, with its provenance, before filtering."""
    rows: list[dict[str, Any]] = []
    for o in outcomes:
        if o.value is None:
            continue
        for q in o.value["questions"]:
            rows.append(
                {
                    "question": q,
                    "seed": o.id,
                    "source": "llm",
                    "model": o.model or model,  # the model the server answered as
                    "template": template_version,
                }
            )
    rows += [
        {"question": q, "seed": None, "source": "user", "model": None, "template": None}
        for q in extra
    ]
    return rows


def failures(outcomes: list[LLMOutcome]) -> list[dict[str, Any]]:
    """A reject per seed word whose request failed (invalid, refused, truncated)."""
    return [{"source": "llm", "seed": o.id, "reason": o.reject} for o in outcomes if o.reject]
