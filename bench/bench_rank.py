"""Benchmark: our rank_rows vs the tutorial's per-question e5 ranking, side by side.

Run: ``python bench/run.py rank`` (about 5 minutes on 2 CPU cores).

The encoder has intfloat/multilingual-e5-small's real architecture (BertModel: 12 layers,
384 hidden, 12 heads, intermediate 1536, 512 positions, vocabulary 250037) with random
weights built from that config, because the real weights cannot be downloaded here; speed
and memory depend on the architecture, not on the weights' values. Its tokenizer has
XLM-R's 250,002 pieces: the tiny e5's trained Unigram pieces plus filler pieces that never
win a segmentation (checked on the workload), so each text gets the trained tokenizer's ids
while loading costs what a real-size vocabulary costs.

Workload: 500 questions (25 seed words x 20 questions, the tutorial's per-seed count) x 20
Naver-style passages each (simulator documents, cleaned as the search stage cleans them).
Questions about one seed word retrieve overlapping results, so each seed word's questions
draw their 20 passages from a shared pool of ``pool_per_seed`` documents; ``unique_passages``
says how much there is to encode, and the ``*_no_overlap_est`` figures extrapolate our
measured encode rate to 10,000 distinct passages (the worst case for us).

* ours: the rank stage's way (:func:`seedtune.retrieval.rank.rank_rows`, empty embedding store):
  load once, every unique text once, prefixed,
  in token-length-sorted batches.
* rerun: ours again, as after ``dvc exp run -S rank.top_k=...``: every embedding is in
  the store (data/cache/rank), so it loads the model, reads the store and scores.
* tutorial: per question, load the model, encode the question and its passages (no
  prefixes), cosine, absolute 0.9 cut. Measured on ``tutorial_questions`` questions and
  extrapolated per question to all 500 (figures named ``*_est``).

Each side runs in its own subprocess so that its peak RSS is its own: ``VmHWM`` on Linux,
not ``ru_maxrss``, which Linux carries over from the parent (the one that built the
encoder) through fork and exec.

What bounds the speed-up on a CPU: encoding is compute-bound (about 3k tokens/s on 2
cores for this architecture, whatever the batching), so ours wins by not repeating work:
one model load instead of one per question (a reload is mostly the tokenizer's 250k pieces
being parsed: ``ours_load_s`` is one), and one encode per unique passage instead of one per
(question, passage). With no repeated passages only the reloads are saved
(``speedup_no_overlap_est``). The tutorial is still favoured: it reloads offline from a
warm local copy, where from the Hub each reload also checks its files online. On a GPU
encoding is fast and the reloads dominate.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SEEDS = 25
PER_SEED = 20
PASSAGES = 20


#: Pieces in XLM-R's sentencepiece vocabulary, which multilingual-e5 uses unchanged.
XLMR_PIECES = 250_002
#: Score of the filler pieces: far below any trained piece's, so they never win a segmentation.
FILLER_SCORE = -99.0


def real_size_tokenizer(tokenizer: Any, pieces: int = XLMR_PIECES, seed: int = 0) -> Any:
    """``tokenizer`` (a trained Unigram) grown to ``pieces`` entries, segmenting as before.

    Loading a tokenizer costs in proportion to its vocabulary (transformers parses and
    rebuilds it in Python: about 2-3 s for 250k pieces here, 10 ms for the tiny one), and
    the tutorial pays that on every reload. The filler pieces are random 2-4 syllable Hangul
    strings scored ``FILLER_SCORE``: a path through trained pieces always scores higher, so
    token ids stay those of the trained tokenizer (:func:`run` checks this on the workload).
    """
    from transformers import XLMRobertaTokenizer

    vocab = [
        (str(p), float(s))
        for p, s in json.loads(tokenizer.backend_tokenizer.to_str())["model"]["vocab"]
    ]
    have = {p for p, _ in vocab}
    rng = random.Random(seed)
    while len(vocab) < pieces:
        piece = "".join(chr(0xAC00 + rng.randrange(11172)) for _ in range(rng.randint(2, 4)))
        if piece not in have:
            have.add(piece)
            vocab.append((piece, FILLER_SCORE))
    return XLMRobertaTokenizer(vocab=vocab, model_max_length=512)


def build_encoder(out: Path) -> tuple[Path, Any]:
    """A sentence-transformers e5-small look-alike (random weights) saved at ``out``.

    Returns its path and the trained tiny tokenizer its real-size tokenizer was grown from.
    """
    import torch
    from seedtune_sandbox.tiny import build_tiny_models
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    tiny = build_tiny_models(Path(__file__).resolve().parents[1] / ".cache" / "tiny-models")
    trained = AutoTokenizer.from_pretrained(str(tiny.e5))
    tokenizer = real_size_tokenizer(trained)
    config = BertConfig(
        # multilingual-e5-small's embedding table (250037 rows; the tokenizer's ids all fall
        # inside it) keeps the real model's parameter count and memory.
        vocab_size=max(250037, len(tokenizer)),
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
        type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    hf = out.parent / "e5-small-hf"
    BertModel(config).save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    model = SentenceTransformer(
        modules=[
            Transformer(str(hf), max_seq_length=512),
            Pooling(config.hidden_size, "mean"),
            Normalize(),
        ],
        device="cpu",
    )
    model.save(str(out), create_model_card=False)
    return out, trained


def same_segmentation(model_dir: Path, trained: Any, texts: list[str]) -> bool:
    """Whether the saved (real-size) tokenizer gives the trained one's ids for ``texts``."""
    from transformers import AutoTokenizer

    grown = AutoTokenizer.from_pretrained(str(model_dir))
    return grown(texts)["input_ids"] == trained(texts)["input_ids"]


