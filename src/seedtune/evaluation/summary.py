"""The headline of a run: ``metrics/summary.json``, the one metrics file DVC shows (written by
the summary stage, which only reads the other stages' metrics files: rerunning it is free,
and a stage whose accounting changed makes nothing else stale).

``dvc exp show`` and ``dvc metrics diff`` compare experiments by these few numbers: the
judge's win rate and its interval, both models' 1-10 scores, the final eval loss, training
tokens/s, and what the LLM answers behind the run cost. Per-stage accounting stays in
``metrics/<stage>.json`` (outputs, not declared as DVC metrics), out of their way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seedtune.core.records import read_json

#: The LLM stages whose answers a run is built on (evaluate's judge is counted too).
LLM_STAGES = ("queries", "synthesize")
#: Every stage the headline reads (`make deps` writes them into dvc.yaml as summary's deps).
SOURCES = ("queries", "synthesize", "train", "evaluate")


def llm_cost(stage_metrics: dict[str, Any], prefix: str = "") -> float:
    """What a stage's LLM answers cost: paid this run plus paid earlier (the cache hits)."""
    return float(stage_metrics.get(f"{prefix}cost_usd") or 0.0) + float(
        stage_metrics.get(f"{prefix}saved_usd") or 0.0
    )


def headline(metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """metrics/summary.json from the stages' metrics files (``{stage: metrics}``)."""
    evaluation, train = metrics.get("evaluate", {}), metrics.get("train", {})
    cost = llm_cost(evaluation, "judge_") + sum(llm_cost(metrics.get(s, {})) for s in LLM_STAGES)
    return {
        "win_rate": evaluation.get("win_rate"),
        "win_rate_ci_low": evaluation.get("win_rate_ci_low"),
        "win_rate_ci_high": evaluation.get("win_rate_ci_high"),
        "score_tuned": evaluation.get("score_tuned"),
        "score_base": evaluation.get("score_base"),
        "eval_loss": train.get("eval_loss"),
        "train_tokens_per_s": train.get("tokens_per_s"),
        "train_mfu": train.get("mfu"),
        "cost_usd": round(cost, 6),
    }


def stage_metrics(metrics_dir: Path, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """metrics/<name>.json for each name that exists ({} for one that does not)."""
    return {
        n: read_json(metrics_dir / f"{n}.json") if (metrics_dir / f"{n}.json").is_file() else {}
        for n in names
    }


def score_distribution(rows: list[dict[str, Any]], labels: tuple[str, ...]) -> list[dict[str, int]]:
    """How many answers of each model got each 1-10 score (rows for a DVC plot)."""
    return [
        {
            "score": s,
            **{label: sum(1 for r in rows if r.get(f"score_{label}") == s) for label in labels},
        }
        for s in range(1, 11)
    ]
