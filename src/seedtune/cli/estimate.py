"""``seedtune estimate``: LLM calls, tokens and dollars, Naver calls and days of quota, and
pages to crawl with the least time they take, before any is spent.

Run: ``seedtune estimate`` (reads params.yaml, this machine's settings and the inputs that
exist; ``--json`` for a machine-readable answer: ``{llm: [rows], naver: {...}, crawl:
{...}}``). Requests already in a stage's cache cost nothing and are counted
as cached. Where a stage's input does not exist yet (synthesize before queries has run),
its requests are projected from the params: every seed word yields ``queries.per_seed``
questions (plus, with the ``titles`` source, the share of its forum titles the tutorial
kept), each answered with ``synthesize.top_k`` passages of typical length. The judge's
requests (evaluate) carry both models' answers: they are rebuilt from the last run's
reports/answers.jsonl (the same answers while the models are unchanged), projected for
questions it does not have. The titles
source's row also counts its Naver calls: exact per seed word whose answers are cached in
data/cache/titles, else at most ``categories x pages`` (and prompts as if every result were
a title). Token counts are estimates (see :func:`seedtune.llm.costs.estimate_tokens`), not
billing.

Naver: the search stage's calls for data/questions.jsonl (cached answers free; projected
as the LLM rows are when it does not exist yet) plus the titles', against
``search.daily_quota`` and what the machine's ledger says was used today. Crawl: the pages
behind data/documents.jsonl the crawl stage would fetch (cached outcomes free), per host,
and the least time ``crawl.host_rps``, ``per_host`` and ``concurrency`` allow; for questions
without a documents row (search has not run, or seed words were added since), projected
from their count and a typical host mix (:mod:`seedtune.retrieval.forecast`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from seedtune.cli.estimate_retrieval import crawl_summary, format_crawl, format_naver, naver_summary
from seedtune.core import paths
from seedtune.core.cache import ResponseCache
from seedtune.core.config import Params, load_params
from seedtune.core.credentials import optional_secret
from seedtune.core.machine import load_machine
from seedtune.core.paths import CACHE_DIR
from seedtune.core.records import read_jsonl
from seedtune.llm.client import LLMClient, LLMRequest
from seedtune.llm.costs import cost_usd, estimate_tokens, messages_tokens
from seedtune.retrieval.naver import NaverClient
from seedtune.retrieval.quota import DailyBudget, account_key

# Typical sizes of what the LLM writes, of a Naver passage and of a forum title, in characters.
QUESTION_CHARS = 30
PASSAGE_CHARS = 160
TITLE_CHARS = 25
#: Share of forum titles that become questions (the tutorial kept 4,374 of about 10,000).
TITLE_KEEP_SHARE = 0.44
CHARS_PER_KOREAN_WORD = 3.5
#: A verdict or a score with its one-line reason.
JUDGE_COMPLETION_TOKENS = 60


def _row(
    stage: str,
    model: str,
    reqs: list[LLMRequest],
    pending: list[LLMRequest],
    completion_tokens: int,
    prices: dict[str, dict[str, float]],
    projected: bool,
) -> dict[str, Any]:
    prompt = sum(messages_tokens(r.messages) for r in pending)
    completion = completion_tokens * len(pending)
    usd = cost_usd(model, prompt, completion, prices)
    batch_usd = cost_usd(model, prompt, completion, prices, batch=True)
    return {
        "stage": stage,
        "model": model,
        "requests": len(reqs),
        "calls": len(pending),
        "cached": len(reqs) - len(pending),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "usd": usd,
        "batch_usd": batch_usd,  # the same calls through the Batch API (llm.mode: batch)
        "projected": projected,
    }


def estimate(p: Params, root: Path = Path(".")) -> dict[str, Any]:
    """``{llm, naver, crawl}``: one row per LLM stage (requests, calls still to make,
    tokens, dollars), the Naver calls with their days of quota, and the crawl."""
    from seedtune.synthesis import queries as questions

    seeds = questions.load_seeds(p.queries, root)
    # one application, one ledger: the titles' and the search stage's calls share the quota
    budget = DailyBudget(
        p.search.daily_quota, account_key(optional_secret("NAVER_CLIENT_ID", root / ".env"))
    )
    rows = llm_rows(p, seeds, root, budget)
    titles = next((r for r in rows if "naver_calls" in r), None)
    projected = len(set(seeds)) * _questions_per_seed(p)
    naver, questions = naver_summary(p, root, budget, projected, titles)
    return {"llm": rows, "naver": naver, "crawl": crawl_summary(p, root, questions, projected)}


def llm_rows(p: Params, seeds: list[str], root: Path, budget: DailyBudget) -> list[dict[str, Any]]:
    """One row per LLM stage: requests, calls still to make, tokens and dollars."""
    from seedtune.tasks import queries as questions
    from seedtune.tasks import synthesize as synthesis

    prices = p.price_table()
    q_reqs = (
        questions.build_requests(seeds, p.queries, questions.template())
        if "llm" in p.queries.sources
        else []
    )
    q_client = LLMClient(p.llm, ResponseCache(root / CACHE_DIR / "queries"))
    q_completion = estimate_tokens("가" * QUESTION_CHARS) * p.queries.per_seed + 10
    rows = [
        _row("queries", p.llm.model, q_reqs, q_client.pending(q_reqs), q_completion, prices, False)
    ]
    if "titles" in p.queries.sources:
        rows.append(_titles_row(p, seeds, root, q_client, prices, budget))

    ranked_path = root / paths.RANKED
    projected = not ranked_path.is_file()
    if projected:
        passage = {"passage": "가" * PASSAGE_CHARS}
        ranked = [
            {
                "question": f"{s} 질문 {i} " + "가" * QUESTION_CHARS,
                "documents": [passage] * p.synthesize.top_k,
            }
            for s in seeds
            for i in range(_questions_per_seed(p))
        ]
    else:
        ranked = read_jsonl(ranked_path)
    s_reqs = synthesis.build_requests(ranked, p.synthesize, synthesis.template())
    s_client = LLMClient(p.llm, ResponseCache(root / CACHE_DIR / "synthesize"))
    s_pending = s_reqs if projected else s_client.pending(s_reqs)
    s_completion = (
        estimate_tokens("가" * int(p.synthesize.target_words * CHARS_PER_KOREAN_WORD)) + 20
    )
    rows.append(_row("synthesize", p.llm.model, s_reqs, s_pending, s_completion, prices, projected))

    rows.append(_judge_row(p, ranked, root, prices))
    return rows


def _questions_per_seed(p: Params) -> int:
    """Questions a seed word is expected to give, over every source in ``queries.sources``."""
    q, n = p.queries, 0.0
    if "llm" in q.sources:
        n += q.per_seed
    if "titles" in q.sources:
        n += len(q.titles.categories) * q.titles.per_seed * TITLE_KEEP_SHARE
    return math.ceil(n)


def _titles_row(
    p: Params,
    seeds: list[str],
    root: Path,
    client: LLMClient,
    prices: dict[str, dict[str, float]],
    budget: DailyBudget,
) -> dict[str, Any]:
    """The titles source: its Naver calls (answers already cached are free) and its LLM
    calls, exact for seed words whose Naver answers are all cached, else projected from
    ``queries.titles`` (every result a title, prompts full)."""
    from seedtune.synthesis import titles
    from seedtune.tasks import titles as title_task

    cfg = p.queries.titles
    naver = NaverClient(
        titles.search_config(cfg, load_machine(root)),
        ResponseCache(root / CACHE_DIR / "titles"),
        None,
        None,
        budget,
    )
    found, missing, cached_pages = titles.from_cache(naver, seeds, cfg)
    template = title_task.template()
    reqs = title_task.build_requests(found.batches, p.queries.forms, cfg, template)
    pending = client.pending(reqs)
    per_seed = len(cfg.categories) * cfg.per_seed
    typical = titles.TitleSet()
    typical.add(
        "가" * 4,
        [
            {"title": f"{'가' * TITLE_CHARS}{i}", "link": f"l{i}", "category": "kin"}
            for i in range(per_seed)
        ],
        cfg.per_prompt,
    )
    projected = title_task.build_requests(typical.batches, p.queries.forms, cfg, template) * len(
        missing
    )
    per_title = estimate_tokens("가" * QUESTION_CHARS) + 10  # its number, a question or a drop
    row = _row(
        "queries.titles",
        p.llm.model,
        reqs + projected,
        pending + projected,
        per_title * cfg.per_prompt,
        prices,
        bool(missing),
    )
    pages = naver.cfg.pages * len(cfg.categories)
    row.update(
        naver_requests=pages * len(set(seeds)),
        naver_cached=cached_pages,
        naver_calls=pages * len(set(seeds)) - cached_pages,
        naver_calls_today=naver.budget.used(),
        naver_daily_quota=naver.cfg.daily_quota,
    )
    return row


def _judge_row(
    p: Params, ranked: list[dict[str, Any]], root: Path, prices: dict[str, dict[str, float]]
) -> dict[str, Any]:
    """The evaluate stage's judge calls: per question two pairwise verdicts (both orders)
    and two 1-10 scores. Their cache keys hold both models' answers: for a question the last
    run answered (reports/answers.jsonl) they are rebuilt from those answers, which greedy
    decoding gives again while the models are unchanged; for the others (no run yet, new
    questions) they are projected, with answers of ``evaluate.max_new_tokens``."""
    from seedtune.evaluation import evaluate as evaluation
    from seedtune.synthesis import synthesize as synthesis

    instructions_path = root / paths.INSTRUCTIONS
    have_input = instructions_path.is_file()
    instructions = (
        read_jsonl(instructions_path)
        if have_input
        else synthesis.split_rows(ranked, p.synthesize, p.seed)
    )
    qs = evaluation.eval_questions(p, instructions, root)
    refs = evaluation.references(instructions, qs)
    last = evaluation.last_answers(root / evaluation.ANSWERS_FILE) if have_input else {}
    known = [i for i, q in enumerate(qs) if q in last]
    new = [i for i, q in enumerate(qs) if q not in last]
    client = LLMClient(p.llm, ResponseCache(root / CACHE_DIR / "evaluate"))
    exact = _judge_requests(
        p,
        [qs[i] for i in known],
        [refs[i] for i in known],
        {label: [last[qs[i]][label] for i in known] for label in evaluation.LABELS},
    )
    typical = "가" * p.evaluate.max_new_tokens  # one token per syllable
    projected = _judge_requests(
        p,
        [qs[i] for i in new],
        [refs[i] for i in new],
        {label: [typical] * len(new) for label in evaluation.LABELS},
    )
    row = _row(
        "evaluate",
        evaluation.judge_model(p),
        exact + projected,
        client.pending(exact) + projected,
        JUDGE_COMPLETION_TOKENS,
        prices,
        bool(new),
    )
    if known:
        row["note"] = (
            f"cached counted with the answers in {evaluation.ANSWERS_FILE}: "
            "a retrained adapter (or another base model) answers anew"
        )
    if new:
        row["note_projected"] = (
            f"{len(new)} of {len(qs)} questions have no answers in "
            f"{evaluation.ANSWERS_FILE} yet: projected"
        )
    return row


def _judge_requests(
    p: Params, questions: list[str], refs: list[str], answers: dict[str, list[str]]
) -> list[LLMRequest]:
    """The judge's requests for these answers, exactly as the evaluate stage builds them."""
    from seedtune.evaluation import evaluate as evaluation

    pairs, scores = evaluation.judge_requests(p, questions, answers, refs)
    return pairs + scores


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table with a total line."""
    head = (
        f"{'stage':<15} {'model':<16} {'requests':>8} {'cached':>7} {'calls':>6} "
        f"{'prompt tok':>11} {'compl. tok':>11} {'USD':>9} {'batch USD':>9}"
    )
    lines = [head, "-" * len(head)]

    def shown(usd: float | None) -> str:
        return "unpriced" if usd is None else f"{usd:.4f}"

    for r in rows:
        mark = "*" if r["projected"] else ""
        lines.append(
            f"{r['stage'] + mark:<15} {r['model'][:16]:<16} {r['requests']:>8} "
            f"{r['cached']:>7} {r['calls']:>6} {r['prompt_tokens']:>11} "
            f"{r['completion_tokens']:>11} {shown(r['usd']):>9} "
            f"{shown(r.get('batch_usd')):>9}"
        )
    total = sum(r["usd"] or 0 for r in rows)
    # a stage the Batch API columns do not price leaves the batch total unpriced
    batch_total = (
        None
        if any(r.get("batch_usd") is None and r["usd"] is not None for r in rows)
        else sum(r.get("batch_usd") or 0 for r in rows)
    )
    lines.append("-" * len(head))
    lines.append(
        f"{'total':<15} {'':<16} {sum(r['requests'] for r in rows):>8} "
        f"{sum(r['cached'] for r in rows):>7} {sum(r['calls'] for r in rows):>6} "
        f"{sum(r['prompt_tokens'] for r in rows):>11} "
        f"{sum(r['completion_tokens'] for r in rows):>11} {total:>9.4f} "
        f"{shown(batch_total):>9}"
    )
    lines.append("  batch USD: the same calls with llm.mode: batch (the Batch API's prices)")
    for r in rows:
        if r["projected"]:
            lines.append(
                f"* {r['stage']}: "
                + r.get("note_projected", "projected from params (its input does not exist yet)")
            )
    lines += [f"  {r['stage']}: {r['note']}" for r in rows if r.get("note")]
    return "\n".join(lines)


def format_report(result: dict[str, Any]) -> str:
    """The whole estimate as terminal text: the LLM table, the Naver calls, the crawl."""
    return "\n\n".join(
        [
            format_table(result["llm"]),
            "\n".join(format_naver(result["naver"])),
            "\n".join(format_crawl(result["crawl"])),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Print the estimate for params.yaml in the current directory."""
    ap = argparse.ArgumentParser(prog="seedtune estimate", description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=paths.PARAMS_FILE)
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    p = load_params(args.params, ("llm", "queries", "search", "crawl", "synthesize", "evaluate"))
    result = estimate(p)
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else format_report(result))
    sys.stdout.flush()
    return 0
