"""The README's `dvc exp show` recipe, run as written in a small workspace with two
experiments: the table it prints fits a 120-column terminal with every kept column shown."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

# a stand-in for the pipeline: the real params.yaml and the real headline's keys, values with
# as many digits as a real run's (DVC rounds to 5 significant digits, so widths are bounded)
STAGE = """\
import json, yaml
from seedtune.evaluation.summary import headline
r = yaml.safe_load(open("params.yaml"))["train"]["lora"]["r"]
evaluate = {"win_rate": 0.5 + r / 97, "win_rate_ci_low": 0.3181818, "win_rate_ci_high": 0.681818,
            "score_tuned": 5.136363 + r / 7, "score_base": 4.954545}
train = {"eval_loss": 2.4567891 + r / 999, "tokens_per_s": 1234.5678, "mfu": 0.00123456}
json.dump(headline({"evaluate": evaluate, "train": train}), open("metrics/summary.json", "w"))
"""


def readme_recipe(root: Path) -> list[str]:
    """The README's `dvc exp show ...` command (with its continuation lines) as argv."""
    lines = (root / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("dvc exp show"))
    command = ""
    for line in lines[start:]:
        command += line.split("  #")[0].rstrip()
        if not command.endswith("\\"):
            break
        command = command[:-1] + " "
    return shlex.split(command)


def _run(ws: Path, *argv: str, columns: int = 120) -> str:
    env = {
        **os.environ,
        "COLUMNS": str(columns),
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    proc = subprocess.run(argv, cwd=ws, env=env, text=True, capture_output=True, timeout=300)
    assert proc.returncode == 0, f"{argv}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def two_experiments(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    ws = tmp_path_factory.mktemp("expshow")
    shutil.copy(root / "params.yaml", ws / "params.yaml")
    (ws / "stage.py").write_text(STAGE, encoding="utf-8")
    (ws / "metrics").mkdir()
    (ws / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "train": {
                        "cmd": f"{shlex.quote(sys.executable)} stage.py",
                        "deps": ["stage.py"],
                        "params": ["seed", "train.lora.r", "train.lora.alpha", "train.optim.lr"],
                        "outs": [{"metrics/summary.json": {"cache": False}}],
                    }
                },
                "metrics": ["metrics/summary.json"],
            }
        ),
        encoding="utf-8",
    )
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    _run(ws, "git", "init", "-q", "-b", "main")
    _run(ws, "dvc", "init", "-q")
    _run(ws, "dvc", "repro", "-q")
    _run(ws, *git, "add", "-A")
    _run(ws, *git, "commit", "-qm", "baseline")
    _run(ws, "dvc", "exp", "run", "-q", "-S", "train.lora.r=4")
    _run(ws, "dvc", "exp", "run", "-q", "-S", "train.lora.r=16", "-S", "train.optim.lr=2e-4")
    return ws


def test_the_recipe_fits_120_columns_and_hides_no_kept_column(two_experiments, root) -> None:
    argv = readme_recipe(root)
    assert argv[:3] == ["dvc", "exp", "show"]
    # as wide as it wants: the table's own width, not one squeezed to the terminal
    wide = _run(two_experiments, *argv, "--no-pager", columns=400).splitlines()
    assert max(len(line.rstrip()) for line in wide) <= 120, "\n".join(wide)
    header = next(line for line in wide if "Experiment" in line).split()
    assert header == [
        "Experiment",
        "win_rate",
        "score_tuned",
        "eval_loss",
        "train.lora.r",
        "train.lora.alpha",
        "train.optim.lr",
    ]
    rows = [line for line in wide if re.search(r"\[[a-z]+-[a-z]+\]", line)]
    assert len(rows) == 2
    # best first: the r=16 experiment wins more often in the stand-in
    assert rows[0].split()[-3] == "16"
    # and on a 120-column terminal nothing is cut off
    narrow = _run(two_experiments, *argv, "--no-pager", columns=120)
    assert "…" not in narrow
    assert max(len(line.rstrip()) for line in narrow.splitlines()) <= 120
