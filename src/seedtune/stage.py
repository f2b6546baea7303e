"""What every stage script shares: logging, one-line errors, metrics files, paths."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seedtune.records import write_json

CACHE_DIR = Path("data/cache")
REJECTS_DIR = Path("data/rejects")
METRICS_DIR = Path("metrics")


def setup_logging(stage: str) -> None:
    """INFO logs with the stage name; quiet the HTTP libraries (they log every request)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s [{stage}] %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "httpcore", "openai", "urllib3", "filelock", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_stage(stage: str, main: Callable[[], None]) -> None:
    """Run ``main``; a user-fixable error becomes one line on stderr and exit code 2.

    ``ValueError`` covers :class:`~seedtune.config.ConfigError` and bad input rows;
    ``RuntimeError`` the clients' quota and request errors (naver, llm).
    """
    setup_logging(stage)
    try:
        main()
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"{stage}: error: {msg}", file=sys.stderr)
        sys.exit(2)


def write_metrics(stage: str, metrics: dict[str, Any]) -> None:
    """metrics/<stage>.json (declared as DVC metrics)."""
    write_json(METRICS_DIR / f"{stage}.json", metrics)
    logging.getLogger(stage).info("metrics: %s", metrics)


def write_rejects(stage: str, rejects: list[dict[str, Any]]) -> None:
    """data/rejects/<stage>.jsonl: every item that produced no usable output, with why."""
    from seedtune.records import write_jsonl

    write_jsonl(REJECTS_DIR / f"{stage}.jsonl", rejects)
