"""The evaluate stage's orchestration: answer with base and tuned models, then judge.

Both models answer the same questions with the same chat template and greedy decoding.
The judge compares each pair in both orders (:mod:`seedtune.tasks.judge`) and scores each
answer 1-10 on its own (:mod:`seedtune.tasks.score`). Judge calls go through the shared
cached LLM client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seedtune.core import paths
from seedtune.core.adapter import weights_md5
from seedtune.core.config import Params
from seedtune.core.records import (
    atomic_write_text,
    read_jsonl,
    read_lines,
    write_json,
    write_jsonl,
)
from seedtune.core.stage import check_reject_rate, stage_metrics, write_rejects
from seedtune.evaluation.generation import attach_adapter, generate_answers, is_merged, load_model
from seedtune.evaluation.judging import bootstrap_ci, report_markdown, win_rate
from seedtune.evaluation.remote import Generated, answer_via_server, generate_settings
from seedtune.evaluation.summary import score_distribution
from seedtune.llm.client import LLMClient, LLMRequest
from seedtune.llm.costs import usage_metrics
from seedtune.tasks import judge as judge_task
from seedtune.tasks import score as score_task

LABELS = ("base", "tuned")
#: Both models' answers as last judged (an output of the evaluate stage).
ANSWERS_FILE = paths.ANSWERS


#: The group of an eval row without ``question_source`` (rows before other sources existed).
DEFAULT_SOURCE = "llm"


def interleave(groups: list[list[str]]) -> list[str]:
    """One item of each group in turn (the first of each, then the second, ...)."""
    out: list[str] = []
    for depth in range(max((len(g) for g in groups), default=0)):
        out += [g[depth] for g in groups if depth < len(g)]
    return out


def eval_questions(
    p: Params, instructions: list[dict[str, Any]], root: Path = Path(".")
) -> list[str]:
    """The eval split's questions (at most ``evaluate.max_questions``), then those of
    ``evaluate.questions_file`` (when it exists) that are not among them.

    The eval questions are taken round-robin across ``question_source`` (sources in name
    order, each source's questions in file order; a row without one counts as
    :data:`DEFAULT_SOURCE`), so a cap below the eval split's size still judges every source.
    """
    by_source: dict[str, list[str]] = {}
    for r in instructions:
        if r.get("split") == "eval":
            source = r.get("question_source")
            key = source if isinstance(source, str) and source else DEFAULT_SOURCE
            by_source.setdefault(key, []).append(r["question"])
    questions = interleave([by_source[k] for k in sorted(by_source)])[: p.evaluate.max_questions]
    own = p.evaluate.questions_file
    if own and (root / own).is_file():
        drawn = set(questions)
        questions += [q for q in read_lines(root / own) if q not in drawn]
    return questions


def references(instructions: list[dict[str, Any]], questions: list[str]) -> list[str]:
    """The synthesized (grounded) answer of each question, "" for your own questions."""
    known = {r["question"]: r.get("answer") or "" for r in instructions}
    return [known.get(q, "") for q in questions]


def generate_all(
    p: Params, questions: list[str], adapter: str, cache_dir: Path | None = None
) -> Generated:
    """Both models' greedy answers, from the inference server ``generate.base_url`` names
    (:mod:`seedtune.evaluation.remote`; answers cached under ``cache_dir``), else
    in-process (the base weights load once, the adapter then goes on top), with which
    generator made them."""
    gen = generate_settings()
    if gen.base_url:
        return answer_via_server(
            gen,
            p.train.model.name_or_path,
            p.train.model.revision,
            questions,
            Path(adapter),
            p.evaluate.max_new_tokens,
            cache_dir,
        )
    model, tok = load_model(p.train.model.name_or_path, None, p.train.model.revision)
    answers: dict[str, list[str]] = {}
    for label in LABELS:  # base first, then the adapter goes on top of the same weights
        if label == "tuned":
            model, tok = attach_adapter(model, adapter)
        answers[label] = generate_answers(
            model,
            tok,
            questions,
            p.evaluate.max_new_tokens,
            p.evaluate.batch_size,
            desc=f"answers ({label})",
        )
    return Generated(answers, {"generator": "in-process", "generator_merged": is_merged(model)})


def judge_model(p: Params) -> str:
    """The model that judges: ``evaluate.judge_model``, else ``llm.model``."""
    return p.evaluate.judge_model or p.llm.model


def judge_requests(
    p: Params, questions: list[str], answers: dict[str, list[str]], refs: list[str]
) -> tuple[list[LLMRequest], list[LLMRequest]]:
    """(pairwise requests, score requests) for these answers: what the judge is asked, and
    so the cache keys ``seedtune estimate`` looks up."""
    judge = judge_model(p)
    return (
        judge_task.build_requests(
            questions, answers["tuned"], answers["base"], judge_task.template(), judge, refs
        ),
        score_task.build_score_requests(
            questions,
            {label: answers[label] for label in LABELS},
            score_task.template(),
            judge,
            refs,
        ),
    )


def answers_rows(questions: list[str], answers: dict[str, list[str]]) -> list[dict[str, str]]:
    """reports/answers.jsonl: each question with both models' answers, as judged."""
    return [
        {"question": q, **{label: answers[label][i] for label in LABELS}}
        for i, q in enumerate(questions)
    ]


