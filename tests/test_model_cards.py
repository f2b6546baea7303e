"""Model cards that tell the truth (the base model's licence, the optimizer that ran, the
judge's verdict on the merged model's card) and outputs that honour the umask: the train
stage and `seedtune export` under umask 022 leave every file 0644 and every directory 0755,
and print no FutureWarning about PEFT's use of a deprecated transformers property."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import Workspace
from train_support import make_cfg, make_rows

from seedtune.core.records import data_version
from seedtune.training.model_card import base_licence, front_matter, write_model_card

GEMMA_ID = "google/gemma-2b-it"


def _card(out: Path) -> tuple[dict[str, Any], str]:
    text = (out / "README.md").read_text(encoding="utf-8")
    return front_matter(text), text


# ----------------------------------------------------------------------------- licence


def test_licence_comes_from_the_base_models_own_card(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "README.md").write_text("---\nlicense: apache-2.0\nlanguage: [ko]\n---\n# x\n")
    assert base_licence("someone/model", str(base)) == {"license": "apache-2.0"}
    # a Gemma id whose card is not here: Gemma's terms; anything else is not guessed
    assert base_licence(GEMMA_ID, None)["license"] == "gemma"
    assert base_licence(str(tmp_path / "elsewhere"), None) == {"license": "unknown"}


def test_adapter_card_names_licence_and_the_optimizer_that_ran(tmp_path: Path) -> None:
    data = tmp_path / "instructions.jsonl"
    data.write_text('{"question": "q", "answer": "a"}\n', encoding="utf-8")
    cfg = make_cfg(GEMMA_ID, optim__name="adamw_torch_fused")
    write_model_card(tmp_path, cfg, 42, data, {"eval_loss": 1.5, "optimizer": "adamw_torch"})
    front, text = _card(tmp_path)
    assert (front["license"], front["base_model"]) == ("gemma", GEMMA_ID)
    assert "**Optimizer:** adamw_torch (train.optim.name is adamw_torch_fused" in text
    assert "| optimizer |" not in text  # a fact of the run, not a metric
    assert "Not in this card: the evaluate stage judges this adapter" in text


# ------------------------------------------------------------- the stage, export, modes


def _umask_022() -> None:
    os.umask(0o022)


def _modes(root: Path) -> dict[str, str]:
    """Every path under ``root`` that is not 0644 (files) / 0755 (directories)."""
    bad = {}
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode != (0o755 if path.is_dir() else 0o644):
            bad[str(path.relative_to(root))] = oct(mode)
    return bad


@pytest.fixture(scope="module")
def trained_stage(tiny_models, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = Workspace(tmp_path_factory.mktemp("cards"))
    ws.params(
        models={GEMMA_ID: str(tiny_models.gemma)},
        train={
            "model": {"name_or_path": GEMMA_ID},
            "optim": {"name": "adamw_torch_fused"},
            "max_steps": 2,
            "batch_size": 2,
            "grad_accum": 1,
            "max_length": 256,
            "logging_steps": 1,
            "eval_steps": 2,
            "save_steps": 2,
        },
    )
    ws.write("data/instructions.jsonl", make_rows())
    ws.copy_from_repo("conf/accelerate")
    proc = subprocess.run(
        ws.command("train"),
        cwd=ws.path,
        env=ws.env(),
        text=True,
        capture_output=True,
        timeout=900,
        preexec_fn=_umask_022,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # PEFT's read of a deprecated transformers property: expected, silenced in the stage
    assert "is_gradient_checkpointing" not in proc.stderr
    return ws


def test_train_under_umask_022_writes_readable_files_and_a_true_card(trained_stage) -> None:
    adapter = trained_stage.path / "models/adapter"
    assert (adapter / "adapter_model.safetensors").is_file()
    assert _modes(adapter) == {}
    front, text = _card(adapter)
    assert front["license"] == "gemma"
    ran = json.loads((trained_stage.path / "metrics/train.json").read_text())["optimizer"]
    assert ran == "adamw_torch"  # no CUDA here: configure ran the unfused AdamW
    assert "**Optimizer:** adamw_torch (train.optim.name is adamw_torch_fused" in text


def _export(ws: Workspace, *args: str) -> Path:
    proc = subprocess.run(
        [sys.executable, "-m", "seedtune.cli", "export", *args],
        cwd=ws.path,
        env=ws.env(),
        text=True,
        capture_output=True,
        timeout=900,
        preexec_fn=_umask_022,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "is_gradient_checkpointing" not in proc.stderr
    return ws.path / "models/merged"


def test_export_writes_readable_files_and_a_card_with_the_verdict(trained_stage) -> None:
    ws = trained_stage
    adapter = ws.path / "models/adapter"
    # not evaluated yet: the card says so
    merged = _export(ws)
    assert _modes(merged) == {}
    front, text = _card(merged)
    assert (front["license"], front["library_name"], front["base_model"]) == (
        "gemma",
        "transformers",
        GEMMA_ID,
    )
    assert "Not evaluated: metrics/evaluate.json is missing" in text
    assert "## Params" in text and "AutoPeftModelForCausalLM" not in text

    # evaluate judged this adapter: its win rate and interval are on the card
    verdict = {
        "win_rate": 0.625,
        "win_rate_ci_low": 0.4,
        "win_rate_ci_high": 0.85,
        "n": 8,
        "wins": 4,
        "ties": 2,
        "losses": 2,
        "score_tuned": 6.5,
        "score_base": 5.25,
        "adapter_md5": data_version(adapter / "adapter_model.safetensors"),
    }
    ws.write("metrics/evaluate.json", json.dumps(verdict))
    _, text = _card(_export(ws))
    assert "| win rate vs base | 0.625 (95% bootstrap interval 0.4–0.85) |" in text
    assert "8 held-out questions" in text

    # ...and not when it judged another adapter
    ws.write("metrics/evaluate.json", json.dumps({**verdict, "adapter_md5": "0" * 32}))
    _, text = _card(_export(ws))
    assert "Not evaluated" in text and "0.625" not in text
    assert yaml.safe_load(text.split("---")[1])["base_model_relation"] == "finetune"
