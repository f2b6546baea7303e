"""The search and crawl half of ``seedtune estimate``: Naver calls and days of quota, pages
to crawl per host and the least time they take (the counting is in
:mod:`seedtune.retrieval.forecast`), as JSON-ready dicts and as terminal lines."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

from seedtune.core.cache import ResponseCache
from seedtune.core.config import Params
from seedtune.core.paths import CACHE_DIR, DOCUMENTS, QUESTIONS
from seedtune.core.records import read_jsonl
from seedtune.retrieval import forecast
from seedtune.retrieval.naver import NaverClient
from seedtune.retrieval.quota import DailyBudget


def naver_summary(
    p: Params,
    root: Path,
    budget: DailyBudget,
    projected_questions: int,
    titles: dict[str, Any] | None,
) -> tuple[dict[str, Any], list[str] | None]:
    """The Naver calls of the search stage and of the titles (their row of the LLM table,
    if a source), and the days of ``search.daily_quota`` they take after what the ledger
    says was used today (``projected_questions`` of them while data/questions.jsonl does
    not exist); with the unique questions read, None when projected."""
    from seedtune.retrieval.search import read_questions

    cfg = p.search
    path = root / QUESTIONS
    projected = not path.is_file()
    questions = None
    if projected:
        n = projected_questions
        search = forecast.projected_search_calls(n, len(cfg.categories), cfg.pages)
    else:
        questions = list(dict.fromkeys(read_questions(path)))
        n = len(questions)
        client = NaverClient(cfg, ResponseCache(root / CACHE_DIR / "search"), None, None, budget)
        search = forecast.search_calls(client, questions)
    titles_calls = titles["naver_calls"] if titles else 0
    titles_cached = titles["naver_cached"] if titles else 0
    calls, used = search["calls"] + titles_calls, budget.used()
    return {
        "questions": n,
        "categories": list(cfg.categories),
        "pages": cfg.pages,
        "search_requests": search["requests"],
        "search_cached": search["cached"],
        "search_calls": search["calls"],
        "titles_calls": titles_calls,
        "cached": search["cached"] + titles_cached,
        "calls": calls,
        "at_most": search["at_most"] or bool(titles and titles["projected"]),
        "used_today": used,
        "daily_quota": cfg.daily_quota,
        "days": forecast.quota_days(calls, cfg.daily_quota, used),
        "projected": projected,
    }, questions


def crawl_summary(
    p: Params, root: Path, questions: list[str] | None, projected_questions: int
) -> dict[str, Any]:
    """The pages the crawl stage would fetch for data/documents.jsonl (cached outcomes
    free), per host, and the least time the politeness settings allow; the questions that
    have no documents row yet (all of them before search ran: ``questions``, or
    ``projected_questions`` many) are projected and counted in ``projected_questions``."""
    from seedtune.retrieval.documents import check_rows

    c, path = p.crawl, root / DOCUMENTS
    links, hosts, todo = 0, Counter[str](), projected_questions
    if path.is_file():
        rows = read_jsonl(path)
        check_rows(rows, DOCUMENTS)
        links, hosts = forecast.crawl_pages(rows, c, ResponseCache(root / CACHE_DIR / "crawl"))
        searched = {r["question"] for r in rows}
        todo = sum(1 for q in questions if q not in searched) if questions is not None else 0
    elif questions is not None:
        todo = len(questions)
    if todo:  # new questions (added seed words): their links are not known yet
        more, guessed = forecast.projected_crawl_pages(
            todo, c, list(p.search.categories), p.search.display * p.search.pages
        )
        links, hosts = links + more, hosts + guessed
    pages = sum(hosts.values())
    return {
        "links": links,
        "pages": pages,
        "cached": links - pages,
        **forecast.crawl_time(hosts, c),
        "per_question": c.per_question,
        "host_rps": c.host_rps,
        "per_host": c.per_host,
        "concurrency": c.concurrency,
        "page_latency_s": forecast.PAGE_LATENCY_S,
        "lower_bound": True,
        "projected": bool(todo),
        "projected_questions": todo,
    }


def _duration(seconds: float) -> str:
    """``40 s``, ``12 min``, ``2.7 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 2 * 3600 else f"{seconds / 3600:.1f} h"


