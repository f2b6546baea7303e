"""`seedtune publish` against a loopback stand-in of the Hub (seedtune_sandbox.sim.hub,
``HF_ENDPOINT``): one private commit per repo with the adapter, the dataset and both
cards, the dvc.lock md5 in each message; refused in one line when the workspace is not
what dvc.lock records, a card is missing, or personal data is left unmasked."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from seedtune_sandbox.sim.hub import HubSim
from support import Workspace, composed_params, last_line

from seedtune.core.config import Params
from seedtune.training.model_card import render_card

# Stages shaped as the pipeline's (what writes what), their work a copy of prepared files.
DVC_YAML = {
    "stages": {
        "synthesize": {
            "cmd": "python make.py data/instructions.jsonl",
            "deps": ["make.py"],
            "outs": ["data/instructions.jsonl"],
        },
        "card": {
            "cmd": "python make.py data/instructions.md metrics/card.json",
            "deps": ["data/instructions.jsonl"],
            "outs": ["data/instructions.md", {"metrics/card.json": {"cache": False}}],
        },
        "train": {
            "cmd": "python make.py models/adapter",
            "deps": ["data/instructions.jsonl"],
            "outs": ["models/adapter"],
        },
        "evaluate": {
            "cmd": "python make.py metrics/evaluate.json",
            "deps": ["models/adapter"],
            "outs": [{"metrics/evaluate.json": {"cache": False}}],
        },
    }
}
MAKE = """\
import shutil, sys
from pathlib import Path
for out in sys.argv[1:]:
    src, dst = Path("prepared") / out, Path(out)
    dst.parent.mkdir(parents=True, exist_ok=True)
    (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    if out == "models/adapter":  # evaluate records the md5 of the weights it judged
        import hashlib, json
        md5 = hashlib.md5((dst / "adapter_model.safetensors").read_bytes()).hexdigest()
        ev = json.loads(Path("prepared/metrics/evaluate.json").read_text())
        Path("prepared/metrics/evaluate.json").write_text(json.dumps({**ev, "adapter_md5": md5}))
"""
ROWS = [
    {
        "question": "전세 계약 전에 무엇을 확인하나요?",
        "answer": "등기부등본을 확인하세요.",
        "split": "train",
    },
    {"question": "보증금은?", "answer": "문의는 [전화번호]로 하세요.", "split": "eval"},
]
VERDICT = {"win_rate": 0.75, "win_rate_ci_low": 0.55, "win_rate_ci_high": 0.9, "n": 20}
MODEL, DATASET = "seedtune-user/gemma-jeonse", "seedtune-user/jeonse-qa"


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, timeout=300)


@pytest.fixture()
def project(workspace: Workspace) -> Workspace:
    """A DVC project whose outputs are as dvc.lock records them (`dvc repro` ran)."""
    ws, prep = workspace, workspace.path / "prepared"
    ws.write("dvc.yaml", yaml.safe_dump(DVC_YAML))
    ws.write("make.py", MAKE)
    ws.write("prepared/data/instructions.jsonl", ROWS)
    ws.write("prepared/data/instructions.md", "---\nlicense: other\n---\n\n# 전세 Q&A\n")
    ws.write("prepared/metrics/card.json", json.dumps({"rows": 2}))
    ws.write("prepared/metrics/evaluate.json", json.dumps(VERDICT))
    raw = composed_params()
    p = Params.model_validate({k: raw[k] for k in ("train", "seed")})
    card = render_card(p.train, p.seed, "data/instructions.jsonl", "abc", {"train_loss": 1.5})
    ws.write("prepared/models/adapter/README.md", card)
    ws.write("prepared/models/adapter/adapter_config.json", json.dumps({"r": 4}))
    (prep / "models/adapter/adapter_model.safetensors").write_bytes(bytes(range(256)) * 8)
    env = ws.env()
    for cmd in (["dvc", "init", "--no-scm", "-q"], ["dvc", "repro", "-q"]):
        proc = _run([str(Path(sys.executable).parent / cmd[0]), *cmd[1:]], ws.path, env)
        assert proc.returncode == 0, proc.stderr
    return ws


def _publish(ws: Workspace, hub: HubSim, token: str | None = None, *extra: str):
    keys = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0"}
    keys["HF_TOKEN"] = token or hub.token
    argv = ["--model-repo", MODEL, "--dataset-repo", DATASET, *extra]
    return _run([sys.executable, "-m", "seedtune.cli", "publish", *argv], ws.path, ws.env(keys))


def _lock_md5(ws: Workspace, path: str) -> str:
    lock = yaml.safe_load((ws.path / "dvc.lock").read_text())
    return next(o["md5"] for s in lock["stages"].values() for o in s["outs"] if o["path"] == path)


def test_publish_commits_adapter_dataset_and_cards_privately(project: Workspace) -> None:
    with HubSim() as hub:
        proc = _publish(project, hub)
    assert proc.returncode == 0, proc.stderr
    model, data = hub.repo("model", MODEL), hub.repo("dataset", DATASET)
    assert model.private and data.private
    assert len(model.commits) == len(data.commits) == 1  # one commit each
    assert _lock_md5(project, "models/adapter") in model.commits[0].summary
    assert _lock_md5(project, "data/instructions.jsonl") in data.commits[0].summary
    files = model.files()
    assert set(files) == {"README.md", "adapter_config.json", "adapter_model.safetensors"}
    weights = project.path / "models/adapter/adapter_model.safetensors"
    assert files["adapter_model.safetensors"] == weights.read_bytes()
    assert "adapter_model.safetensors" in model.commits[0].lfs  # binary: through git-lfs
    card = files["README.md"].decode()
    assert "base_model: google/gemma-2b-it" in card and "**Licence:**" in card
    assert "## Intended use" in card and "## Params" in card and "train_loss" in card
    assert "0.75 (95% bootstrap interval 0.55–0.9)" in card
    assert f"- {DATASET}" in card  # front matter: the dataset it was tuned on
    assert (
        data.files()["instructions.jsonl"]
        == (project.path / "data/instructions.jsonl").read_bytes()
    )
    assert data.files()["README.md"].startswith(b"---\nlicense: other")
    assert f"model {MODEL}: " in proc.stdout and f"dataset {DATASET}: " in proc.stdout


def test_a_dirty_workspace_is_refused_before_anything_is_sent(project: Workspace) -> None:
    rows = project.path / "data/instructions.jsonl"
    rows.write_text(rows.read_text() + json.dumps({"question": "새 행"}) + "\n")
    with HubSim() as hub:
        proc = _publish(project, hub)
    assert proc.returncode != 0
    line = last_line(proc.stderr)
    assert "dvc.lock" in line and "data/instructions.jsonl" in line
    assert hub.calls == [] and hub.repos == {}


def test_a_missing_card_is_refused(project: Workspace) -> None:
    (project.path / "data/instructions.md").unlink()
    with HubSim() as hub:
        proc = _publish(project, hub)
    assert proc.returncode != 0 and "data/instructions.md" in last_line(proc.stderr)
    assert hub.calls == []


def test_unmasked_personal_data_is_refused(project: Workspace) -> None:
    rows = project.path / "data/instructions.jsonl"
    rows.write_text(json.dumps({"question": "연락처?", "answer": "010-1234-5678로 전화"}) + "\n")
    with HubSim() as hub:
        proc = _publish(project, hub)
    assert proc.returncode != 0
    assert "unmasked" in last_line(proc.stderr) and "phone" in last_line(proc.stderr).lower()
    assert hub.calls == []


def test_what_the_card_stage_counted_unmasked_is_refused(project: Workspace) -> None:
    """metrics/card.json's ``pii_unmasked`` (the card stage's scan) is what publish goes by."""
    card = project.path / "metrics/card.json"
    card.write_text(json.dumps({"rows": 2, "pii_unmasked": {"email": 2}}))
    with HubSim() as hub:
        proc = _publish(project, hub)
    assert proc.returncode != 0
    assert "unmasked (2 email)" in last_line(proc.stderr)
    assert hub.calls == []


def test_a_token_the_hub_refuses_is_one_line(project: Workspace) -> None:
    with HubSim() as hub:
        proc = _publish(project, hub, "hf_wrong")
    assert proc.returncode != 0 and "\n" not in last_line(proc.stderr)
    assert MODEL in last_line(proc.stderr) and hub.repos == {}


def test_publish_needs_hf_token(project: Workspace, monkeypatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    shutil.rmtree(project.path / "prepared")
    with HubSim() as hub:
        env = project.env({"HF_ENDPOINT": hub.url}, drop=("HF_TOKEN",))
        argv = ["publish", "--model-repo", MODEL, "--dataset-repo", DATASET]
        proc = _run([sys.executable, "-m", "seedtune.cli", *argv], project.path, env)
    assert proc.returncode != 0 and "HF_TOKEN" in last_line(proc.stderr)
