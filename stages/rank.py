"""rank stage: multilingual-e5 ranks each question's passages -> data/ranked.jsonl.

Run: ``dvc repro rank``. Crawled pages (data/pages.jsonl) are cut into passages the encoder
reads whole; documents without a page bring their snippet. Rows are ``{question, documents:
[{..., kind, passage, score}]}``, best first; a question without documents keeps an empty
list. Embeddings are kept in data/cache/rank, so a rerun (new ``rank.top_k``, more
documents) encodes only new texts.
"""

import logging
import time
from pathlib import Path

from seedtune.core.config import load_params
from seedtune.core.records import read_jsonl, write_jsonl
from seedtune.core.stage import CACHE_DIR, run_stage, write_metrics
from seedtune.retrieval.documents import check_rows
from seedtune.retrieval.embeddings import EmbeddingStore, encoder_fingerprint
from seedtune.retrieval.passages import page_passages
from seedtune.retrieval.rank import PASSAGE_PREFIX, load_encoder, rank_metrics, rank_rows

DOCUMENTS = "data/documents.jsonl"
PAGES = "data/pages.jsonl"
RANKED = "data/ranked.jsonl"


def main() -> None:
    p = load_params(sections=("rank",))
    rows = read_jsonl(DOCUMENTS)
    check_rows(rows, DOCUMENTS)
    model = load_encoder(p.rank.model, p.rank.device)
    store = EmbeddingStore(CACHE_DIR / "rank", encoder_fingerprint(model))
    started = time.perf_counter()
    pages = page_passages(read_jsonl(PAGES) if Path(PAGES).is_file() else [], model,
                          p.rank.passage_tokens, p.rank.passage_overlap, PASSAGE_PREFIX)
    ranked = rank_rows(model, rows, p.rank.top_k, p.rank.max_gap, p.rank.batch_size, store,
                       pages, p.rank.prefer_pages)
    logging.getLogger("rank").info("ranked %d questions in %.1f s (%d texts encoded, %d reused)",
                                   len(rows), time.perf_counter() - started, store.encoded,
                                   store.reused)
    write_jsonl(RANKED, ranked)
    write_metrics("rank", rank_metrics(ranked, store))


if __name__ == "__main__":
    run_stage("rank", main)
