"""The LoRA adapter directory train writes (models/adapter): its PEFT config and the md5 of
its weights, read the same way by evaluate, the model cards, export, serve and publish."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from seedtune.core.errors import ConfigError
from seedtune.core.records import data_version

#: What PEFT calls an adapter's weights file (evaluate records its md5: which one it judged).
WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"


def adapter_config(adapter: Path | str) -> dict[str, Any]:
    """``adapter_config.json`` of a PEFT adapter directory, or one line saying how to get it."""
    path = Path(adapter) / CONFIG
    if not path.is_file():
        raise ConfigError(
            f"{adapter}: not a PEFT adapter directory (no {CONFIG}); run `dvc repro train` "
            "or `dvc pull` first"
        )
    config = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: not a JSON object")
    return config


def weights_md5(adapter: Path | str) -> str | None:
    """md5 of the adapter's weights file (None without one), as dvc.lock records it."""
    weights = Path(adapter) / WEIGHTS
    return data_version(weights) if weights.is_file() else None
