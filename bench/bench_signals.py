"""Benchmark: how long a stage outlives SIGTERM to the ``dvc repro`` that started it, and how
many pages it still fetches meanwhile (issue 25: it used to run on to the end).

Run: ``python bench/run.py signals`` (about a minute). A crawl of pages on the simulator's
slow origin runs under ``dvc repro -s crawl``; once 6 pages are served dvc gets SIGTERM.
Measured, with ``SHELL=/bin/bash`` (bash execs the stage: PR_SET_PDEATHSIG) and
``SHELL=/bin/sh`` (dash stays in between: the parent watch): seconds until no process of the
stage is left, and pages served after the signal (those the server had already taken count).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DELAY_S = 0.4


def _stage_alive(ws: Path) -> bool:
    for proc in Path("/proc").iterdir():
        try:
            if (
                proc.name.isdigit()
                and b"stages/crawl.py" in (proc / "cmdline").read_bytes()
                and Path(os.readlink(proc / "cwd")) == ws
            ):
                return True
        except OSError:
            continue
    return False


def _one(shell: str, tmp: Path) -> dict[str, float]:
    from seedtune_sandbox.demo import SIM_ENV, prepare_workspace, sim_config, tool_env
    from seedtune_sandbox.sim import SimServer

    with SimServer(sim_config(page_delay_s=DELAY_S)) as sim:
        slow = sim.page_origins["slow"]
        local = {
            "crawl": {
                "host_rps": 100,
                "per_host": 2,
                "concurrency": 2,
                "timeout_s": 10,
                "max_retries": 0,
                "allow_networks": ["127.0.0.0/8", "::1/128"],
            }
        }
        ws = prepare_workspace(ROOT, tmp / Path(shell).name, local)
        docs = [
            {
                "question": f"q{q}",
                "documents": [
                    {
                        "category": "blog",
                        "title": "t",
                        "description": "d",
                        "link": f"{slow}/board/{q * 3 + i + 1}",
                    }
                    for i in range(3)
                ],
            }
            for q in range(16)
        ]
        (ws / "data/documents.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
        with (tmp / f"{Path(shell).name}.log").open("w") as log:
            dvc = subprocess.Popen(
                ["dvc", "repro", "-s", "crawl"],
                cwd=ws,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**tool_env(SIM_ENV), "SHELL": shell},
            )
        while sim.stats()["pages"]["requests"] < 6:
            time.sleep(0.02)
        at_signal = sim.stats()["pages"]["requests"]
        started = time.perf_counter()
        dvc.send_signal(signal.SIGTERM)
        dvc.wait()
        while _stage_alive(ws) and time.perf_counter() - started < 60:
            time.sleep(0.01)
        gone = time.perf_counter() - started
        time.sleep(DELAY_S + 1.0)
        return {
            "stage_gone_s": round(gone, 3),
            "pages_after_signal": sim.stats()["pages"]["requests"] - at_signal,
            "pages_total": len(docs) * 3,
        }


def run() -> dict[str, Any]:
    """Seconds from SIGTERM to dvc until no stage process is left, per shell."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-signals-") as tmp:
        for shell in ("/bin/bash", "/bin/sh"):
            if Path(shell).exists():
                for key, value in _one(shell, Path(tmp)).items():
                    out[f"{Path(shell).name}_{key}"] = value
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