def workload(pool_per_seed: int, seed: int = 0) -> list[dict[str, Any]]:
    """``{question, documents}`` rows: SEEDS x PER_SEED questions x PASSAGES documents."""
    from seedtune_sandbox.sim import korean, naver_api

    from seedtune.retrieval.documents import to_documents

    rng = random.Random(seed)
    words = [
        w.strip()
        for w in (Path(__file__).resolve().parents[1] / "data" / "seed_words.txt")
        .read_text(encoding="utf-8")
        .splitlines()
        if w.strip()
    ][:SEEDS]
    rows = []
    for word in words:
        pool = []
        for category in ("blog", "news"):  # the seed word's own results, as Naver would give
            body = naver_api.search(category, word, display=100, empty_rate=0.0)
            pool += to_documents(category, body)
        pool = pool[:pool_per_seed]
        for _ in range(PER_SEED):
            question = korean.question(rng, [word], word)
            rows.append({"question": question, "documents": rng.sample(pool, PASSAGES)})
    return rows


# --------------------------------------------------------------------------- workers


def _ours(model_dir: str, rows: list[dict[str, Any]], store_dir: Path) -> float:
    """Our stage's way, embedding store included; returns seconds spent loading the model."""
    from seedtune.retrieval.embeddings import EmbeddingStore, encoder_fingerprint
    from seedtune.retrieval.rank import load_encoder, rank_rows

    started = time.perf_counter()
    model = load_encoder(model_dir, "cpu")
    loading = time.perf_counter() - started
    store = EmbeddingStore(store_dir, encoder_fingerprint(model))
    rank_rows(model, rows, top_k=5, max_gap=0.1, batch_size=64, store=store)
    return loading


