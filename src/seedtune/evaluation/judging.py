"""What the judge's verdicts add up to: the win rate with a bootstrap interval, and the report.

Each pair is judged twice, tuned-first and base-first (the judge task:
:mod:`seedtune.tasks.judge`); a verdict that flips with the order (position bias) counts as
a tie. Win rate = (wins + ties / 2) / n.
"""

from __future__ import annotations

import random
from typing import Any

from seedtune.core.markdown import md_text


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
