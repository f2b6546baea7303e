"""The search stage's orchestration: every question in every category and page, in parallel.

One ``{question, documents}`` row per question, documents cleaned and deduplicated
(:mod:`seedtune.retrieval.documents`). A quota that runs out stops the run early with what
was finished; a credentials or request error stops every worker at once.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from seedtune.core import pii, text
from seedtune.core.cache import ResponseCache, cache_key, code_fingerprint, derived_cache
from seedtune.core.config import SearchConfig
from seedtune.core.errors import InputError
from seedtune.core.records import iter_jsonl
from seedtune.retrieval import documents
from seedtune.retrieval.documents import dedupe_documents, to_documents
from seedtune.retrieval.naver import NaverClient, QuotaExceeded

log = logging.getLogger(__name__)


def search_category(
    client: NaverClient,
    question: str,
    category: str,
    stop: threading.Event | None = None,
    fetch: Callable[[str, str, int], dict[str, Any]] | None = None,
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
            isinstance(total, int) and start - 1 + cfg.display >= total
        ):
            break  # no further pages
    return docs


def search_question(
    client: NaverClient,
    question: str,
    stop: threading.Event | None = None,
    limit: int | None = None,
    fetch: Callable[[str, str, int], dict[str, Any]] | None = None,
    dedupe: bool = True,
) -> dict[str, Any] | None:
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


def rows_fingerprint(cfg: SearchConfig) -> str:
    """What a derived ``{question, documents}`` row depends on besides Naver's answers: the
    params that shape the requests and the cleaning code. 12 hex digits."""
    code = code_fingerprint([documents, pii, text, sys.modules[__name__]])
    return cache_key(
        {
            "categories": list(cfg.categories),
            "display": cfg.display,
            "pages": cfg.pages,
            "sort": cfg.sort,
            "code": code,
        }
    )[:12]


def derived_rows(root: Path, cfg: SearchConfig) -> ResponseCache:
    """The question rows derived under today's params and code (:func:`derived_cache`)."""
    return derived_cache(root, rows_fingerprint(cfg), "question rows")


class SearchRun:
    """Search every (unique) question in every configured category and page, streaming.

    Iterating yields one ``{question, documents}`` row per question in input order, while
    at most ``window`` questions are in flight or waiting for an earlier one, so memory
    holds a window, not the run. With ``rows`` (:func:`derived_rows`), a question searched
    before is read back whole instead of being cleaned again from each cached answer, and
    each new row is kept there. ``limit`` and ``dedupe``: see :func:`search_question`.

    A quota that runs out ends the iteration early and sets ``stopped`` to its message
    (every answer fetched is in the cache); a credentials or request error stops the other
    workers at once and is raised. ``desc`` and ``unit`` name the work in the log and on the
    progress bar.
    """

    def __init__(
        self,
        client: NaverClient,
        questions: Iterable[str],
        workers: int | None = None,
        limit: int | None = None,
        desc: str = "search",
        unit: str = "question",
        dedupe: bool = True,
        rows: ResponseCache | None = None,
        window: int | None = None,
    ) -> None:
        self.client, self.limit, self.dedupe, self.rows = client, limit, dedupe, rows
        self.questions = list(dict.fromkeys(questions))
        self.workers = workers or client.workers
        self.window = window or max(64, 8 * self.workers)
        self.desc, self.unit = desc, unit
        self.stopped: str | None = None
        self.done = 0
        self.from_rows = 0

    def _key(self, question: str) -> str:
        return cache_key({"row": question, "limit": self.limit, "dedupe": self.dedupe})

    def _stored(self, question: str) -> dict[str, Any] | None:
        if self.rows is None or self._key(question) not in self.rows:
            return None
        row = self.rows.get(self._key(question))
        ok = isinstance(row, dict) and isinstance(row.get("documents"), list)
        return row if ok and row.get("question") == question else None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from tqdm.auto import tqdm

        cfg, client = self.client.cfg, self.client
        log.info(
            "%s: searching %d %ss in %s (up to %d page(s) of %d); %d of "
            "search.daily_quota=%d calls left today",
            self.desc,
            len(self.questions),
            self.unit,
            ",".join(cfg.categories),
            cfg.pages,
            cfg.display,
            max(0, cfg.daily_quota - client.budget.used()),
            cfg.daily_quota,
        )
        stop = threading.Event()

        def one(question: str) -> dict[str, Any] | None:
            if stop.is_set():
                return None
            try:
                row = search_question(client, question, stop, self.limit, dedupe=self.dedupe)
            except BaseException:
                stop.set()  # one failure ends the run: do not spend calls on the rest
                raise
            if row is not None and self.rows is not None:
                self.rows.put(self._key(question), row)
            return row

        pool = ThreadPoolExecutor(max_workers=self.workers)
        ahead: deque[tuple[str, Future | dict[str, Any]]] = deque()
        todo = iter(self.questions)
        try:
            with tqdm(total=len(self.questions), desc=self.desc, unit=self.unit) as bar:
                while True:
                    while len(ahead) < self.window and not stop.is_set():
                        question = next(todo, None)
                        if question is None:
                            break
                        stored = self._stored(question)
                        self.from_rows += stored is not None
                        ahead.append((question, stored or pool.submit(one, question)))
                    if not ahead:
                        return
                    _, item = ahead.popleft()
                    row = item.result() if isinstance(item, Future) else item
                    if isinstance(item, Future):
                        bar.set_postfix(
                            calls=client.stats.calls,
                            cached=client.stats.cache_hits,
                            retries=client.stats.retries,
                            refresh=False,
                        )
                    bar.update()
                    if row is None:  # stopped by another question's failure: find it
                        self._raise_failure(ahead)
                        return
                    self.done += 1
                    yield row
        except QuotaExceeded as exc:
            self.stopped = str(exc)
        finally:
            stop.set()  # also on Ctrl-C: workers finish their request in flight, start no other
            pool.shutdown(wait=True, cancel_futures=True)

    def _raise_failure(self, ahead: deque[tuple[str, Future | dict[str, Any]]]) -> None:
        """Wait out the questions in flight; raise the error that stopped them, or note the
        quota that ran out (then the iteration ends, with ``stopped`` set)."""
        for _, item in ahead:
            if not isinstance(item, Future) or item.cancelled():
                continue
            exc = item.exception()
            if isinstance(exc, QuotaExceeded):
                self.stopped = self.stopped or str(exc)
            elif exc is not None:
                raise exc


