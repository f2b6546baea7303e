"""Benchmarks: ``make bench``. Prints a table and writes bench/results.json.

Each ``bench/bench_<name>.py`` module has a ``run() -> dict`` that measures our way and the
tutorial's way side by side in one run and reports named figures and ratios, so the numbers
compare like with like on whatever machine runs them. Add a benchmark by adding a module.

Run all: ``python bench/run.py``; some: ``python bench/run.py llm``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"


def discover() -> dict[str, Path]:
    """Benchmark name -> module path, for every bench/bench_<name>.py."""
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def run_one(path: Path) -> dict[str, Any]:
    """Import a benchmark module by path and call its ``run()``."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(HERE))  # benchmarks may share helpers in bench/
    spec.loader.exec_module(module)
    return module.run()


def main(argv: list[str]) -> int:
    """Run the named benchmarks (all by default), print a table, write results.json."""
    found = discover()
    names = argv or list(found)
    unknown = [n for n in names if n not in found]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(found)}", file=sys.stderr)
        return 2
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for name in names:
        print(f"running benchmark {name} ...", file=sys.stderr, flush=True)
        results[name] = run_one(found[name])
    width = max([28, *(len(fig) for name in names for fig in results[name])])
    print(f"\n{'benchmark':<14} {'figure':<{width}} {'value':>14}")
    print("-" * (30 + width))
    for name in names:
        for fig, value in results[name].items():
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            print(f"{name:<14} {fig:<{width}} {shown:>14}")
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