def format_naver(n: dict[str, Any]) -> list[str]:
    """The Naver lines of the table: calls per stage, then the days of quota."""
    mark = "*" if n["projected"] else ""
    pages = f"{n['pages']} page{'s' if n['pages'] > 1 else ''}"
    lines = [
        f"Naver Search API (search.daily_quota={n['daily_quota']:,}/day, "
        f"{n['used_today']:,} used today)",
        f"  search{mark:<2} {n['questions']:,} questions x {len(n['categories'])} "
        f"categories x {pages}: {n['search_requests']:,} requests, "
        f"{n['search_cached']:,} cached, {n['search_calls']:,} calls",
    ]
    if n["titles_calls"] or n["cached"] > n["search_cached"]:
        lines.append(
            f"  titles   {n['titles_calls']:,} calls "
            f"({n['cached'] - n['search_cached']:,} cached; queries.titles)"
        )
    calls = f"{'at most ' if n['at_most'] else ''}{n['calls']:,} Naver calls"
    if not n["calls"]:
        lines.append("  => 0 Naver calls to make: every answer is cached")
    else:
        day = "day" if n["days"] == 1 else "days"
        lines.append(
            f"  => {calls}: {n['days']} {day} at {n['daily_quota']:,}/day"
            + (f" ({n['used_today']:,} already used today)" if n["used_today"] else "")
        )
    if n["projected"]:
        lines.append(f"  * projected from params ({QUESTIONS} does not exist yet)")
    return lines


def format_crawl(c: dict[str, Any]) -> list[str]:
    """The crawl lines of the table: pages per host and the least time they take."""
    mark = "*" if c["projected"] else ""
    lines = [
        f"Crawl{mark} (crawl.per_question={c['per_question']}; crawl.host_rps="
        f"{c['host_rps']:g}, per_host={c['per_host']}, concurrency={c['concurrency']}; "
        f"{c['page_latency_s']:g} s a page)"
    ]
    if not c["per_question"]:
        return [*lines, "  crawl.per_question=0: snippets only, no page is fetched"]
    lines.append(f"  {c['links']:,} links, {c['cached']:,} cached: {c['pages']:,} pages to fetch")
    if c["pages"]:
        lines.append(f"  {'host':<32} {'pages':>8} {'at least':>9}")
        for h in c["hosts"]:
            name = h["host"]
            if name == "other":
                name = f"({h['hosts']:,} other hosts)"
            elif name.endswith(":*"):
                name = f"{name[:-2]} links (many hosts)"
            took = "-" if h.get("seconds") is None else _duration(h["seconds"])
            lines.append(f"  {name[:32]:<32} {h['pages']:>8,} {took:>9}")
        lines += _note(
            f"=> at least {_duration(c['seconds'])} ({c['bound']}), a lower "
            "bound: a robots.txt Crawl-delay over 1/host_rps, redirects, frame "
            "pages and retries add to it"
        )
    if c["projected"]:
        hosts = ", ".join(f"{k} -> {v}" for k, v in forecast.CATEGORY_HOSTS.items() if v)
        lines += _note(
            f"* projected for {c['projected_questions']:,} questions not in "
            f"{DOCUMENTS} yet: the top {c['per_question']} links of each, "
            "categories interleaved, none seen before; "
            f"{hosts}; news and web links on many hosts"
        )
    return lines


def _note(text: str) -> list[str]:
    """A long remark, wrapped for an 100-column terminal."""
    return textwrap.wrap(text, 98, initial_indent="  ", subsequent_indent="    ")