def search_all(
    client: NaverClient,
    questions: list[str],
    workers: int | None = None,
    limit: int | None = None,
    desc: str = "search",
    unit: str = "question",
    dedupe: bool = True,
) -> tuple[list[dict[str, Any]], str | None]:
    """Every row of a :class:`SearchRun` over ``questions``, and its ``stopped`` message (the
    rows then cover the questions finished before the quota ran out, in input order)."""
    run = SearchRun(client, questions, workers, limit, desc, unit, dedupe)
    rows = list(run)
    return rows, run.stopped


def read_questions(path: Path | str) -> list[str]:
    """The ``question`` of each row of a questions file; a bad row names its line."""
    questions = []
    for n, row in enumerate(iter_jsonl(path), 1):
        q = row.get("question") if isinstance(row, dict) else None
        if not isinstance(q, str) or not q.strip():
            raise InputError(f"{path}: row {n} has no non-empty `question` string")
        questions.append(q.strip())
    return questions


class DocumentTally:
    """metrics/search.json, counted row by row: questions, those without results,
    documents (per category) and personal data masked per kind."""

    def __init__(self) -> None:
        self.questions = 0
        self.no_results = 0
        self.documents = 0
        self.per_category: Counter[str] = Counter()
        self.masked: Counter[str] = Counter()

    def add(self, row: dict[str, Any]) -> None:
        """Count one ``{question, documents}`` row."""
        self.questions += 1
        self.no_results += not row["documents"]
        self.documents += len(row["documents"])
        for doc in row["documents"]:
            self.per_category[doc["category"]] += 1
            self.masked.update(doc.get("pii_masked") or {})

    def metrics(self, client: NaverClient, from_rows: int = 0) -> dict[str, Any]:
        """The counts with the client's calls, cache hits, retries and today's budget
        (``from_rows``: questions read back whole from the derived rows)."""
        return {
            "questions": self.questions,
            "no_results": self.no_results,
            "documents": self.documents,
            "documents_per_category": dict(self.per_category),
            "pii_masked": dict(self.masked),
            **client.stats.as_dict("calls", "cache_hits", "retries"),
            "rows_reused": from_rows,
            "calls_today": client.budget.used(),
        }


def search_metrics(
    rows: Iterable[dict[str, Any]], client: NaverClient, from_rows: int = 0
) -> dict[str, Any]:
    """metrics/search.json of ``rows`` (see :class:`DocumentTally`)."""
    tally = DocumentTally()
    for row in rows:
        tally.add(row)
    return tally.metrics(client, from_rows)
