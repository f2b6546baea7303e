"""What the training tests share: instruction rows from the tiny corpus, a TrainConfig with
test-sized defaults, a stage workspace for the train stage, and a short tiny-Gemma run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import Workspace

from seedtune.core.config import TrainConfig

N_ROWS = 40


def make_rows(n: int = N_ROWS) -> list[dict[str, Any]]:
    """Instruction rows like synthesize writes: every 10th one held out for eval."""
    from seedtune_sandbox.tiny import corpus_lines

    lines = corpus_lines()
    rows = []
    for i in range(n):
        words = lines[i].split()
        rows.append(
            {
                "question": f"{' '.join(words[:3])}에 대해 알려 주세요?",
                "answer": f"{lines[i]} {lines[i + n]}",
                "split": "eval" if i % 10 == 9 else "train",
            }
        )
    return rows


def make_cfg(model: Path | str, **train: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "model": {"name_or_path": str(model)},
        "lora": {
            "r": 4,
            "alpha": 32,
            "target_modules": [
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
            ],
        },
        "optim": {"lr": 5e-3, "warmup_ratio": 0.0},
        "max_steps": 4,
        "batch_size": 2,
        "grad_accum": 1,
        "max_length": 256,
        "logging_steps": 1,
        "eval_steps": 2,
        "save_steps": 2,
    }
    for key, value in train.items():
        node, *path = key.split("__")
        if path:
            base[node] = {**base[node], path[0]: value}
        else:
            base[key] = value
    return TrainConfig.model_validate(base)


def train_ws(ws: Workspace, rows: list[dict[str, Any]], train: dict[str, Any]) -> Workspace:
    """params.yaml with ``train`` overrides (dotted keys), the data and conf/accelerate."""
    overrides: dict[str, Any] = {}
    for dotted, value in train.items():
        *parents, leaf = dotted.split(".")
        node = overrides
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = value
    ws.params(train=overrides)
    ws.write("data/instructions.jsonl", rows)
    ws.copy_from_repo("conf/accelerate")
    return ws


def train_tiny(gemma: Path, rows: list[dict[str, Any]], tmp: Path) -> tuple[Path, dict, Path]:
    """A 4-step run on the tiny Gemma: (adapter dir, metrics, dvclive dir)."""
    from seedtune.training.train import live_or_none, train

    out = tmp / "adapter"
    out.mkdir()
    with live_or_none(tmp / "metrics", True) as live:
        metrics = train(make_cfg(gemma), rows, 42, out, tmp / "ckpt", live)
    return out, metrics, tmp / "metrics"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    """:func:`make_rows`, once per test module."""
    return make_rows()


@pytest.fixture(scope="module")
def gemma(tiny_models) -> Path:
    """The tiny Gemma's directory."""
    return tiny_models.gemma


@pytest.fixture(scope="module")
def trained(gemma: Path, rows: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory):
    """:func:`train_tiny`'s short run, once per test module."""
    return train_tiny(gemma, rows, tmp_path_factory.mktemp("run"))
