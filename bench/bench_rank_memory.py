"""Benchmark: the rank stage's peak memory is bounded by a chunk of questions, not the run.

Run: ``python bench/run.py rank_memory`` (about 8 minutes on 2 CPU cores), or
``python bench/bench_rank_memory.py [--code DIR] [--sizes 1000,10000] [--e5 60]``:
``--code`` runs another checkout's stage (e.g. main's, for the figures before a change).

The stage runs as DVC runs it (``stages/rank.py`` in a workspace, a subprocess of its own)
on synthetic data/documents.jsonl and data/pages.jsonl written directly (no search, no
crawl): questions in groups of :data:`GROUP` about one seed word share a pool of
:data:`POOL` result links, as real search results do, :data:`WITH_PAGE` of which have a
crawled page; each question has :data:`DOCS` of them. With ``rank.passage_tokens`` 32 a page
of 12 sentences gives about 20 passages, so a question brings 26-32 passages of its own (the
real pipeline's figure: 68,664 passages for 2,207 questions, 31 a question).

* ``peak_rss_mb_<n>``: the stage's peak resident memory (``VmHWM``, the high-water mark of
  its own address space; ``ru_maxrss`` would carry over the parent's through fork) with the
  tiny local e5, at ``n`` questions, and ``rss_ratio``: the largest size over the smallest
  (1.0 means memory does not grow with the run).
* ``s_per_question_<n>``: wall seconds of the stage per question (encoding on one thread:
  ``OMP_NUM_THREADS=1``, so runs on a shared 2-core machine compare).
* ``e5_small_*``: the same stage with intfloat/multilingual-e5-small's architecture and
  vocabulary (random weights: :func:`bench_rank.build_encoder`) at a small size with the
  default 256-token passages: the model's own memory, the stage's peak, and the store's
  index cost per stored vector (the only part that grows with the store).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GROUP, POOL, WITH_PAGE, DOCS = 20, 40, 30, 10

#: Runs the stage script and writes its VmHWM (KiB) and ru_maxrss at exit, whatever exit.
_WRAP = """
import atexit, re, resource, runpy, sys
from pathlib import Path
script, out = sys.argv[1], sys.argv[2]
def report():
    status = Path("/proc/self/status").read_text()
    hwm = int(re.search(r"^VmHWM:\\s+(\\d+) kB", status, re.M).group(1))
    Path(out).write_text(f"{hwm} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")
atexit.register(report)
sys.argv = [script]
sys.path.insert(0, str(Path(script).parent))  # as `python script` does (stages/_guard.py)
runpy.run_path(script, run_name="__main__")
"""


def write_workload(folder: Path, questions: int, sentences: int = 12, seed: int = 0) -> None:
    """data/documents.jsonl and data/pages.jsonl for ``questions`` questions, streamed."""
    from seedtune_sandbox.sim import korean

    rng = random.Random(seed)
    words = [
        w.strip()
        for w in (ROOT / "data" / "seed_words.txt").read_text(encoding="utf-8").splitlines()
        if w.strip()
    ]
    (folder / "data").mkdir(parents=True, exist_ok=True)
    with (
        (folder / "data/documents.jsonl").open("w", encoding="utf-8") as docs_out,
        (folder / "data/pages.jsonl").open("w", encoding="utf-8") as pages_out,
    ):
        for g in range(-(-questions // GROUP)):
            word = words[g % len(words)]
            pool = []
            for i in range(POOL):
                link = f"https://blog.example.kr/{g}/{i}"
                pool.append(
                    {
                        "category": "blog",
                        "title": f"{korean.phrase(rng, [word])} {g}-{i}",
                        "description": korean.sentence(rng, [word]),
                        "link": link,
                        "date": None,
                    }
                )
                page = (
                    {
                        "link": link,
                        "status": "ok",
                        "text": "\n".join(
                            f"{korean.sentence(rng, [word, rng.choice(words)])} ({g}-{i}-{j})"
                            for j in range(sentences)
                        ),
                    }
                    if i < WITH_PAGE
                    else {"link": link, "status": "http_404", "text": ""}
                )
                pages_out.write(json.dumps(page, ensure_ascii=False) + "\n")
            for q in range(min(GROUP, questions - g * GROUP)):
                row = {
                    "question": f"{korean.question(rng, [word], word)} ({g}-{q})",
                    "documents": rng.sample(pool, DOCS),
                }
                docs_out.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_params(folder: Path, model: Path, passage_tokens: int) -> None:
    """params.yaml (the composed conf/ with this rank section) and the machine settings."""
    import yaml

    from seedtune.core.compose import compose_config

    params = compose_config(ROOT / "conf")
    params["rank"].update(
        {"model": str(model), "passage_tokens": passage_tokens, "passage_overlap": 8}
    )
    (folder / "params.yaml").write_text(
        yaml.safe_dump(params, allow_unicode=True), encoding="utf-8"
    )
    (folder / "conf/local").mkdir(parents=True, exist_ok=True)
    (folder / "conf/local/default.yaml").write_text(
        yaml.safe_dump({"rank": {"device": "cpu", "batch_size": 64}}), encoding="utf-8"
    )


def run_stage(folder: Path, code: Path, threads: int | None = 1) -> dict[str, Any]:
    """Run ``code``'s rank stage in ``folder``; its seconds, peak RSS and metrics."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(code / "src"),
    }
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    out = folder / "rss.txt"
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _WRAP, str(code / "stages/rank.py"), str(out)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"rank failed in {folder}:\n{proc.stderr[-3000:]}")
    hwm, maxrss = (int(x) for x in out.read_text().split())
    metrics = json.loads((folder / "metrics/rank.json").read_text(encoding="utf-8"))
    return {"seconds": seconds, "peak_rss_mb": hwm / 1024, "ru_maxrss_mb": maxrss / 1024, **metrics}


