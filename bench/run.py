"""Benchmarks: ``make bench``. Prints a table and writes bench/results.json.

Each benchmark measures our way and the tutorial's way side by side in one run and reports
ratios, so the figures compare like with like on whatever machine runs them. Later issues
add benchmarks by adding a function to ``BENCHMARKS``.

Run one: ``python bench/run.py llm_client``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"


@contextmanager
def sim_process(*args: str) -> Iterator[str]:
    """``seedtune sim`` in its own process (in-process it would share our GIL); yields its URL."""
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        proc = subprocess.Popen([sys.executable, "-m", "seedtune.sim", "--port", "0", "--quiet",
                                 "--port-file", str(port_file), *args])
        try:
            for _ in range(200):
                if port_file.is_file() and port_file.read_text().strip():
                    break
                time.sleep(0.05)
            yield f"http://127.0.0.1:{int(port_file.read_text())}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def bench_llm_client(calls: int = 400, latency_ms: float = 50, concurrency: int = 32
                     ) -> dict[str, Any]:
    """Structured-output calls against the simulator: our async client vs a thread pool."""
    from openai import OpenAI

    from seedtune.cache import ResponseCache
    from seedtune.config import LLMConfig
    from seedtune.llm import LLMClient, LLMRequest
    from seedtune.schemas import QA, json_schema

    key = "bench-key"
    with sim_process("--latency-ms", str(latency_ms), "--openai-api-key", key) as url, \
            tempfile.TemporaryDirectory() as tmp:
        msgs = [[{"role": "user", "content": f"질문: 전세 계약 {i}번 주의점은?"}]
                for i in range(calls)]
        # the tutorial's way: ThreadPoolExecutor with default workers calling the sync client
        sync = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)

        def one(m: list[dict[str, str]]) -> str:
            r = sync.chat.completions.create(model="m", messages=m, temperature=0,
                                             response_format=json_schema(QA))
            return r.choices[0].message.content or ""

        t0 = time.perf_counter()
        with ThreadPoolExecutor() as pool:
            list(pool.map(one, msgs))
        tutorial_s = time.perf_counter() - t0

        import os

        os.environ.setdefault("OPENAI_API_KEY", key)
        cfg = LLMConfig(base_url=f"{url}/v1", model="m", concurrency=concurrency,
                        max_retries=0)
        reqs = [LLMRequest(id=str(i), messages=m, schema=QA) for i, m in enumerate(msgs)]
        client = LLMClient(cfg, ResponseCache(tmp), desc="bench")
        t0 = time.perf_counter()
        client.run(reqs)
        ours_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        LLMClient(cfg, ResponseCache(tmp), desc="bench").run(reqs)
        cached_s = time.perf_counter() - t0
    floor = calls * latency_ms / 1000 / concurrency
    return {"calls": calls, "latency_ms": latency_ms, "concurrency": concurrency,
            "floor_s": floor, "ours_s": ours_s, "tutorial_threadpool_s": tutorial_s,
            "cached_rerun_s": cached_s, "ours_over_floor": ours_s / floor,
            "speedup_vs_tutorial": tutorial_s / ours_s}


BENCHMARKS: dict[str, Callable[[], dict[str, Any]]] = {
    "llm_client": bench_llm_client,
}


def main(argv: list[str]) -> int:
    """Run the named benchmarks (all by default), print a table, write results.json."""
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}", file=sys.stderr)
        return 2
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for name in names:
        results[name] = BENCHMARKS[name]()
    print(f"\n{'benchmark':<14} {'figure':<24} {'value':>12}")
    print("-" * 52)
    for name in names:
        for fig, value in results[name].items():
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            print(f"{name:<14} {fig:<24} {shown:>12}")
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
