"""The synthesize task: the LLM answers one ranked question from its best passages.

In: the question and its ``synthesize.top_k`` best passages (:func:`shown_documents`),
numbered and fenced as untrusted material (:func:`build_request`). Out: :class:`QA`,
checked (:func:`check_answer`) and made into an instruction row with its sources and
provenance, or a reject (:func:`answer_row`).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from seedtune.core.config import SynthesizeConfig
from seedtune.core.pii import mask
from seedtune.core.text import hangul_share, normalize
from seedtune.llm.client import LLMRequest
from seedtune.llm.prompts import PromptTemplate, fence_safe, format_passages
from seedtune.tasks.base import Strict, load_template

log = logging.getLogger(__name__)

#: The provenance columns every instruction row carries (null where they do not apply), from
#: the question's row in data/questions.jsonl.
PROVENANCE = ("question_source", "seed", "post_title", "post_link", "post_category")


def template() -> PromptTemplate:
    """The task's prompt (``templates/synthesize.txt``)."""
    return load_template("synthesize")


class QA(Strict):
    """What the synthesize prompt asks for."""

    question: str
    answer: str


def shown_documents(documents: list[dict[str, Any]], cfg: SynthesizeConfig) -> list[dict[str, Any]]:
    """The ranked documents an answer is grounded on: the best ``synthesize.top_k``. The
    prompt shows them, the instruction row keeps them (``sources``, ``passages``), and
    ``seedtune ask --rag`` shows the tuned model the same ones."""
    return documents[: cfg.top_k]


def build_request(
    row: dict[str, Any], cfg: SynthesizeConfig, template: PromptTemplate
) -> LLMRequest:
    """The request for one ranked question."""
    return LLMRequest(
        id=row["question"],
        messages=template.render(
            question=fence_safe(row["question"]),
            passages=format_passages(shown_documents(row["documents"], cfg), cfg.top_k),
            target_words=cfg.target_words,
        ),
        schema=QA,
        temperature=cfg.temperature,
        template_version=template.version,
    )


def build_requests(
    rows: list[dict[str, Any]], cfg: SynthesizeConfig, template: PromptTemplate
) -> list[LLMRequest]:
    """One request per ranked question."""
    return [build_request(r, cfg, template) for r in rows]


def check_answer(answer: str, cfg: SynthesizeConfig) -> str | None:
    """Why an answer is unusable (empty, too short, not Korean), or None."""
    answer = normalize(answer)
    if not answer:
        return "empty answer"
    if len(answer) < cfg.min_chars:
        return f"answer shorter than synthesize.min_chars={cfg.min_chars}"
    if hangul_share(answer) < cfg.min_hangul_share:
        return f"answer less than {cfg.min_hangul_share:.0%} Hangul"
    return None


def answer_row(
    row: dict[str, Any],
    outcome: Any,
    cfg: SynthesizeConfig,
    model: str,
    template_version: str,
    provenance_of: dict[str, str | None] | None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, Counter[str]]:
    """``(instruction row, reject, personal data masked)`` of one ranked question and its LLM
    outcome: a row, or a reject with its reason.

    The row carries the :data:`PROVENANCE` columns from ``provenance_of`` (nulls where the
    question is not in the questions file, so the rows keep one schema). Personal data was
    masked where the passages entered; the answer is checked again (an LLM may write a
    number of its own), and what is found is masked too and counted.
    """
    reason = outcome.reject or check_answer(outcome.value["answer"], cfg)
    if reason:
        return None, {"question": row["question"], "reason": reason}, Counter()
    answer, found = mask(outcome.value["answer"].strip())
    if found:
        log.warning("masked personal data in the answer to %r: %s", row["question"], dict(found))
    shown = shown_documents(row["documents"], cfg)
    return (
        {
            "question": row["question"],
            "answer": answer,
            "sources": [d["link"] for d in shown],
            # what the answer was grounded on, for train.with_passages
            "passages": [d["passage"] for d in shown],
            "source_categories": [d.get("category") for d in shown],
            "source_kinds": [d.get("kind", "snippet") for d in shown],
            **dict.fromkeys(PROVENANCE),
            **(provenance_of or {}),
            # the model the server answered as (llm.model when it did not say)
            "model": getattr(outcome, "model", None) or model,
            "template": template_version,
        },
        None,
        Counter(found),
    )
