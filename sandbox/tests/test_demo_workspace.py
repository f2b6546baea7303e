"""After `seedtune demo`, its workspace is a place to work: `seedtune sim --workspace` brings
the simulator back on the recorded ports with the keys of the workspace's .env, and the
README's commands for experiments, plots, ask, export and sharing run there as written."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from seedtune_sandbox.demo import (
    SIM_ENV,
    demo_params,
    local_config,
    next_steps,
    prepare_workspace,
    save_sim_state,
    sim_config,
    tool_env,
)
from seedtune_sandbox.sim.workspace import SIM_STATE

pytestmark = pytest.mark.slow

SEEDS = ["전세", "청약", "재건축", "양도소득세", "LTV"]
#: The README's comparison, as written there.
EXP_SHOW = (
    "dvc exp show --drop '.*' --sort-by win_rate --sort-order desc "
    "--keep 'Experiment|win_rate$|score_|eval_loss|train\\.lora\\.(r|alpha)$|"
    "train\\.optim\\.lr'"
)


def sh(
    ws: Path, cmd: str, check: bool = True, timeout: int = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A README command in the workspace's shell, keys only from its .env."""
    base = {k: v for k, v in tool_env().items() if k not in SIM_ENV}
    proc = subprocess.run(
        cmd,
        shell=True,
        cwd=ws,
        env={**base, **(env or {})},
        text=True,
        capture_output=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_sim/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def demo_ws(tmp_path_factory: pytest.TempPathFactory, root: Path, tiny_models) -> Path:
    """A demo workspace whose simulator has stopped, as `seedtune demo` leaves it."""
    from seedtune_sandbox.sim import SimServer

    sizes = {
        **demo_params(),
        "queries.per_seed": 3,
        "queries.titles.per_seed": 2,
        "train.max_steps": 12,
        "train.eval_steps": 6,
        "evaluate.max_new_tokens": 24,
        "evaluate.max_questions": 8,
    }
    with SimServer(sim_config()) as sim:
        ws = prepare_workspace(
            root,
            tmp_path_factory.mktemp("demo") / "ws",
            local_config(sim.url, tiny_models, sim.page_origins.values()),
            seeds=SEEDS,
            params=sizes,
        )
        save_sim_state(ws, sim)
        url = sim.url
        sh(ws, "dvc repro")  # the keys come from the workspace's .env
    assert not _healthy(url)
    return ws


@pytest.fixture(scope="module")
def sim_back(demo_ws: Path) -> Iterator[str]:
    """`seedtune sim --workspace WS`, as the demo's last lines say."""
    state = yaml.safe_load((demo_ws / SIM_STATE).read_text())
    url = f"http://{state['host']}:{state['port']}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "seedtune.cli", "sim", "--workspace", str(demo_ws), "--quiet"],
        env=tool_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(300):
            if _healthy(url) or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert _healthy(url), proc.stderr.read() if proc.poll() is not None else "no answer"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_demo_says_how_to_keep_working(demo_ws: Path) -> None:
    text = next_steps(demo_ws)
    assert f"seedtune sim --workspace {demo_ws}" in text and f"cd {demo_ws}" in text
    assert (demo_ws / ".env").stat().st_mode & 0o077 == 0  # the keys: owner only
    assert ".env" not in sh(demo_ws, "git status --porcelain --ignored=no").stdout


def test_readme_commands_run_in_the_demo_workspace(
    demo_ws: Path, sim_back: str, tmp_path: Path
) -> None:
    ws = demo_ws
    sh(
        ws,
        "git add -A && git -c user.name=t -c user.email=t@t.invalid commit -qm demo --allow-empty",
    )
    # a queued grid runs in .dvc/tmp/exps copies: conf/local and .env of the workspace hold
    # (queued first: it starts from the demo's lr, which the tiny model needs to move at all)
    sh(ws, "dvc exp run --queue -S 'train.lora.r=4,8,16'")
    sh(ws, "dvc queue start")
    for _ in range(1800):
        status = sh(ws, "dvc queue status").stdout
        if not any(w in status for w in ("Queued", "Running")):
            break
        time.sleep(1)
    assert "Failed" not in status, (
        status
        + sh(
            ws, "dvc queue logs $(dvc queue status | awk '/Failed/{print $1; exit}')", check=False
        ).stdout[-3000:]
    )
    sh(ws, "dvc exp run -S train.lora.r=8 -S train.optim.lr=2e-4")
    shown = sh(ws, EXP_SHOW).stdout
    assert "win_rate" in shown
    table = list(
        csv.DictReader(
            io.StringIO(sh(ws, EXP_SHOW.replace("dvc exp show", "dvc exp show --csv")).stdout)
        )
    )
    grid = [
        r
        for r in table
        if r["Experiment"] and r.get("win_rate") and r.get("train.lora.r") in ("4", "8", "16")
    ]  # the queued runs, not the workspace
    rates = [float(r["win_rate"]) for r in grid]
    assert len(rates) >= 3, table
    # experiments that differ: not all ties, not the always-1.0 of an empty base model
    assert len(set(rates)) > 1 and not all(r == 1.0 for r in rates), rates
    sh(ws, "dvc plots show")
    assert (ws / "dvc_plots" / "index.html").stat().st_size > 0
    print("win rates, best first:", [(r["train.lora.r"], r["win_rate"]) for r in grid])
    best = grid[0]["Experiment"]
    sh(ws, f"dvc exp apply {best}")
    ask = sh(ws, 'seedtune ask "전세 계약 시 주의할 점은?"')
    assert ask.stdout.strip()
    rag = sh(ws, 'seedtune ask "전세 계약 시 주의할 점은?" --rag')
    assert "출처 (sources):" in rag.stdout
    sh(ws, "seedtune export")
    assert (ws / "models" / "merged" / "config.json").is_file()
    sh(ws, f"dvc remote add -d storage {tmp_path / 'remote'} && dvc push")
    assert any((tmp_path / "remote").rglob("*"))


def test_a_missing_key_stops_the_experiment_before_training(demo_ws: Path) -> None:
    ws = demo_ws
    env_file = ws / ".env"
    keys = env_file.read_text()
    env_file.unlink()
    try:
        proc = sh(ws, "dvc exp run -S train.lora.r=2", check=False)
    finally:
        env_file.write_text(keys)
        os.chmod(env_file, 0o600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    line = next(x for x in out.splitlines() if "train: error:" in x)
    assert "OPENAI_API_KEY" in line and "evaluate" in line
    assert "Running stage 'evaluate'" not in out
    assert not (ws / "models" / "checkpoints").is_dir() or not any(
        (ws / "models" / "checkpoints").iterdir()
    )  # it stopped before a training step
