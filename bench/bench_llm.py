"""Benchmark: our async, cached LLM client vs the tutorial's thread pool, side by side.

Run: ``python bench/run.py llm``. The simulator runs in its own process (``sim_process``).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def sim_process(*args: str) -> Iterator[str]:
    """``seedtune sim`` in its own process (in-process it would share our GIL); yields its URL."""
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "seedtune_sandbox.sim",
                "--port",
                "0",
                "--quiet",
                "--port-file",
                str(port_file),
                *args,
            ]
        )
        try:
            for _ in range(200):
                if port_file.is_file() and port_file.read_text().strip():
                    break
                time.sleep(0.05)
            yield f"http://127.0.0.1:{int(port_file.read_text())}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def run(calls: int = 2000, latency_ms: float = 100, concurrency: int = 32) -> dict[str, Any]:
    """Structured-output calls against the simulator: our async client vs a thread pool."""
    from openai import OpenAI

    from seedtune.core.cache import ResponseCache
    from seedtune.core.config import LLMConfig
    from seedtune.llm.client import LLMClient, LLMRequest, response_format
    from seedtune.tasks.synthesize import QA

    key = "bench-key"
    with (
        sim_process("--latency-ms", str(latency_ms), "--openai-api-key", key) as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        msgs = [
            [{"role": "user", "content": f"질문: 전세 계약 {i}번 주의점은?"}] for i in range(calls)
        ]
        # the tutorial's way: ThreadPoolExecutor with default workers calling the sync client
        sync = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)

        def one(m: list[dict[str, str]]) -> str:
            r = sync.chat.completions.create(
                model="m", messages=m, temperature=0, response_format=response_format(QA)
            )
            return r.choices[0].message.content or ""

        t0 = time.perf_counter()
        with ThreadPoolExecutor() as pool:
            list(pool.map(one, msgs))
        tutorial_s = time.perf_counter() - t0

        import os

        os.environ.setdefault("OPENAI_API_KEY", key)
        cfg = LLMConfig(base_url=f"{url}/v1", model="m", concurrency=concurrency, max_retries=0)
        reqs = [LLMRequest(id=str(i), messages=m, schema=QA) for i, m in enumerate(msgs)]
        client = LLMClient(cfg, ResponseCache(tmp), desc="bench")
        t0 = time.perf_counter()
        client.run(reqs)
        ours_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        LLMClient(cfg, ResponseCache(tmp), desc="bench").run(reqs)
        cached_s = time.perf_counter() - t0
    floor = calls * latency_ms / 1000 / concurrency
    return {
        "calls": calls,
        "latency_ms": latency_ms,
        "concurrency": concurrency,
        "floor_s": floor,
        "ours_s": ours_s,
        "tutorial_threadpool_s": tutorial_s,
        "cached_rerun_s": cached_s,
        "ours_over_floor": ours_s / floor,
        "speedup_vs_tutorial": tutorial_s / ours_s,
    }
