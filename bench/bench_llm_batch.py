"""Benchmark: batch-mode memory stays flat per request (``llm.mode: batch``).

Run: ``python bench/run.py llm_batch`` (about 2 minutes on 2 CPU cores), or ``python
bench/bench_llm_batch.py [--code DIR] [--sizes 2000,20000]``: ``--code`` runs another
checkout's client (e.g. main's, for the figures before a change).

Each size runs :meth:`LLMClient.stream` in batch mode in a process of its own, against the
simulator in another (``seedtune sim``, batches in progress for a fraction of a second), on
synthesize-shaped requests read from a generator: a system turn and a user turn carrying
about :data:`PASSAGE_CHARS` characters of Korean passages of its own, as a synthesize request
with its passages does. Every request is uncached: all go out in batches.

* ``peak_rss_mb_<n>``: the client process's peak resident memory (``VmHWM``) at ``n``
  requests, ``base_rss_mb_<n>`` its resident memory once imported, before the stream;
* ``rss_ratio``: the largest size's peak over the smallest's (1.0: flat);
* ``bytes_per_request``: the peak's growth from the smallest size to the largest, per
  request added (what memory holds per request: its key and id, not its prompt; the input
  lines are about ``input_bytes_per_request`` each);
* ``s_per_request_<n>``: wall seconds per request (the simulator answers in-process, so this
  is mostly its time; a trend, not the API's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PASSAGE_CHARS = 1500
KEY = "bench-key"

#: One stream in batch mode; prints its figures as JSON.
_CHILD = """
import json, re, sys, time
from pathlib import Path
n, url, tmp, chars = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
from seedtune.core.cache import ResponseCache
from seedtune.core.config import LLMConfig
from seedtune.llm.client import LLMClient, LLMRequest
from seedtune.llm.schemas import QuestionList

def hwm_mb():
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"^VmHWM:\\s+(\\d+) kB", status, re.M).group(1)) / 1024

WORDS = "전세 계약 보증금 임대인 임차인 확정일자 전입신고 등기부등본 대항력 우선변제권".split()

def requests():
    for i in range(n):
        passage = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(chars // 4))
        yield LLMRequest(
            id=str(i),
            schema=QuestionList,
            messages=[
                {"role": "system", "content": "당신은 부동산 전문가입니다."},
                {"role": "user", "content": f"용어: 전세{i}\\n참고 자료 {i}:\\n{passage[:chars]}"},
            ],
        )

cfg = LLMConfig(base_url=url, model="sim-gpt", mode="batch", batch_poll_s=0.2,
                batch_wait_s=None, max_tokens=256)
client = LLMClient(cfg, ResponseCache(tmp / "cache"), desc="bench")
base = hwm_mb()
started = time.monotonic()
answered = sum(1 for o in client.stream(requests(), total=n) if o.value)
seconds = time.monotonic() - started
line = len(json.dumps(client.body_of(next(requests())), ensure_ascii=False).encode())
print(json.dumps({"answered": answered, "peak_rss_mb": hwm_mb(), "base_rss_mb": base,
                  "seconds": seconds, "batches": client.stats.batches, "line_bytes": line}))
"""


def run_stream(n: int, url: str, code: Path) -> dict[str, Any]:
    """One batch-mode stream of ``n`` requests in a fresh process running ``code``'s src."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(code / "src"), str(ROOT / "sandbox" / "src")]),
            "OPENAI_API_KEY": KEY,
            "SEEDTUNE_BATCH_STATE": str(Path(tmp) / "state" / "batches.sqlite3"),
        }
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(n), url, tmp, str(PASSAGE_CHARS)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"batch stream of {n} failed: {proc.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["answered"] != n:
        raise RuntimeError(f"batch stream of {n}: {result['answered']} answered")
    return result


def run(sizes: tuple[int, ...] = (2000, 20000), code: Path = ROOT) -> dict[str, Any]:
    """Peak RSS of batch-mode streams at each size, and its growth per request."""
    from bench_llm import sim_process

    out: dict[str, Any] = {}
    with sim_process("--openai-api-key", KEY, "--batch-in-progress-s", "0.1") as sim:
        for n in sizes:
            r = run_stream(n, f"{sim}/v1", code)
            out[f"peak_rss_mb_{n}"] = r["peak_rss_mb"]
            out[f"base_rss_mb_{n}"] = r["base_rss_mb"]
            out[f"s_per_request_{n}"] = r["seconds"] / n
            out["input_bytes_per_request"] = r["line_bytes"]
            print(f"{n} requests: {r}", file=sys.stderr, flush=True)
    lo, hi = min(sizes), max(sizes)
    out["rss_ratio"] = out[f"peak_rss_mb_{hi}"] / out[f"peak_rss_mb_{lo}"]
    grown = (out[f"peak_rss_mb_{hi}"] - out[f"peak_rss_mb_{lo}"]) * 1024 * 1024
    out["bytes_per_request"] = grown / (hi - lo)
    return out


def main() -> None:
    """The figures as JSON (see the module docstring for the options)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", type=Path, default=ROOT, help="checkout whose src/ is measured")
    ap.add_argument("--sizes", default="2000,20000", help="request counts, comma-separated")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    sizes = tuple(int(s) for s in args.sizes.split(","))
    print(json.dumps(run(sizes, args.code.resolve()), indent=2))


if __name__ == "__main__":
    main()