def _tutorial(model_dir: str, rows: list[dict[str, Any]]) -> float:
    """The tutorial's way; returns seconds spent loading the model (once per question)."""
    from sentence_transformers import SentenceTransformer, util

    from seedtune.retrieval.rank import passage_text

    loading = 0.0
    for row in rows:
        started = time.perf_counter()
        model = SentenceTransformer(model_dir, device="cpu")  # reloaded for every question
        loading += time.perf_counter() - started
        q = model.encode(row["question"], convert_to_tensor=True, show_progress_bar=False)
        docs = [passage_text(d) for d in row["documents"]]
        p = model.encode(docs, convert_to_tensor=True, show_progress_bar=False)
        scores = util.cos_sim(q, p)[0]
        [d for d, s in zip(docs, scores.tolist(), strict=True) if s > 0.9]
    return loading


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB."""
    import resource

    try:  # the high-water mark of this process's own address space, reset by exec
        status = Path("/proc/self/status").read_text(encoding="ascii")
        return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE).group(1)) / 2**10
    except (OSError, AttributeError):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes vs KiB


def worker(approach: str, model_dir: str, rows_path: str, n_questions: int) -> dict[str, Any]:
    """Time one approach on the first ``n_questions`` rows; report seconds and peak RSS."""
    import sentence_transformers  # noqa: F401  (imported before timing: same cost both sides)

    rows = json.loads(Path(rows_path).read_text(encoding="utf-8"))[:n_questions]
    started = time.perf_counter()
    store_dir = Path(rows_path).parent / "store"  # "rerun" finds what "ours" stored
    loading = (
        _tutorial(model_dir, rows) if approach == "tutorial" else _ours(model_dir, rows, store_dir)
    )
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "load_s": loading,
        "peak_rss_mb": peak_rss_mb(),
        "questions": len(rows),
    }


def _measure(approach: str, model_dir: Path, rows_path: Path, n: int) -> dict[str, Any]:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    proc = subprocess.run(
        [sys.executable, __file__, approach, str(model_dir), str(rows_path), str(n)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench worker {approach} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(pool_per_seed: int = 100, tutorial_questions: int = 20) -> dict[str, Any]:
    """Rank 500 questions x 20 passages both ways; speed-up, passages/s, peak memory."""
    from seedtune.retrieval.rank import PASSAGE_PREFIX, QUERY_PREFIX, passage_text

    rows = workload(pool_per_seed)
    total = len(rows)
    slots = sum(len(r["documents"]) for r in rows)
    unique = len({passage_text(d) for r in rows for d in r["documents"]})
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, trained = build_encoder(Path(tmp) / "e5-small")
        texts = [QUERY_PREFIX + r["question"] for r in rows] + [
            PASSAGE_PREFIX + passage_text(d) for r in rows for d in r["documents"]
        ]
        if not same_segmentation(model_dir, trained, texts):
            raise RuntimeError("the real-size tokenizer segments the workload differently")
        rows_path = Path(tmp) / "rows.json"
        rows_path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        ours = _measure("ours", model_dir, rows_path, total)
        rerun = _measure("rerun", model_dir, rows_path, total)  # e.g. a new rank.top_k
        tut = _measure("tutorial", model_dir, rows_path, tutorial_questions)
    tut_est = tut["seconds"] / tut["questions"] * total
    # texts encoded per second once loaded; the no-overlap case adds the one load back
    ours_rate = (unique + total) / (ours["seconds"] - ours["load_s"])
    no_overlap = ours["load_s"] + (slots + total) / ours_rate
    return {
        "questions": total,
        "passages_per_question": PASSAGES,
        "unique_passages": unique,
        "tutorial_questions_measured": tut["questions"],
        "ours_s": ours["seconds"],
        "ours_load_s": ours["load_s"],
        "tutorial_s_est": tut_est,
        "speedup_est": tut_est / ours["seconds"],
        "ours_rerun_s": rerun["seconds"],
        "tutorial_reload_s_per_q": tut["load_s"] / tut["questions"],
        "tutorial_s_per_q": tut["seconds"] / tut["questions"],
        "ours_passages_per_s": slots / ours["seconds"],
        "tutorial_passages_per_s": tut["questions"] * PASSAGES / tut["seconds"],
        "ours_encoded_texts_per_s": ours_rate,
        "ours_s_no_overlap_est": no_overlap,
        "speedup_no_overlap_est": tut_est / no_overlap,
        "ours_peak_rss_mb": ours["peak_rss_mb"],
        "tutorial_peak_rss_mb": tut["peak_rss_mb"],
    }


if __name__ == "__main__":
    if len(sys.argv) == 5:
        print(json.dumps(worker(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))))
    else:
        print(json.dumps(run(), indent=2))
