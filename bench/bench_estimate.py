"""Benchmark: what ``seedtune estimate`` costs at the sizes users run, for the Naver and
crawl counts (:mod:`seedtune.retrieval.forecast`).

Run: ``python bench/run.py estimate`` (seconds). A search cache holding every answer for
:data:`QUESTIONS` questions x 3 categories (the search stage's keys, filled through
``NaverClient.search`` with a canned answer instead of the network), then: seconds to walk
the stage's paging through it (every answer cached: 0 calls), and seconds to select and
look up the crawl's links for documents of that many questions (nothing cached).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

QUESTIONS = 10_000
_ITEM = {
    "title": "전세 계약 <b>주의</b>할 점",
    "link": "https://blog.naver.com/land1/22",
    "description": "전세 계약 전에는 등기부등본으로 근저당 설정액을 확인해야 합니다. " * 2,
    "postdate": "20240101",
}


def run() -> dict[str, Any]:
    """Seconds for the search-call count (all cached) and the crawl-page count."""
    import seedtune.retrieval.forecast as forecast
    from seedtune.core.cache import ResponseCache
    from seedtune.core.config import CrawlConfig, SearchConfig
    from seedtune.retrieval.naver import NaverClient
    from seedtune.retrieval.quota import DailyBudget

    cfg = SearchConfig()
    questions = [f"전세 계약 질문 {i}" for i in range(QUESTIONS)]
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        root = Path(tmp)
        budget = DailyBudget(10**9, "bench", path=root / "quota.sqlite3")
        with ResponseCache(root / "search") as cache:
            filler = NaverClient(cfg, cache, "id", "secret", budget)
            filler._fetch = lambda category, params: {  # type: ignore[method-assign]
                "total": 300,
                "display": cfg.display,
                "items": [_ITEM] * cfg.display,
            }
            for q in questions:
                for category in cfg.categories:
                    filler.search(q, category)
        started = time.perf_counter()
        client = NaverClient(cfg, ResponseCache(root / "search"), None, None, budget)
        counted = forecast.search_calls(client, questions)
        search_s = time.perf_counter() - started
        assert (counted["cached"], counted["calls"]) == (QUESTIONS * len(cfg.categories), 0)
        rows = [
            {
                "question": q,
                "documents": [
                    {"category": c, "link": f"https://{c}.naver.com/{i}/{k}"}
                    for c in cfg.categories
                    for k in range(cfg.display)
                ],
            }
            for i, q in enumerate(questions)
        ]
        started = time.perf_counter()
        links, _ = forecast.crawl_pages(rows, CrawlConfig(), ResponseCache(root / "crawl"))
        crawl_s = time.perf_counter() - started
        budget.close()
    return {
        "questions": QUESTIONS,
        "search_count_s": round(search_s, 2),
        "crawl_count_s": round(crawl_s, 2),
        "crawl_links": links,
    }


if __name__ == "__main__":
    print(run())
