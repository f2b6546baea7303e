"""Pairwise LLM judging of tuned vs base answers, both orders, with a bootstrap interval.

Each pair is judged twice, tuned-first and base-first. A verdict that flips with the order
(position bias) counts as a tie. Win rate = (wins + ties / 2) / n.
"""

from __future__ import annotations

import random
from typing import Any

from seedtune.core.markdown import md_text
from seedtune.llm.client import LLMOutcome, LLMRequest
from seedtune.llm.prompts import PromptTemplate
from seedtune.llm.schemas import Score, Verdict

NO_REFERENCE = "(참고 답변 없음)"


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
                        answer_a=a or "(빈 답변)",
                        answer_b=bb or "(빈 답변)",
                    ),
                    schema=Verdict,
                    template_version=template.version,
                    model=judge_model,
                )
            )
    return reqs


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
                question=q, reference=refs[i] or NO_REFERENCE, answer=texts[i] or "(빈 답변)"
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


def win_rate(results: list[str]) -> float | None:
    """(wins + ties / 2) / n over 'win'/'loss'/'tie' results; None when there are none."""
    if not results:
        return None
    score = {"win": 1.0, "tie": 0.5, "loss": 0.0}
    return sum(score[r] for r in results) / len(results)


def bootstrap_ci(
    results: list[str], n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of :func:`win_rate` (None, None when empty)."""
    if not results:
        return None, None
    rng = random.Random(seed)
    stats = sorted(win_rate(rng.choices(results, k=len(results))) or 0.0 for _ in range(n_boot))
    lo = stats[int(alpha / 2 * (n_boot - 1))]
    hi = stats[int((1 - alpha / 2) * (n_boot - 1))]
    return lo, hi


def report_markdown(summary: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """reports/evaluation.md: the summary, then each question with the reference answer
    (the eval split's synthesized answer, when it has one) beside both models' answers."""
    lines = ["# Evaluation: tuned vs base", "", "| metric | value |", "|---|---|"]
    lines += [
        f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |"
        for k, v in summary.items()
    ]
    lines += [
        "",
        "Each pair was judged in both orders; a verdict that flips with the order counts as a tie.",
        "",
    ]
    for i, r in enumerate(rows, 1):
        lines += [
            f"## {i}. {md_text(r['question'])}",
            "",
            f"**Result for the tuned model:** {r.get('result') or 'rejected'}"
            f" · scores tuned {r.get('score_tuned') or '-'} / base "
            f"{r.get('score_base') or '-'}",
            "",
            "| reference | tuned | base |",
            "|---|---|---|",
            f"| {_cell(r.get('reference') or '')} | {_cell(r['tuned'])} | {_cell(r['base'])} |",
            "",
        ]
        for reason in r.get("reasons", []):
            lines.append(f"- judge: {md_text(reason)}")
        if r.get("reject"):
            lines.append(f"- reject: {md_text(r['reject'])}")
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    """A table cell of model or reference text: its lines kept (``<br>``), each inert
    (:func:`~seedtune.core.markdown.md_text`: an answer quoting a crawled page's markup
    renders as text)."""
    return "<br>".join(md_text(line) for line in text.splitlines() if line.strip()) or "(empty)"
