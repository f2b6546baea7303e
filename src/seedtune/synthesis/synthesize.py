"""The synthesize stage's logic: grounded prompts, answer checks, deterministic split."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from seedtune.core.config import SynthesizeConfig
from seedtune.core.pii import mask
from seedtune.core.text import hangul_share, normalize, stable_hash
from seedtune.llm.client import LLMRequest
from seedtune.llm.prompts import PromptTemplate, fence_safe, format_passages
from seedtune.llm.schemas import QA

log = logging.getLogger(__name__)


def build_requests(rows: list[dict[str, Any]], cfg: SynthesizeConfig, template: PromptTemplate
                   ) -> list[LLMRequest]:
    """One request per ranked question."""
    return [LLMRequest(id=r["question"],
                       messages=template.render(question=fence_safe(r["question"]),
                                                passages=format_passages(r["documents"],
                                                                         cfg.top_k),
                                                target_words=cfg.target_words),
                       schema=QA, temperature=cfg.temperature,
                       template_version=template.version) for r in rows]


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


def collect_answers(ranked: list[dict[str, Any]], outcomes: list[Any], cfg: SynthesizeConfig,
                    model: str, template_version: str
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, int]]:
    """(instruction rows, rejects, personal data masked per kind): each LLM outcome checked,
    with its sources and provenance.

    Personal data was masked where the passages entered; the final rows are checked again
    (an LLM may write a number of its own), and what is found is masked too and counted.
    """
    rows, rejects = [], []
    masked: Counter[str] = Counter()
    for row, o in zip(ranked, outcomes, strict=True):
        reason = o.reject or check_answer(o.value["answer"], cfg)
        if reason:
            rejects.append({"question": row["question"], "reason": reason})
            continue
        answer, found = mask(o.value["answer"].strip())
        if found:
            masked.update(found)
            log.warning("masked personal data in the answer to %r: %s", row["question"],
                        dict(found))
        shown = row["documents"][: cfg.top_k]
        rows.append({"question": row["question"], "answer": answer,
                     "sources": [d["link"] for d in shown],
                     # what the answer was grounded on, for train.with_passages
                     "passages": [d["passage"] for d in shown],
                     "source_categories": [d.get("category") for d in shown],
                     "source_kinds": [d.get("kind", "snippet") for d in shown],
                     "model": model, "template": template_version})
    return rows, rejects, dict(sorted(masked.items()))


def assign_split(questions: list[str], eval_fraction: float, min_eval: int, seed: int
                 ) -> dict[str, str]:
    """Deterministic train/eval split by a hash of each question.

    A question's split depends only on its text and the seed, so adding questions never
    moves existing ones, except when ``min_eval`` tops up the eval side (lowest hashes first).
    """
    hashes = {q: stable_hash(f"{seed}:{q}") for q in questions}
    ranked = sorted(questions, key=hashes.__getitem__)
    cutoff = eval_fraction * 2**64
    # hashes are sorted, so the questions under the cutoff are a prefix of `ranked`
    n_eval = sum(1 for q in ranked if hashes[q] < cutoff)
    n_eval = max(n_eval, min(min_eval, len(ranked) // 2))
    eval_set = set(ranked[:n_eval])
    return {q: ("eval" if q in eval_set else "train") for q in questions}


def split_rows(rows: list[dict[str, Any]], cfg: SynthesizeConfig, seed: int
               ) -> list[dict[str, Any]]:
    """``rows`` with a ``split`` field (train/eval) from :func:`assign_split`."""
    split = assign_split([r["question"] for r in rows], cfg.eval_fraction, cfg.min_eval, seed)
    return [{**r, "split": split[r["question"]]} for r in rows]
