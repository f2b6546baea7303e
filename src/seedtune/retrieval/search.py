"""The search stage's orchestration: every question in every category and page, in parallel.

One ``{question, documents}`` row per question, documents cleaned and deduplicated
(:mod:`seedtune.retrieval.documents`). A quota that runs out stops the run early with what
was finished; a credentials or request error stops every worker at once.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from seedtune.core.errors import InputError
from seedtune.core.records import read_jsonl
from seedtune.retrieval.documents import dedupe_documents, to_documents
from seedtune.retrieval.naver import NaverClient, QuotaExceeded

log = logging.getLogger(__name__)


def search_category(client: NaverClient, question: str, category: str,
                    stop: threading.Event | None = None,
                    fetch: Callable[[str, str, int], dict[str, Any]] | None = None
                    ) -> list[dict[str, Any]] | None:
    """Clean documents of up to ``search.pages`` pages; None when ``stop`` was set meanwhile.

    ``fetch(query, category, start)`` gets one page (default ``client.search``; the cost
    estimate passes a cache-only lookup)."""
    cfg = client.cfg
    fetch = fetch or client.search
    docs: list[dict[str, Any]] = []
    for page in range(cfg.pages):
        if stop is not None and stop.is_set():
            return None
        start = 1 + page * cfg.display
        body = fetch(question, category, start)
        docs += to_documents(category, body)
        total = body.get("total")
        if len(body.get("items") or []) < cfg.display or (
                isinstance(total, int) and start - 1 + cfg.display >= total):
            break  # no further pages
    return docs


def search_question(client: NaverClient, question: str, stop: threading.Event | None = None,
                    limit: int | None = None,
                    fetch: Callable[[str, str, int], dict[str, Any]] | None = None,
                    dedupe: bool = True) -> dict[str, Any] | None:
    """``{question, documents}`` over every category, at most ``limit`` documents from each
    (None: all pages), deduplicated unless ``dedupe`` is false; None when stopped.
    ``fetch``: see search_category."""
    docs: list[dict[str, Any]] = []
    for category in client.cfg.categories:
        found = search_category(client, question, category, stop, fetch)
        if found is None:
            return None
        docs += found[:limit]
    return {"question": question, "documents": dedupe_documents(docs) if dedupe else docs}


def search_all(client: NaverClient, questions: list[str], workers: int | None = None,
               limit: int | None = None, desc: str = "search", unit: str = "question",
               dedupe: bool = True) -> tuple[list[dict[str, Any]], str | None]:
    """Search every (unique) question in every configured category and page (at most
    ``limit`` documents per category; ``dedupe``: see search_question).

    Returns ``(rows, stopped)``: one ``{question, documents}`` row per finished question in
    input order, and the quota message when a quota stopped the run early (rows then cover
    only the questions finished before it; every answer fetched is in the cache). A
    credentials or request error stops the other workers at once and is raised. ``desc``
    and ``unit`` name the work in the log and on the progress bar.
    """
    from tqdm.auto import tqdm

    unique = list(dict.fromkeys(questions))
    cfg = client.cfg
    log.info("%s: searching %d %ss in %s (up to %d page(s) of %d); %d of "
             "search.daily_quota=%d calls left today", desc, len(unique), unit,
             ",".join(cfg.categories), cfg.pages, cfg.display,
             max(0, cfg.daily_quota - client.budget.used()), cfg.daily_quota)
    stop = threading.Event()
    done: dict[str, dict[str, Any]] = {}
    stopped: str | None = None

    def one(question: str) -> dict[str, Any] | None:
        if stop.is_set():
            return None
        try:
            return search_question(client, question, stop, limit, dedupe=dedupe)
        except BaseException:
            stop.set()  # one failure ends the run: do not spend calls on the rest
            raise

    pool = ThreadPoolExecutor(max_workers=workers or client.workers)
    try:
        with tqdm(total=len(unique), desc=desc, unit=unit) as bar:
            pending: set[Future] = {pool.submit(one, q) for q in unique}
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    try:
                        row = fut.result()
                    except QuotaExceeded as exc:
                        stopped = stopped or str(exc)
                        continue
                    if row is not None:
                        done[row["question"]] = row
                        bar.update()
                bar.set_postfix(calls=client.stats.calls, cached=client.stats.cache_hits,
                                retries=client.stats.retries,
                                refresh=False)
    finally:
        stop.set()  # also on Ctrl-C: workers finish their request in flight, start no other
        pool.shutdown(wait=True, cancel_futures=True)
    return [done[q] for q in unique if q in done], stopped


def read_questions(path: Path | str) -> list[str]:
    """The ``question`` of each row of a questions file; a bad row names its line."""
    questions = []
    for n, row in enumerate(read_jsonl(path), 1):
        q = row.get("question") if isinstance(row, dict) else None
        if not isinstance(q, str) or not q.strip():
            raise InputError(f"{path}: row {n} has no non-empty `question` string")
        questions.append(q.strip())
    return questions


def search_metrics(rows: list[dict[str, Any]], client: NaverClient) -> dict[str, Any]:
    """Counts for metrics/search.json: questions, empty ones, documents, calls, budget."""
    per_category: dict[str, int] = {}
    masked: Counter[str] = Counter()
    for row in rows:
        for doc in row["documents"]:
            per_category[doc["category"]] = per_category.get(doc["category"], 0) + 1
            masked.update(doc.get("pii_masked") or {})
    return {
        "questions": len(rows),
        "no_results": sum(1 for r in rows if not r["documents"]),
        "documents": sum(len(r["documents"]) for r in rows),
        "documents_per_category": per_category,
        "pii_masked": dict(masked),
        **client.stats.as_dict("calls", "cache_hits", "retries"),
        "calls_today": client.budget.used(),
    }