def model_rss_mb(model: Path) -> float:
    """Resident memory of a fresh process that imported sentence-transformers, minus that of
    one that also loaded ``model``: the model's own share."""
    code = (
        "import re, sys; from pathlib import Path; import sentence_transformers as st\n"
        "def rss(): return int(re.search(r'VmRSS:\\s+(\\d+)', "
        "Path('/proc/self/status').read_text()).group(1)) / 1024\n"
        "a = rss(); m = st.SentenceTransformer(sys.argv[1], device='cpu'); print(rss() - a)"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(model)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(proc.stdout.strip().splitlines()[-1])


def index_bytes_per_vector() -> float:
    """Bytes of the embedding store's in-memory index per stored vector, measured."""
    import numpy as np

    from seedtune.retrieval.embeddings import EmbeddingStore

    n = 50_000
    with tempfile.TemporaryDirectory() as tmp:
        with EmbeddingStore(tmp, "fp", flush_every=n) as store:
            store.add([f"passage: {i}" for i in range(n)], np.zeros((n, 4), np.float32))
        store = EmbeddingStore(tmp, "fp")
        arrays = (store._prefix, store._shard, store._row, store._seen)  # noqa: SLF001
        return sum(a.nbytes for a in arrays) / n


def run(
    sizes: tuple[int, ...] = (1000, 10000), e5_questions: int = 60, code: Path = ROOT
) -> dict[str, Any]:
    """Peak RSS and seconds per question of the rank stage at each size, then at e5-small's
    shape (``e5_questions``; 0 skips it)."""
    from seedtune_sandbox.tiny import build_tiny_models

    tiny = build_tiny_models(ROOT / ".cache" / "tiny-models")
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            folder = Path(tmp) / f"q{n}"
            write_workload(folder, n)
            write_params(folder, tiny.e5, passage_tokens=32)
            r = run_stage(folder, code)
            out[f"peak_rss_mb_{n}"] = r["peak_rss_mb"]
            out[f"s_per_question_{n}"] = r["seconds"] / n
            out[f"texts_{n}"] = r["encoded"] + r["reused"]
            print(f"{n} questions: {r}", file=sys.stderr, flush=True)
        out["rss_ratio"] = out[f"peak_rss_mb_{max(sizes)}"] / out[f"peak_rss_mb_{min(sizes)}"]
        if e5_questions:
            from bench_rank import build_encoder

            model, _ = build_encoder(Path(tmp) / "e5-small")
            folder = Path(tmp) / "e5"
            # 256-token passages (the default): pages of about 20 of them
            write_workload(folder, e5_questions, sentences=140)
            write_params(folder, model, passage_tokens=256)
            r = run_stage(folder, code, threads=None)
            out.update(
                {
                    "e5_small_questions": e5_questions,
                    "e5_small_texts": r["encoded"] + r["reused"],
                    "e5_small_model_mb": model_rss_mb(model),
                    "e5_small_peak_rss_mb": r["peak_rss_mb"],
                    "e5_small_s_per_question": r["seconds"] / e5_questions,
                }
            )
            print(f"e5-small shape: {r}", file=sys.stderr, flush=True)
    if code == ROOT:  # another checkout's store may keep no such index
        out["index_bytes_per_vector"] = index_bytes_per_vector()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose stage to run")
    parser.add_argument("--sizes", default="1000,10000", help="question counts, comma-separated")
    parser.add_argument("--e5", type=int, default=60, help="questions at e5-small's shape")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    print(
        json.dumps(
            run(tuple(int(s) for s in args.sizes.split(",")), args.e5, args.code.resolve()),
            indent=2,
        )
    )
