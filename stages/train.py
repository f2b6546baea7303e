"""train stage: LoRA SFT of train.model on data/instructions.jsonl -> models/adapter/.

Run: ``dvc repro train``. Params are validated before any weights load (a bad value fails
with one line naming the key). Checkpoints go to models/checkpoints (persisted, git-ignored):
an interrupted run resumes from the last one if the params and data are unchanged. With
``train.launcher=accelerate`` this script re-runs itself under ``accelerate launch``.
"""

import sys
from pathlib import Path

import _guard  # noqa: F401  (one line, not a traceback, outside the venv)

from seedtune.core import paths
from seedtune.core.config import load_params
from seedtune.core.preflight import check_before_training
from seedtune.core.records import read_jsonl, save_atomically
from seedtune.core.stage import (
    METRICS_DIR,
    ignore_peft_checkpointing_warning,
    run_stage,
    write_metrics,
)
from seedtune.training.checkpoints import clear_checkpoints, prepare_checkpoints
from seedtune.training.configure import validate
from seedtune.training.launch import is_main_process, needs_launch, owns_setup, relaunch, relaunched
from seedtune.training.model_card import write_model_card
from seedtune.training.train import live_or_none, train

DATA, ADAPTER, CHECKPOINTS = Path(paths.INSTRUCTIONS), Path(paths.ADAPTER), Path(paths.CHECKPOINTS)


def main() -> None:
    ignore_peft_checkpointing_warning()  # PEFT wraps the model: expected, not actionable
    p = load_params(sections=("train",))
    # model path, chat template, LoRA targets, device: before any weights; workers that
    # relaunch() started skip it, their parent checked the same params on this machine
    if not relaunched():
        check_before_training()  # evaluate's judge key: not after minutes of training
    caps = None if relaunched() else validate(p.train)
    rows = read_jsonl(DATA)
    if owns_setup():
        prepare_checkpoints(CHECKPOINTS, p.train, p.seed, DATA)
    if needs_launch(p.train):
        sys.exit(relaunch(p.train, __file__))
    main_rank = is_main_process()
    with live_or_none(METRICS_DIR / "train", main_rank) as live:
        with save_atomically(ADAPTER, enabled=main_rank) as tmp:
            metrics = train(p.train, rows, p.seed, tmp, CHECKPOINTS, live, caps=caps)
            if main_rank:
                write_model_card(tmp, p.train, p.seed, DATA, metrics)
        if main_rank:
            write_metrics("train", metrics)  # metrics/train.json; dvclive keeps the curves
            clear_checkpoints(CHECKPOINTS)


if __name__ == "__main__":
    run_stage("train", main)
