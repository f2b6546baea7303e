"""rank stage: multilingual-e5 ranks each question's passages -> data/ranked.jsonl.

Run: ``dvc repro rank``. Crawled pages (data/pages.jsonl) are cut into passages the encoder
reads whole; documents without a page bring their snippet. Rows are ``{question, documents:
[{..., kind, passage, score}]}``, best first; a question without documents keeps an empty
list. Questions are ranked a chunk at a time and pages read by link as needed, so memory is
bounded by a chunk, not by the run. Embeddings are kept in data/cache/rank, so a rerun (new
``rank.top_k``, more documents) encodes only new texts.
"""

import logging
import time
from pathlib import Path

import _guard  # noqa: F401  (one line, not a traceback, outside the venv)
from tqdm.auto import tqdm

from seedtune.core.config import load_params
from seedtune.core.paths import CACHE_DIR, DOCUMENTS, PAGES, RANKED
from seedtune.core.records import JsonlWriter
from seedtune.core.stage import run_stage, write_metrics
from seedtune.retrieval.documents import iter_documents
from seedtune.retrieval.embeddings import EmbeddingStore, encoder_fingerprint
from seedtune.retrieval.page_index import PageIndex
from seedtune.retrieval.rank import RankMetrics, load_encoder, rank_questions


def main() -> None:
    p = load_params(sections=("rank",))
    # bad input fails here, before the model loads
    total = sum(1 for _ in iter_documents(DOCUMENTS))
    model = load_encoder(p.rank.model, p.rank.device)
    pages = PageIndex(PAGES) if Path(PAGES).is_file() else None
    metrics, started = RankMetrics(), time.perf_counter()
    with (
        EmbeddingStore(CACHE_DIR / "rank", encoder_fingerprint(model)) as store,
        JsonlWriter(RANKED) as out,
        tqdm(total=total, desc="rank", unit="question") as bar,
    ):
        for row in rank_questions(model, iter_documents(DOCUMENTS), p.rank, store, pages, bar):
            out.write(row)
            metrics.add(row)
    logging.getLogger("rank").info(
        "ranked %d questions in %.1f s (%d texts encoded, %d reused)",
        total,
        time.perf_counter() - started,
        store.encoded,
        store.reused,
    )
    write_metrics("rank", metrics.result(store))


if __name__ == "__main__":
    run_stage("rank", main)
