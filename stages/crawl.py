"""crawl stage: the pages behind each question's top search results -> data/pages.jsonl.

Run: ``dvc repro crawl``. Rows are ``{link, status, final_url, text, chars, extractor,
charset, replaced_chars, pii_masked}``; ``text`` (the page's main text, personal data masked)
and what describes it only where ``status`` is ``ok``. Every fetch is kept in data/cache/crawl
as it arrives, so a rerun (or a run after a kill) fetches only what it never got;
data/rejects/crawl.jsonl lists the links without a page and why (their documents keep their
snippets). Rows derived from pages are kept too (data/cache/crawl/rows-*), so a rerun
extracts only pages it has not seen under today's settings.
"""

import _guard  # noqa: F401  (one line, not a traceback, outside the venv)

from seedtune.core.config import load_params
from seedtune.core.paths import CACHE_DIR, DOCUMENTS, PAGES, rejects_file
from seedtune.core.stage import run_stage, write_metrics
from seedtune.retrieval.crawl import check_reachable, crawl_questions, write_pages
from seedtune.retrieval.documents import iter_documents


def main() -> None:
    c = load_params(sections=("crawl",)).crawl
    result = crawl_questions(iter_documents(DOCUMENTS), c, CACHE_DIR / "crawl")
    check_reachable(result)
    tally = write_pages(result, PAGES, rejects_file("crawl"))
    write_metrics("crawl", tally.metrics(result.fetcher, result.from_rows))


if __name__ == "__main__":
    run_stage("crawl", main)
