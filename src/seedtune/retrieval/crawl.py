"""The crawl stage's logic: which pages to fetch, and what is kept of them.

For each question, the top ``crawl.per_question`` documents in Naver's own order (its
``sort=sim`` relevance), the categories interleaved (blog 1, news 1, kin 1, blog 2, ...), so
no one category takes every slot. Their pages are fetched by
:class:`~seedtune.retrieval.fetch.PageFetcher` and reduced to masked main text
(:mod:`seedtune.retrieval.pages`; ``extractor`` says which path gave the text: trafilatura,
or when it found under ``crawl.min_chars`` characters on a page with far more, one of its
fallbacks). A page whose text is still shorter than ``crawl.min_chars`` counts as ``empty``.
A page decoded with replacement characters for bytes invalid in its charset says how many
(``replaced_chars``). A document without a page keeps its snippet for ranking.

The stage streams: links are chosen row by row, each page is reduced to its row as it
arrives (the worker thread of :meth:`PageFetcher.fetch_each`), and pages.jsonl is written
link by link, so memory holds the links and the pages in flight, not the crawl. Each
derived row is kept too (:func:`derived_rows`: ``data/cache/crawl/rows-<fingerprint>``, one
per set of settings and extraction code), so a rerun after a new seed word reads the rows
of the pages it already has instead of extracting every page again: its time follows the
new pages, not the size of the cache.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import chain, zip_longest
from pathlib import Path
from typing import Any

from seedtune.core import pii, text
from seedtune.core.cache import ResponseCache, cache_key, code_fingerprint, derived_cache
from seedtune.core.config import CrawlConfig
from seedtune.core.errors import ServiceError
from seedtune.core.records import JsonlWriter
from seedtune.retrieval import pages as page_module
from seedtune.retrieval.fetch import CODE_BOUND, NOT_CACHED, PageFetcher
from seedtune.retrieval.pages import EXTRACTORS, page_text

log = logging.getLogger(__name__)
#: Libraries whose version changes what is extracted from a page.
EXTRACTION_PACKAGES = ("trafilatura", "lxml", "htmldate", "justext")


def select_links(rows: Iterable[dict[str, Any]], per_question: int) -> list[str]:
    """The links to fetch: each question's top ``per_question`` documents, categories
    interleaved in Naver's order; each link once, in first-seen order (``rows`` is read
    once, so it may be a stream)."""
    links: list[str] = []
    for row in rows:
        by_category: dict[str, list[dict[str, Any]]] = {}
        for doc in row["documents"]:
            by_category.setdefault(str(doc.get("category")), []).append(doc)
        interleaved = [
            d
            for d in chain.from_iterable(zip_longest(*by_category.values()))
            if d is not None and d.get("link")
        ]
        links += [d["link"] for d in interleaved[:per_question]]
    return list(dict.fromkeys(links))


def page_record(link: str, outcome: dict[str, Any], min_chars: int) -> dict[str, Any]:
    """The ``data/pages.jsonl`` row of one link: ``{link, status, final_url, text, chars,
    extractor, charset, replaced_chars, pii_masked}``; ``text`` and what describes it only
    when ``status`` is ``ok``; ``replaced_chars`` (bytes decoding replaced) only when some
    were, ``pii_masked`` only when something was."""
    row: dict[str, Any] = {
        "link": link,
        "status": outcome["status"],
        "final_url": outcome.get("final_url"),
    }
    if outcome["status"] == "ok":
        page = page_text(outcome["html"], outcome.get("final_url") or link, min_chars)
        if len(page.text) < min_chars:
            row["status"] = "empty"
        else:
            row.update(
                text=page.text,
                chars=len(page.text),
                extractor=page.extractor,
                charset=outcome.get("charset"),
            )
            # outcomes cached before the count was kept lack it: nothing known, none
            if outcome.get("replaced_chars"):
                row["replaced_chars"] = int(outcome["replaced_chars"])
            if page.pii_masked:
                row["pii_masked"] = page.pii_masked
    return row


def page_records(outcomes: dict[str, dict[str, Any]], min_chars: int) -> list[dict[str, Any]]:
    """:func:`page_record` of each ``{link: outcome}``, in order."""
    return [page_record(link, outcome, min_chars) for link, outcome in outcomes.items()]


def rows_fingerprint(c: CrawlConfig) -> str:
    """What a derived page row depends on besides the page: the params that change what is
    kept (``min_chars``, ``max_bytes``, ``respect_robots``), ``crawl.allow_networks`` when
    set, and the extraction code and library versions. 12 hex digits."""
    code = code_fingerprint([page_module, pii, text, sys.modules[__name__]], EXTRACTION_PACKAGES)
    key: dict[str, Any] = {
        "min_chars": c.min_chars,
        "max_bytes": c.max_bytes,
        "respect_robots": c.respect_robots,
        "code": code,
    }
    if c.allow_networks:  # a link refused as blocked_address is asked again once allowed
        key["allow_networks"] = sorted(c.allow_networks)
    return cache_key(key)[:12]


def derived_rows(root: Path, c: CrawlConfig) -> ResponseCache:
    """The page rows derived under today's settings and code (:func:`derived_cache`)."""
    return derived_cache(root, rows_fingerprint(c), "page rows")


def row_key(link: str) -> str:
    """The key of ``link``'s row in :func:`derived_rows`."""
    return cache_key({"row": link})


