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
"""

from __future__ import annotations

from collections import Counter
from itertools import chain, zip_longest
from typing import Any

from seedtune.core.config import CrawlConfig
from seedtune.core.errors import ServiceError
from seedtune.retrieval.fetch import NOT_CACHED, FetchSettings, PageFetcher
from seedtune.retrieval.pages import EXTRACTORS, page_text


def fetch_settings(c: CrawlConfig) -> FetchSettings:
    """The fetcher's settings from the ``crawl`` section (params and machine settings)."""
    return FetchSettings(user_agent=c.user_agent, concurrency=c.concurrency,
                         per_host=c.per_host, host_rps=c.host_rps, timeout_s=c.timeout_s,
                         max_retries=c.max_retries, max_bytes=c.max_bytes,
                         respect_robots=c.respect_robots)


def select_links(rows: list[dict[str, Any]], per_question: int) -> list[str]:
    """The links to fetch: each question's top ``per_question`` documents, categories
    interleaved in Naver's order; each link once, in first-seen order."""
    links: list[str] = []
    for row in rows:
        by_category: dict[str, list[dict[str, Any]]] = {}
        for doc in row["documents"]:
            by_category.setdefault(str(doc.get("category")), []).append(doc)
        interleaved = [d for d in chain.from_iterable(zip_longest(*by_category.values()))
                       if d is not None and d.get("link")]
        links += [d["link"] for d in interleaved[:per_question]]
    return list(dict.fromkeys(links))


def page_records(outcomes: dict[str, dict[str, Any]], min_chars: int
                 ) -> list[dict[str, Any]]:
    """One ``data/pages.jsonl`` row per link: ``{link, status, final_url, text, chars,
    extractor, charset, replaced_chars, pii_masked}``; ``text`` and what describes it only
    when ``status`` is ``ok``; ``replaced_chars`` (bytes decoding replaced) only when some
    were, ``pii_masked`` only when something was."""
    rows = []
    for link, outcome in outcomes.items():
        row: dict[str, Any] = {"link": link, "status": outcome["status"],
                               "final_url": outcome.get("final_url")}
        if outcome["status"] == "ok":
            page = page_text(outcome["html"], outcome.get("final_url") or link, min_chars)
            if len(page.text) < min_chars:
                row["status"] = "empty"
            else:
                row.update(text=page.text, chars=len(page.text), extractor=page.extractor,
                           charset=outcome.get("charset"))
                # outcomes cached before the count was kept lack it: nothing known, none
                if outcome.get("replaced_chars"):
                    row["replaced_chars"] = int(outcome["replaced_chars"])
                if page.pii_masked:
                    row["pii_masked"] = page.pii_masked
        rows.append(row)
    return rows


def crawl_metrics(rows: list[dict[str, Any]], fetcher: PageFetcher) -> dict[str, Any]:
    """metrics/crawl.json: pages per outcome, fetches made now vs answered from the cache,
    characters kept, pages per extraction path, replacement characters decoding put in
    (and on how many pages), and personal data masked per kind."""
    status = Counter(r["status"] for r in rows)
    masked: Counter[str] = Counter()
    for r in rows:
        masked.update(r.get("pii_masked") or {})
    ok = [r for r in rows if r["status"] == "ok"]
    extractors = Counter(r.get("extractor", "trafilatura") for r in ok)
    replaced = [int(r.get("replaced_chars") or 0) for r in ok]
    return {
        "links": len(rows),
        "with_text": len(ok),
        "pages": dict(sorted(status.items())),
        "requests": fetcher.fetched,
        "from_cache": fetcher.cached,
        "retries": fetcher.retries,
        "mean_chars": round(sum(r["chars"] for r in ok) / len(ok), 1) if ok else 0.0,
        "extractors": {name: extractors[name] for name in EXTRACTORS},
        "replaced_chars": sum(replaced),
        "pages_with_replaced_chars": sum(1 for n in replaced if n),
        "pii_masked": dict(sorted(masked.items())),
    }


def crawl(rows: list[dict[str, Any]], per_question: int, min_chars: int, fetcher: PageFetcher
          ) -> list[dict[str, Any]]:
    """Fetch (or read from the cache) the selected pages of ``rows``; their records."""
    links = select_links(rows, per_question)
    return page_records(fetcher.fetch_all(links), min_chars) if links else []


def check_reachable(pages: list[dict[str, Any]]) -> None:
    """Raise :class:`ServiceError` when not one page host answered: this machine's network,
    not the sites (and nothing was cached, so the next run asks again)."""
    if pages and all(p["status"] in NOT_CACHED for p in pages):
        raise ServiceError(f"no page could be reached ({pages[0]['link']} and "
                           f"{len(pages) - 1} more); check this machine's network or proxy")


def crawl_rejects(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """data/rejects/crawl.jsonl: each link without a page, and why."""
    return [{"link": p["link"], "reason": p["status"]} for p in pages if p["status"] != "ok"]
