"""Benchmark: what the Naver quota ledger costs per call, in WAL mode (ours) beside SQLite's
default rollback journal (the ledger before), side by side.

Run: ``python bench/run.py quota`` (seconds). Every Naver call is counted in the ledger in its
own write transaction before it is sent (:class:`seedtune.retrieval.quota.DailyBudget`), so
this cost is on every call's path, serialised across the search workers. Measured: ms per
counted call in one process, both ways; and ours in two processes counting at once (their
total must be exact: every call counted once).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CALLS = 2000
_CHILD = """
import sys
from seedtune.retrieval.quota import DailyBudget
b = DailyBudget(10**9, "bench", path=sys.argv[1])
for _ in range(int(sys.argv[2])):
    b.take()
"""


def _one_process(path: Path, mode: str, calls: int) -> float:
    from seedtune.retrieval.quota import DailyBudget

    budget = DailyBudget(10**9, "bench", path=path)
    if mode == "delete":  # the ledger as it was: rollback journal, synced per transaction
        budget._db.execute("PRAGMA journal_mode=DELETE")
        budget._db.execute("PRAGMA synchronous=FULL")
    started = time.perf_counter()
    for _ in range(calls):
        budget.take()
    elapsed = time.perf_counter() - started
    assert budget.used() == calls
    budget.close()
    return elapsed * 1000 / calls


def _two_processes(path: Path, calls: int) -> tuple[float, int]:
    from seedtune.retrieval.quota import DailyBudget

    DailyBudget(10**9, "bench", path=path).close()  # create it (and its mode) first
    started = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-c", _CHILD, str(path), str(calls)]) for _ in range(2)
    ]
    for p in procs:
        p.wait()
    elapsed = time.perf_counter() - started
    return elapsed * 1000 / (2 * calls), DailyBudget(10**9, "bench", path=path).used()


def run() -> dict[str, Any]:
    """ms per counted call, ours (WAL) and before (rollback journal); ours in 2 processes."""
    out: dict[str, Any] = {"calls": CALLS}
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:  # a real disk, not tmpfs
        for name, mode in (("ours", "wal"), ("before", "delete")):
            out[f"{name}_ms_per_call"] = round(
                _one_process(Path(tmp) / f"{name}.db", mode, CALLS), 4
            )
        ms, counted = _two_processes(Path(tmp) / "two.db", CALLS // 2)
        out["ours_two_processes_ms_per_call"] = round(ms, 4)
        out["ours_two_processes_exact"] = counted == CALLS
    out["speedup"] = round(out["before_ms_per_call"] / out["ours_ms_per_call"], 1)
    return out


if __name__ == "__main__":
    print(run())
