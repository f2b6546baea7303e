"""search stage: Naver Search API per question -> data/documents.jsonl.

Run: ``dvc repro search``. Needs NAVER_CLIENT_ID / NAVER_CLIENT_SECRET unless every answer
is already in data/cache/search. When a quota runs out (Naver's errorCode 010, or
``search.daily_quota`` calls made today) the stage exits non-zero with one line and writes
no documents.jsonl; every answer fetched stays in data/cache/search, so the next run
resumes without fetching any of it again. Each question's cleaned row is kept too
(data/cache/search/rows-*), so a rerun cleans only questions it has not searched before.
"""

import _guard  # noqa: F401  (one line, not a traceback, outside the venv)

from seedtune.core.cache import ResponseCache
from seedtune.core.config import load_params
from seedtune.core.credentials import naver_credentials
from seedtune.core.paths import CACHE_DIR, DOCUMENTS, QUESTIONS
from seedtune.core.records import JsonlWriter
from seedtune.core.stage import run_stage, write_metrics
from seedtune.retrieval.naver import NaverClient
from seedtune.retrieval.quota import QuotaExceeded
from seedtune.retrieval.search import DocumentTally, SearchRun, derived_rows, read_questions


def main() -> None:
    p = load_params(sections=("search",))
    questions = read_questions(QUESTIONS)
    cache = ResponseCache(CACHE_DIR / "search")
    client = NaverClient(p.search, cache, *naver_credentials())
    run = SearchRun(client, questions, rows=derived_rows(CACHE_DIR / "search", p.search))
    tally = DocumentTally()
    with JsonlWriter(DOCUMENTS) as out:
        for row in run:
            tally.add(row)
            out.write(row)
        if run.stopped:  # leaving the block with an error: no documents.jsonl appears
            raise QuotaExceeded(
                f"{run.stopped}; {run.done}/{len(run.questions)} questions searched, "
                f"{len(cache)} answers kept in {cache.root}; then rerun `dvc repro`: it "
                "resumes without refetching them"
            )
    write_metrics("search", tally.metrics(client, run.from_rows))


if __name__ == "__main__":
    run_stage("search", main)
