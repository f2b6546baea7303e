"""search stage: Naver Search API per question -> data/documents.jsonl.

Run: ``dvc repro search``. Needs NAVER_CLIENT_ID / NAVER_CLIENT_SECRET unless every answer
is already in data/cache/search. When the quota runs out the stage stops with an error;
everything fetched is kept and the next run resumes without fetching it again.
"""

from seedtune.cache import ResponseCache
from seedtune.config import load_params
from seedtune.credentials import optional_secret
from seedtune.naver import NaverClient, QuotaExceeded, search_all
from seedtune.records import read_jsonl, write_jsonl
from seedtune.stage import CACHE_DIR, run_stage, write_metrics


def main() -> None:
    p = load_params(sections=("search",))
    questions = [r["question"] for r in read_jsonl("data/questions.jsonl")]
    client = NaverClient(p.search, ResponseCache(CACHE_DIR / "search"),
                         optional_secret("NAVER_CLIENT_ID"), optional_secret("NAVER_CLIENT_SECRET"))
    rows, stopped = search_all(client, questions)
    if stopped:
        raise QuotaExceeded(f"{stopped}: searched {len(rows)}/{len(questions)} questions; "
                            "results so far are cached, rerun `dvc repro` to resume")
    write_jsonl("data/documents.jsonl", rows)
    write_metrics("search", {
        "questions": len(rows),
        "no_results": sum(1 for r in rows if not r["documents"]),
        "documents": sum(len(r["documents"]) for r in rows),
        "calls": client.stats.calls, "cache_hits": client.stats.cache_hits,
        "retries": client.stats.retries,
    })


if __name__ == "__main__":
    run_stage("search", main)
