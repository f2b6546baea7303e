"""Runs that repeat no warning a user cannot act on: an output with no rows is not an empty
file DVC warns about on every run, and only the one expected FutureWarning is silenced."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from seedtune.core.records import read_jsonl
from seedtune.core.stage import ignore_peft_checkpointing_warning


def test_a_stage_without_rejects_makes_dvc_warn_nothing(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    script = "from seedtune.core.stage import write_rejects; write_rejects('evaluate', [])"
    (tmp_path / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "evaluate": {
                        "cmd": f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}",
                        "outs": ["data/rejects/evaluate.jsonl"],
                    }
                }
            }
        ),
        encoding="utf-8",
    )
    for argv in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(argv, cwd=tmp_path, env=env, check=True, capture_output=True)
    proc = subprocess.run(
        ["dvc", "repro"], cwd=tmp_path, env=env, text=True, capture_output=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "is empty" not in proc.stdout + proc.stderr
    assert read_jsonl(tmp_path / "data/rejects/evaluate.jsonl") == []  # still no rows


def test_only_the_expected_future_warning_is_silenced() -> None:
    from transformers import modeling_utils

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ignore_peft_checkpointing_warning()

        def warn(message: str) -> None:  # as transformers.modeling_utils itself warns
            exec(
                "warnings.warn(message, FutureWarning)",  # noqa: S102
                {**vars(modeling_utils), "message": message, "warnings": warnings},
            )

        warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.")
        warn("`something_else` is deprecated")
        warnings.warn(
            "`is_gradient_checkpointing` is deprecated (not transformers)",
            FutureWarning,
            stacklevel=1,
        )
    shown = [str(w.message) for w in caught]
    assert shown == [
        "`something_else` is deprecated",
        "`is_gradient_checkpointing` is deprecated (not transformers)",
    ]


@pytest.fixture(autouse=True)
def _restore_filters():
    with warnings.catch_warnings():
        yield
