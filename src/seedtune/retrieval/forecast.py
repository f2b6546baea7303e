"""What the search and crawl stages would spend, before they run: Naver calls and their days
of daily quota, pages to fetch per host and the least time the politeness settings allow.

Used by ``seedtune estimate``. Nothing here makes a call or fetches a page: answers already
in a stage's cache are looked up with the stage's own lookups (``NaverClient.cached``,
``PageFetcher.stored``), so what they count is what the stage would skip.

The crawl's time is a **lower bound**: per host, ``crawl.host_rps`` requests a second and
``crawl.per_host`` in flight, each taking at least :data:`PAGE_LATENCY_S`; over all hosts,
``crawl.concurrency`` in flight. A robots.txt ``Crawl-delay`` (known only once it is read),
redirects, Naver blog frame pages and retries only make it longer.
"""

from __future__ import annotations

import math
from collections import Counter
from itertools import islice
from typing import Any

from seedtune.core.cache import ResponseCache
from seedtune.core.config import CrawlConfig
from seedtune.retrieval.crawl import row_key, rows_fingerprint, select_links
from seedtune.retrieval.fetch import PageFetcher, page_host
from seedtune.retrieval.naver import NaverClient
from seedtune.retrieval.search import search_question

#: Typical seconds from a page request sent to its last byte (Naver blog and 지식iN pages
#: from Korea take 0.2-1 s); only the ``per_host`` and ``concurrency`` bounds use it.
PAGE_LATENCY_S = 0.5
#: Where a search category's links live, for projecting a crawl before search has run. Of
#: a question's top 3 links (blog, news, kin interleaved) about one is on blog.naver.com and
#: one on kin.naver.com (the tutorial's measurement); news links are the publishers' own
#: pages and web results any site's, spread over many hosts (None).
CATEGORY_HOSTS: dict[str, str | None] = {
    "blog": "blog.naver.com",
    "kin": "kin.naver.com",
    "cafearticle": "cafe.naver.com",
    "encyc": "terms.naver.com",
    "news": None,
    "webkr": None,
}
#: Hosts listed one by one; the rest are summed up.
TOP_HOSTS = 10


# --------------------------------------------------------------------------- Naver


def search_calls(client: NaverClient, questions: list[str]) -> dict[str, Any]:
    """``{requests, cached, calls, at_most}`` the search stage would make for ``questions``.

    Walks the stage's own paging (:func:`~seedtune.retrieval.search.search_question`) with
    a cache-only lookup: a cached page is free and decides, as in the stage, whether the
    next page is asked; a page not cached is a call and is taken as full, so with
    ``search.pages`` over 1 the later pages count as calls too (``at_most``: Naver may
    have fewer results)."""
    cfg = client.cfg
    counts = {"cached": 0, "calls": 0}
    at_most = False

    def lookup(query: str, category: str, start: int) -> dict[str, Any]:
        nonlocal at_most
        hit = client.cached(query, category, start)
        if hit is None:
            counts["calls"] += 1
            at_most = at_most or (start - 1) // cfg.display < cfg.pages - 1
            return {"items": [None] * cfg.display}  # full: the stage would ask the next page
        counts["cached"] += 1
        # only the item count and total decide paging; placeholders skip the cleaning
        return {"items": [None] * len(hit["items"]), "total": hit.get("total")}

    for question in dict.fromkeys(questions):
        search_question(client, question, fetch=lookup, dedupe=False)
    return {"requests": counts["cached"] + counts["calls"], **counts, "at_most": at_most}


def projected_search_calls(questions: int, categories: int, pages: int) -> dict[str, Any]:
    """Calls for ``questions`` not yet written: every category, every page, none cached."""
    n = questions * categories * pages
    return {"requests": n, "cached": 0, "calls": n, "at_most": pages > 1}


