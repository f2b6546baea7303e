"""What every stage script shares: logging, one-line errors, metrics and rejects files, paths."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from seedtune.core.errors import RejectRateError, SeedtuneError, one_line, run_main
from seedtune.core.paths import METRICS_DIR, metrics_file, rejects_file
from seedtune.core.records import write_json, write_jsonl
from seedtune.core.signals import interrupted, stop_on_signals


def setup_logging(stage: str) -> None:
    """INFO logs with the stage name; quiet the HTTP libraries (they log every request)."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s [{stage}] %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "httpx2", "httpcore", "openai", "urllib3", "filelock", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def ignore_peft_checkpointing_warning() -> None:
    """Silence the one FutureWarning every run that wraps a model in PEFT prints (train,
    evaluate, ``seedtune ask`` and ``export``): PEFT 0.21 reads ``is_gradient_checkpointing``,
    which transformers 5 deprecates for ``is_activation_checkpointing``; nothing here can act
    on it (PEFT's to change). Only that message, only from transformers: others still show."""
    warnings.filterwarnings(
        "ignore",
        message=r"`is_gradient_checkpointing` is deprecated",
        category=FutureWarning,
        module=r"transformers\.modeling_utils",
    )


def run_stage(stage: str, main: Callable[[], object]) -> None:
    """Run ``main`` (its return value is ignored) and exit: 0 when it finishes, 2 with one line
    on stderr for a user-fixable error (see :func:`~seedtune.core.errors.run_main`), 128 + the
    signal with one line when SIGTERM, SIGINT or the death of the launching ``dvc repro``
    stopped it (see :mod:`seedtune.core.signals`); anything else keeps its traceback."""
    setup_logging(stage)
    stop_on_signals(stage)

    def stage_main() -> None:
        main()

    try:
        status = run_main(stage, stage_main)
    except KeyboardInterrupt as exc:  # also SIGTERM, as signals.Interrupted
        status = interrupted(exc)
    sys.exit(status)


def write_metrics(stage: str, metrics: dict[str, Any]) -> None:
    """metrics/<stage>.json (declared as DVC metrics)."""
    write_json(metrics_file(stage), metrics)
    logging.getLogger(stage).info("metrics: %s", metrics)


@contextmanager
def stage_metrics(stage: str, *parts: Callable[[], dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """A dict the block fills with metrics/<stage>.json, written when the block ends, with
    ``parts()`` (e.g. the LLM's spend so far) merged in at that moment.

    It is written when the block fails too (a user-fixable error such as the reject rate, a
    fatal LLM error, an interruption), with ``failed: true`` and the one-line ``error``:
    DVC keeps no output of a failed stage, but every call was paid for, and the file on disk
    is where a user reads what was spent.
    """
    metrics: dict[str, Any] = {}

    def merged() -> dict[str, Any]:
        out = dict(metrics)
        for part in parts:
            out.update(part())
        return out

    try:
        yield metrics
    except (SeedtuneError, KeyboardInterrupt) as exc:
        try:
            write_metrics(stage, {**merged(), "failed": True, "error": one_line(exc)})
        except Exception:  # noqa: BLE001 - the stage's own error is the one to report
            logging.getLogger(stage).exception("could not write %s/%s.json", METRICS_DIR, stage)
        raise
    write_metrics(stage, merged())


def write_rejects(stage: str, rejects: list[dict[str, Any]]) -> None:
    """data/rejects/<stage>.jsonl: every item that produced no usable output, with why
    (none: one newline, so DVC does not warn that the output is empty)."""
    write_jsonl(rejects_file(stage), rejects, never_empty=True)


def check_reject_rate(stage: str, n_items: int, n_rejects: int, max_rate: float) -> None:
    """Fail the stage (one line) when too many items were rejected."""
    if n_items and n_rejects / n_items > max_rate:
        raise RejectRateError(
            f"{stage}: {n_rejects}/{n_items} items rejected (> llm.max_reject_rate={max_rate}); "
            f"see {rejects_file(stage)}"
        )
