"""Launching training: the accelerate command line, and two CPU processes training
through the stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from support import Workspace
from train_support import make_cfg, train_ws

# ------------------------------------------------------------------------ launching


def test_accelerate_launch_command(root: Path, gemma: Path) -> None:
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    from seedtune.training.launch import launch_command

    cfg = make_cfg(
        gemma,
        launcher="accelerate",
        num_processes=4,
        accelerate_config=str(root / "conf/accelerate/fsdp.yaml"),
    )
    cmd = launch_command(cfg, "stages/train.py")
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    args = launch_command_parser().parse_args(cmd[3:])
    assert (args.num_processes, args.config_file, args.training_script) == (
        4,
        str(root / "conf/accelerate/fsdp.yaml"),
        "stages/train.py",
    )
    kinds = {
        name: load_config_from_file(str(root / f"conf/accelerate/{name}.yaml")).distributed_type
        for name in ("ddp", "fsdp")
    }
    assert {k: v.value for k, v in kinds.items()} == {"ddp": "MULTI_GPU", "fsdp": "FSDP"}


@pytest.mark.slow  # two processes, each loading torch and the model: about a minute here
def test_two_cpu_processes_train_through_the_stage(
    workspace: Workspace, gemma: Path, rows: list[dict[str, Any]]
) -> None:
    """launcher=accelerate, num_processes=2: the stage relaunches itself under accelerate
    (DDP over gloo on CPU); rank 0 alone writes the adapter, card and metrics."""
    ws = train_ws(
        workspace,
        rows,
        {
            "model.name_or_path": str(gemma),
            "launcher": "accelerate",
            "num_processes": 2,
            "max_steps": 2,
            "batch_size": 2,
            "grad_accum": 1,
            "max_length": 256,
            "logging_steps": 1,
            "eval_steps": 2,
            "save_steps": 2,
        },
    )
    proc = ws.run("train")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "launching 2 processes" in proc.stderr and "cpu, 2 process(es)" in proc.stderr
    adapter = ws.path / "models/adapter"
    assert (adapter / "adapter_model.safetensors").is_file()
    assert "# LoRA adapter for" in (adapter / "README.md").read_text(encoding="utf-8")
    summary = json.loads((ws.path / "metrics/train.json").read_text())
    assert summary["steps"] == 2 and "eval_loss" in summary
    assert not (ws.path / "models/checkpoints").exists()  # a finished run leaves nothing to resume
