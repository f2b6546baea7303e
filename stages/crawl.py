"""crawl stage: the pages behind each question's top search results -> data/pages.jsonl.

Run: ``dvc repro crawl``. Rows are ``{link, status, final_url, text, chars, extractor,
charset, replaced_chars, pii_masked}``; ``text`` (the page's main text, personal data masked)
and what describes it only where ``status`` is ``ok``. Every fetch is kept in data/cache/crawl
as it arrives, so a rerun (or a run after a kill) fetches only what it never got;
data/rejects/crawl.jsonl lists the links without a page and why (their documents keep their
snippets).
"""

from seedtune.core.cache import ResponseCache
from seedtune.core.config import load_params
from seedtune.core.records import read_jsonl, write_jsonl
from seedtune.core.stage import CACHE_DIR, run_stage, write_metrics, write_rejects
from seedtune.retrieval.crawl import (
    check_reachable,
    crawl,
    crawl_metrics,
    crawl_rejects,
    fetch_settings,
)
from seedtune.retrieval.documents import check_rows
from seedtune.retrieval.fetch import PageFetcher

DOCUMENTS = "data/documents.jsonl"
PAGES = "data/pages.jsonl"


def main() -> None:
    c = load_params(sections=("crawl",)).crawl
    rows = read_jsonl(DOCUMENTS)
    check_rows(rows, DOCUMENTS)
    fetcher = PageFetcher(fetch_settings(c), ResponseCache(CACHE_DIR / "crawl"))
    pages = crawl(rows, c.per_question, c.min_chars, fetcher)
    check_reachable(pages)
    write_rejects("crawl", crawl_rejects(pages))
    write_jsonl(PAGES, pages)
    write_metrics("crawl", crawl_metrics(pages, fetcher))


if __name__ == "__main__":
    run_stage("crawl", main)