def write_answers(questions: list[str], answers: dict[str, list[str]]) -> None:
    """Write :data:`ANSWERS_FILE` (see :func:`answers_rows`)."""
    write_jsonl(ANSWERS_FILE, answers_rows(questions, answers))


def last_answers(path: Path) -> dict[str, dict[str, str]]:
    """{question: {base, tuned}} from the last run's reports/answers.jsonl ({} without one).
    Greedy decoding answers the same again while the models are unchanged."""
    if not path.is_file():
        return {}
    return {
        r["question"]: {label: r.get(label) or "" for label in LABELS}
        for r in read_jsonl(path)
        if isinstance(r.get("question"), str)
    }


def judge_all(
    p: Params,
    client: LLMClient,
    questions: list[str],
    answers: dict[str, list[str]],
    refs: list[str] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(summary metrics, per-question rows) from pairwise verdicts and single scores, each
    judged against the question's reference answer (``refs``) where it has one."""
    refs = refs or [""] * len(questions)
    pair_reqs, score_reqs = judge_requests(p, questions, answers, refs)
    outcomes = client.run(pair_reqs + score_reqs)
    pairs, scores = outcomes[: len(pair_reqs)], outcomes[len(pair_reqs) :]
    judged = judge_task.combine(pairs, len(questions))
    results = [j["result"] for j in judged if j["result"]]
    lo, hi = bootstrap_ci(results, p.evaluate.bootstrap, p.seed)
    means = score_task.mean_scores(scores, list(LABELS))
    summary = {
        "win_rate": win_rate(results),
        "win_rate_ci_low": lo,
        "win_rate_ci_high": hi,
        "n": len(results),
        "wins": results.count("win"),
        "ties": results.count("tie"),
        "losses": results.count("loss"),
        "rejects": len(judged) - len(results),
        "score_tuned": means["tuned"],
        "score_base": means["base"],
        "score_rejects": sum(1 for o in scores if o.reject),
    }
    by_id = {o.id: o for o in scores}
    rows = []
    for i, (q, j) in enumerate(zip(questions, judged, strict=True)):
        row: dict[str, Any] = {
            "question": q,
            "reference": refs[i],
            "tuned": answers["tuned"][i],
            "base": answers["base"][i],
            **j,
        }
        for label in LABELS:
            o = by_id.get(f"{i}:{label}")
            row[f"score_{label}"] = o.value["score"] if o and o.value else None
        rows.append(row)
    return summary, rows


def judge_and_report(
    p: Params,
    client: LLMClient,
    questions: list[str],
    answers: dict[str, list[str]],
    instructions: list[dict[str, Any]],
    generator: dict[str, Any] | None = None,
) -> None:
    """Judge both models' answers, then write the stage's outputs: rejects, the reject-rate
    check, reports/evaluation.md, reports/scores.json, reports/answers.jsonl and
    metrics/evaluate.json, the metrics also when the stage fails (what was spent is
    there); ``generator``: which generator made the answers (in both report and metrics)."""
    generator = generator or {}
    judge = judge_model(p)
    with stage_metrics(
        "evaluate",
        lambda: {
            f"judge_{k}": v for k, v in usage_metrics(judge, client.stats, p.price_table()).items()
        },
    ) as metrics:
        results, rows = judge_all(
            p, client, questions, answers, references(instructions, questions)
        )
        write_rejects(
            "evaluate",
            [
                {"question": r["question"], "reason": r["reject"]}
                for r in rows
                if not r.get("result")
            ],
        )
        # two verdicts and two scores per question: every judge request counts
        check_reject_rate(
            "evaluate", 4 * len(questions), client.stats.rejects, p.llm.max_reject_rate
        )
        atomic_write_text(
            paths.EVALUATION_REPORT,
            report_markdown({**results, "judge_model": judge, **generator}, rows),
        )
        write_json(paths.SCORES, score_distribution(rows, LABELS))
        write_answers(questions, answers)  # estimate rebuilds the judge's requests from it
        # which adapter was judged: the merged model's card quotes the verdict only for it
        metrics.update(results, **generator, adapter_md5=weights_md5(paths.ADAPTER))