class CrawlResult:
    """The page rows of one crawl, in link order, read back one at a time.

    Rows come from the derived-rows cache; the few that are not cached (the host could not
    be reached: nothing was fetched; a ``fetch_error``, which the fetcher keeps only while
    its code is the same) are held in memory. ``from_rows`` counts the links whose row was
    already derived before this run.
    """

    def __init__(
        self, links: list[str], rows: ResponseCache, fetcher: PageFetcher, min_chars: int
    ) -> None:
        self.links, self.rows, self.fetcher, self.min_chars = links, rows, fetcher, min_chars
        self.transient: dict[str, dict[str, Any]] = {}
        self.from_rows = 0

    def run(self) -> CrawlResult:
        """Fetch (or read from the stores) and derive every link that has no row yet."""
        todo = [link for link in self.links if row_key(link) not in self.rows]
        self.from_rows = len(self.links) - len(todo)
        if self.from_rows:
            log.info("crawl: %d of %d page rows already derived", self.from_rows, len(self.links))
        self.fetcher.fetch_each(todo, self._derive)
        return self

    def _derive(self, link: str, outcome: dict[str, Any]) -> dict[str, Any]:
        row = page_record(link, outcome, self.min_chars)
        if outcome["status"] in NOT_CACHED or outcome["status"] in CODE_BOUND:
            self.transient[link] = row
        else:
            self.rows.put(row_key(link), row)
        return row

    def unreachable(self) -> bool:
        """Whether not one page host answered (every link unreachable, or behind a
        robots.txt that was). A link left for another run because its host asks for a
        Crawl-delay over the cap is the site's answer, no sign of this network."""
        return (
            bool(self.links)
            and len(self.transient) == len(self.links)
            and all(
                row["status"] in ("unreachable", "robots_unavailable")
                for row in self.transient.values()
            )
        )

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for link in self.links:
            row = self.transient.get(link) or self.rows.get(row_key(link))
            if row is None:  # damaged since (logged): derive it again, fetching if need be
                outcome = self.fetcher.stored(link) or self.fetcher.fetch_all([link])[link]
                row = self._derive(link, outcome)
            yield row


class PageTally:
    """metrics/crawl.json, counted row by row: pages per outcome, characters kept, pages
    per extraction path, replacement characters decoding put in (and on how many pages),
    and personal data masked per kind."""

    def __init__(self) -> None:
        self.links = 0
        self.status: Counter[str] = Counter()
        self.masked: Counter[str] = Counter()
        self.extractors: Counter[str] = Counter()
        self.chars = 0
        self.replaced = 0
        self.with_replaced = 0

    def add(self, row: dict[str, Any]) -> None:
        """Count one pages.jsonl row."""
        self.links += 1
        self.status[row["status"]] += 1
        self.masked.update(row.get("pii_masked") or {})
        if row["status"] == "ok":
            self.extractors[row.get("extractor", "trafilatura")] += 1
            self.chars += int(row["chars"])
            replaced = int(row.get("replaced_chars") or 0)
            self.replaced += replaced
            self.with_replaced += bool(replaced)

    def metrics(self, fetcher: PageFetcher, from_rows: int = 0) -> dict[str, Any]:
        """The counts, with the fetches made now (``requests``, ``retries``) and the pages
        answered from the caches (``from_cache``: stored pages and derived rows)."""
        ok = self.status["ok"]
        return {
            "links": self.links,
            "with_text": ok,
            "pages": dict(sorted(self.status.items())),
            "requests": fetcher.fetched,
            "from_cache": fetcher.cached + from_rows,
            "retries": fetcher.retries,
            "mean_chars": round(self.chars / ok, 1) if ok else 0.0,
            "extractors": {name: self.extractors[name] for name in EXTRACTORS},
            "replaced_chars": self.replaced,
            "pages_with_replaced_chars": self.with_replaced,
            "pii_masked": dict(sorted(self.masked.items())),
        }


def crawl_metrics(
    rows: Iterable[dict[str, Any]], fetcher: PageFetcher, from_rows: int = 0
) -> dict[str, Any]:
    """metrics/crawl.json of ``rows`` (see :class:`PageTally`)."""
    tally = PageTally()
    for row in rows:
        tally.add(row)
    return tally.metrics(fetcher, from_rows)


def crawl_questions(
    rows: Iterable[dict[str, Any]], c: CrawlConfig, root: Path, desc: str = "crawl"
) -> CrawlResult:
    """The crawl stage's work for ``rows`` (``{question, documents}``), which ``seedtune ask
    --rag`` does for its one question too: each question's links (:func:`select_links`),
    fetched by a :class:`PageFetcher` of ``c`` on the cache in ``root`` or read back from
    it, and derived into page rows (kept in ``root`` too, :func:`derived_rows`). Iterate
    the result for the rows; its ``fetcher`` has the counts."""
    links = select_links(rows, c.per_question)
    fetcher = PageFetcher(c, ResponseCache(root), desc=desc)
    return CrawlResult(links, derived_rows(root, c), fetcher, c.min_chars).run()


def check_reachable(result: CrawlResult) -> None:
    """Raise :class:`ServiceError` when not one page host answered: this machine's network,
    not the sites (and nothing was cached, so the next run asks again)."""
    if result.unreachable():
        raise ServiceError(
            f"no page could be reached ({result.links[0]} and "
            f"{len(result.links) - 1} more); check this machine's network or "
            "proxy"
        )


def write_pages(result: CrawlResult, pages: Path | str, rejects: Path | str) -> PageTally:
    """Stream ``result`` to data/pages.jsonl and each link without a page, with why, to
    ``rejects``; both appear only when complete. Returns their counts."""
    tally = PageTally()
    with JsonlWriter(pages) as out, JsonlWriter(rejects, never_empty=True) as missing:
        for row in result:
            tally.add(row)
            out.write(row)
            if row["status"] != "ok":
                missing.write({"link": row["link"], "reason": row["status"]})
    return tally
