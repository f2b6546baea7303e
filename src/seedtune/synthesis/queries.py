"""The queries stage's logic: the seed words, then clean, filter and deduplicate the
questions the LLM wrote (:mod:`seedtune.tasks.queries`), those made of forum titles
(:mod:`seedtune.synthesis.titles`) and your own.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from seedtune.core.config import Params, QueriesConfig
from seedtune.core.errors import ConfigError, InputError
from seedtune.core.paths import QUESTIONS
from seedtune.core.records import read_lines, write_jsonl
from seedtune.core.stage import check_reject_rate, stage_metrics, write_rejects
from seedtune.core.text import hangul_share, normalize
from seedtune.llm.client import LLMClient, LLMRequest
from seedtune.llm.costs import usage_metrics
from seedtune.llm.prompts import PromptTemplate
from seedtune.retrieval.documents import link_key
from seedtune.synthesis import titles
from seedtune.synthesis.dedup import deduplicate
from seedtune.tasks import queries as queries_task
from seedtune.tasks import titles as titles_task


def load_seeds(cfg: QueriesConfig, root: Path = Path(".")) -> list[str]:
    """The seed words of ``queries.seed_file``, each once, in file order."""
    seeds = list(dict.fromkeys(read_lines(root / cfg.seed_file)))
    if not seeds:
        raise InputError(
            f"{cfg.seed_file}: no seed words (queries.seed_file wants one per "
            "line; # starts a comment)"
        )
    return seeds


#: Where a question's provenance is kept, per source (the rejects repeat it).
PROVENANCE = ("seed", "source", "title", "link", "category")


def _dropped(row: dict[str, Any], question: str, reason: str, **extra: Any) -> dict[str, Any]:
    return {
        "question": question,
        **{k: row[k] for k in PROVENANCE if k in row},
        "reason": reason,
        **extra,
    }


def filter_questions(
    rows: list[dict[str, Any]], cfg: QueriesConfig
) -> tuple[list[dict[str, Any]], dict[str, int], list[dict[str, Any]]]:
    """Normalise, drop bad lengths / non-Korean, then duplicates across the whole set.

    Duplicates (:func:`seedtune.synthesis.dedup.deduplicate`, ``queries.dedup``) are looked
    for across every source and seed word together: the same text, or (``terms``) the same
    key terms in other words, while questions that differ in a key term ("전세의 장단점은?"
    / "월세의 장단점은?") stay apart. A real person's question wins over an invented one
    (your files, then forum titles, then the LLM's), else the first. Two title questions
    from the same post (found under two seed words) are one.

    Returns the kept rows (in input order), counts for the metrics, and a record per
    dropped question with its provenance and reason (``too_short``, ``too_long``,
    ``not_korean``, ``duplicate`` with ``duplicate_of``) for data/rejects/queries.jsonl.
    """
    counts = {"generated": len(rows), "filtered": 0, "duplicates": 0, "kept": 0}
    drops: list[dict[str, Any]] = []
    usable: list[dict[str, Any]] = []
    posts: dict[str, str] = {}
    for row in rows:
        q = normalize(row["question"])
        reason = (
            "too_short"
            if len(q) < cfg.min_chars
            else "too_long"
            if len(q) > cfg.max_chars
            else "not_korean"
            if hangul_share(q) < cfg.min_hangul_share
            else None
        )
        if reason:
            counts["filtered"] += 1
            drops.append(_dropped(row, q, reason))
            continue
        post = link_key(row["link"]) if row.get("source") == "titles" and row.get("link") else None
        if post in posts:
            counts["duplicates"] += 1
            drops.append(_dropped(row, q, "duplicate", duplicate_of=posts[post]))
            continue
        if post:
            posts[post] = q
        usable.append({**row, "question": q})
    kept, dupes = deduplicate(usable, cfg.dedup)
    counts["duplicates"] += len(dupes)
    drops += [
        _dropped(row, row["question"], "duplicate", duplicate_of=first["question"])
        for row, first in dupes
    ]
    counts["kept"] = len(kept)
    return kept, counts, drops


#: The param that drops a question for each filter reason.
FILTER_PARAMS = {
    "too_short": "queries.min_chars",
    "too_long": "queries.max_chars",
    "not_korean": "queries.min_hangul_share",
    "duplicate": "queries.dedup",
}


def require_kept(
    kept: list[dict[str, Any]],
    counts: dict[str, int],
    drops: list[dict[str, Any]],
    cfg: QueriesConfig,
) -> None:
    """Fail with one line when no question is left, saying how many there were and which
    filters removed them: an empty data/questions.jsonl would look like a finished stage."""
    if kept:
        return
    if not counts["generated"]:
        raise InputError(
            f"queries: no question was generated or supplied (queries.sources="
            f"{list(cfg.sources)}); see data/rejects/queries.jsonl"
        )
    why = Counter(d["reason"] for d in drops)
    removed = ", ".join(
        f"{n} {reason} ({FILTER_PARAMS[reason]}="
        f"{getattr(cfg, FILTER_PARAMS[reason].split('.')[1])!r})"
        for reason, n in why.most_common()
        if reason in FILTER_PARAMS
    )
    raise ConfigError(
        f"queries: all {counts['generated']} questions were filtered out: "
        f"{removed}; see data/rejects/queries.jsonl"
    )


def source_metrics(rows: list[dict[str, Any]], kept: list[dict[str, Any]]) -> dict[str, Any]:
    """Questions generated and kept, per source."""
    made, left = Counter(r["source"] for r in rows), Counter(r["source"] for r in kept)
    return {"sources": {s: {"generated": made[s], "kept": left[s]} for s in sorted(made | left)}}


def write_questions(
    p: Params,
    client: LLMClient,
    llm_reqs: list[LLMRequest],
    found: titles.TitleSet,
    seeds: list[str],
    extra: list[str],
    template: PromptTemplate,
    title_template: PromptTemplate,
) -> None:
    """The queries stage's work once its inputs are read: the LLM's questions per seed word
    (``llm_reqs``) and the forum titles' verdicts in one client run, filtered and
    deduplicated with ``extra`` (the user's own questions) into data/questions.jsonl, with
    rejects and metrics (written even when it fails: what was spent is there to read)."""
    cfg = p.queries
    with stage_metrics(
        "queries", lambda: usage_metrics(p.llm.model, client.stats, p.price_table())
    ) as metrics:
        outcomes = client.run(
            llm_reqs
            + titles_task.build_requests(found.batches, cfg.forms, cfg.titles, title_template)
        )
        llm_out = outcomes[: len(llm_reqs)]
        judged = titles_task.verdicts(
            found.batches, outcomes[len(llm_reqs) :], p.llm.model, title_template.version
        )
        rows = queries_task.candidates(llm_out, p.llm.model, template.version, extra)
        rows += judged.rows
        kept, counts, drops = filter_questions(rows, cfg)
        failed = queries_task.failures(llm_out)
        lost = len(failed) + judged.lost
        metrics.update(
            {
                "seeds": len(seeds),
                **counts,
                "rejects": lost,
                **source_metrics(rows, kept),
                **titles.metrics(found, judged),
            }
        )
        write_rejects("queries", failed + found.rejects + judged.rejects + drops)
        check_reject_rate("queries", len(llm_reqs) + found.sent, lost, p.llm.max_reject_rate)
        require_kept(kept, counts, drops, cfg)  # never an empty file that looks done
        write_jsonl(QUESTIONS, kept)
