"""Beyond one process: ``train.launcher=accelerate`` re-runs the train stage under
``accelerate launch``.

``dvc repro`` always runs ``python stages/train.py``. With ``launcher: accelerate`` that
process validates the params, prepares the checkpoint directory, then starts

    accelerate launch --config_file <train.accelerate_config> --num_processes <N> stages/train.py

with :data:`WORKER_ENV` set, and exits with its status. Each worker trains one data shard;
only the main process (rank 0) writes the adapter, the model card and the metrics.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from seedtune.core.config import TrainConfig

log = logging.getLogger(__name__)

WORKER_ENV = "SEEDTUNE_TRAIN_WORKER"


def in_worker() -> bool:
    """True inside a process started by :func:`relaunch` (or any torchrun-style launcher)."""
    return relaunched() or "LOCAL_RANK" in os.environ


def relaunched() -> bool:
    """True inside a worker that :func:`relaunch` started (its parent validated the params)."""
    return os.environ.get(WORKER_ENV) == "1"


def is_main_process() -> bool:
    """Rank 0 of a distributed run, or the only process."""
    return int(os.environ.get("RANK", "0")) == 0


def owns_setup() -> bool:
    """Whether this process prepares shared state (the checkpoint directory): the launching
    process, or rank 0 when someone ran ``accelerate launch``/``torchrun`` by hand."""
    return not relaunched() and is_main_process()


def needs_launch(cfg: TrainConfig) -> bool:
    """Whether this process should start the accelerate workers instead of training itself."""
    return cfg.launcher == "accelerate" and not in_worker()


def launch_command(cfg: TrainConfig, script: Path | str) -> list[str]:
    """The ``accelerate launch`` command line that runs ``script`` on ``train.num_processes``."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(cfg.accelerate_config),
        "--num_processes",
        str(cfg.num_processes),
        "--num_machines",
        "1",
        str(script),
    ]


def launch_env() -> dict[str, str]:
    """The workers' environment: ours plus :data:`WORKER_ENV`."""
    return {**os.environ, WORKER_ENV: "1"}


def relaunch(cfg: TrainConfig, script: Path | str) -> int:
    """Run ``script`` under ``accelerate launch``; returns its exit status."""
    cmd = launch_command(cfg, script)
    log.info("launching %d processes: %s", cfg.num_processes, " ".join(cmd))
    return subprocess.run(cmd, env=launch_env(), check=False).returncode
