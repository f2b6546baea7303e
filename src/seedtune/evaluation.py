"""The evaluate stage's orchestration: answer with base and tuned models, then judge.

Both models answer the same questions with the same chat template and greedy decoding.
The judge compares each pair in both orders (see :mod:`seedtune.judging`) and scores each
answer 1-10 on its own. Judge calls go through the shared cached LLM client.
"""

from __future__ import annotations

from typing import Any

from seedtune.config import Params
from seedtune.generation import generate_answers, load_model
from seedtune.judging import (
    bootstrap_ci,
    build_requests,
    build_score_requests,
    combine,
    mean_scores,
    win_rate,
)
from seedtune.llm import LLMClient
from seedtune.prompts import load_template

LABELS = ("base", "tuned")


def answer_all(p: Params, questions: list[str], adapter: str) -> dict[str, list[str]]:
    """Greedy answers of the base model and of base + adapter, one model in memory at a time."""
    answers: dict[str, list[str]] = {}
    for label, adapter_dir in (("base", None), ("tuned", adapter)):
        model, tok = load_model(p.train.model.name_or_path, adapter_dir, p.train.model.revision)
        answers[label] = generate_answers(model, tok, questions, p.evaluate.max_new_tokens,
                                          p.evaluate.batch_size, desc=f"answers ({label})")
        del model
    return answers


def judge_all(p: Params, client: LLMClient, questions: list[str],
              answers: dict[str, list[str]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(summary metrics, per-question rows) from pairwise verdicts and single scores."""
    judge = p.evaluate.judge_model or p.llm.model
    pair_reqs = build_requests(questions, answers["tuned"], answers["base"],
                               load_template("judge"), judge)
    score_reqs = build_score_requests(questions, answers, load_template("score"), judge)
    outcomes = client.run(pair_reqs + score_reqs)
    pairs, scores = outcomes[: len(pair_reqs)], outcomes[len(pair_reqs):]
    judged = combine(pairs, len(questions))
    results = [j["result"] for j in judged if j["result"]]
    lo, hi = bootstrap_ci(results, p.evaluate.bootstrap, p.seed)
    means = mean_scores(scores, list(LABELS))
    summary = {"win_rate": win_rate(results), "win_rate_ci_low": lo, "win_rate_ci_high": hi,
               "n": len(results), "wins": results.count("win"), "ties": results.count("tie"),
               "losses": results.count("loss"), "rejects": len(judged) - len(results),
               "score_tuned": means["tuned"], "score_base": means["base"],
               "score_rejects": sum(1 for o in scores if o.reject)}
    by_id = {o.id: o for o in scores}
    rows = []
    for i, (q, j) in enumerate(zip(questions, judged, strict=True)):
        row: dict[str, Any] = {"question": q, "tuned": answers["tuned"][i],
                               "base": answers["base"][i], **j}
        for label in LABELS:
            o = by_id.get(f"{i}:{label}")
            row[f"score_{label}"] = o.value["score"] if o and o.value else None
        rows.append(row)
    return summary, rows