def quota_days(calls: int, daily_quota: int, used_today: int = 0) -> int:
    """Korean days on which ``calls`` are made at ``daily_quota`` a day, today's remainder
    (``daily_quota - used_today``) first; 0 when there is nothing to call."""
    if calls <= 0:
        return 0
    left = max(0, daily_quota - used_today)
    if calls <= left:
        return 1
    return (1 if left else 0) + math.ceil((calls - left) / daily_quota)


# --------------------------------------------------------------------------- crawl


def crawl_pages(
    rows: list[dict[str, Any]], c: CrawlConfig, cache: ResponseCache
) -> tuple[int, Counter[str]]:
    """``(links, pages per host)`` of the crawl of ``rows`` (documents.jsonl): the links
    the stage selects (:func:`~seedtune.retrieval.crawl.select_links`) and, by host, those
    whose outcome is not cached for today's settings (:meth:`PageFetcher.stored`); a link
    that is not http(s) costs no request and is not counted."""
    links = select_links(rows, c.per_question)
    fetcher = PageFetcher(c, cache)
    # a link whose row is derived needs nothing: checked in the index, no page is read
    derived = cache.root / f"rows-{rows_fingerprint(c)}"
    done = ResponseCache(derived) if derived.is_dir() else None
    hosts: Counter[str] = Counter()
    for link in links:
        host = page_host(link)
        if host is None or (done is not None and row_key(link) in done):
            continue
        if fetcher.stored(link) is None:
            hosts[host] += 1
    return len(links), hosts


def projected_crawl_pages(
    questions: int, c: CrawlConfig, categories: list[str], per_category: int
) -> tuple[int, Counter[str]]:
    """``(links, pages per host)`` for ``questions`` whose documents do not exist yet: each
    question's top ``per_question`` slots, categories interleaved, each category holding
    ``per_category`` results, every link new; a category of many hosts is keyed
    ``"<category>:*"`` (:data:`CATEGORY_HOSTS`)."""
    slots = Counter(
        categories[i % len(categories)]
        for i in range(min(c.per_question, len(categories) * per_category))
    )
    hosts: Counter[str] = Counter()
    for category, n in slots.items():
        hosts[CATEGORY_HOSTS.get(category) or f"{category}:*"] += n * questions
    return sum(hosts.values()), hosts


def crawl_time(
    hosts: Counter[str], c: CrawlConfig, latency_s: float = PAGE_LATENCY_S
) -> dict[str, Any]:
    """The least time the politeness settings allow for ``hosts`` (pages per host).

    Per host: ``pages / host_rps`` and ``pages * latency / per_host``; overall, the slowest
    host and ``total * latency / concurrency``. Returns ``{seconds, bound, hosts}`` with
    ``hosts`` the :data:`TOP_HOSTS` busiest ``{host, pages, seconds}`` (``seconds`` None for
    a group of many hosts, ``"news:*"``), then one ``{host: "other", hosts, pages}``."""

    def per_host(host: str, pages: int) -> tuple[float | None, str]:
        if host.endswith(":*"):
            return None, ""
        rate, flight = pages / c.host_rps, pages * latency_s / c.per_host
        return (rate, "crawl.host_rps") if rate >= flight else (flight, "crawl.per_host")

    total = sum(hosts.values())
    seconds, bound = total * latency_s / c.concurrency, "crawl.concurrency"
    listed = []
    for i, (host, pages) in enumerate(sorted(hosts.items(), key=lambda kv: (-kv[1], str(kv[0])))):
        s, why = per_host(host, pages)
        if s is not None and s > seconds:
            seconds, bound = s, f"{why} on {host}"
        if i < TOP_HOSTS:
            listed.append(
                {"host": host, "pages": pages, "seconds": None if s is None else round(s, 1)}
            )
    rest = list(islice(sorted(hosts.values(), reverse=True), TOP_HOSTS, None))
    if rest:
        listed.append({"host": "other", "hosts": len(rest), "pages": sum(rest)})
    return {"seconds": round(seconds, 1), "bound": bound if total else None, "hosts": listed}
