"""Checkpoints for resuming an interrupted train stage, and what makes one safe to resume.

``models/checkpoints/`` (git-ignored, not a DVC output) belongs to one run: its params,
seed and data (:func:`fingerprint`); anything else starts fresh. A checkpoint is resumed
only when it is complete: a kill while the trainer was writing one leaves a directory
without ``trainer_state.json`` or with a truncated ``optimizer.pt``, which would otherwise
block every later run. The newest complete one wins; the others are skipped, saying why.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import zipfile
from pathlib import Path

from seedtune.core.cache import cache_key
from seedtune.core.config import TrainConfig
from seedtune.core.records import data_version

log = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"checkpoint-(\d+)")
#: What the trainer writes last into a checkpoint: without it, the checkpoint is partial.
STATE = "trainer_state.json"


def fingerprint(cfg: TrainConfig, seed: int, data: Path) -> str:
    """What a checkpoint belongs to: every train param, the seed and the data's bytes."""
    return cache_key({"train": cfg.model_dump(), "seed": seed, "data": data_version(data)})


def prepare_checkpoints(root: Path, cfg: TrainConfig, seed: int, data: Path) -> Path:
    """The checkpoint directory, emptied when params or data differ from its last run.

    Resuming is only sound for the same run: a checkpoint of r=4 cannot continue as r=8.
    """
    stamp = root / "fingerprint.txt"
    current = fingerprint(cfg, seed, data)
    if root.exists() and (not stamp.is_file() or stamp.read_text().strip() != current):
        log.info("params or data changed since the checkpoints in %s: starting fresh", root)
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp.write_text(current + "\n")
    return root


def clear_checkpoints(root: Path) -> None:
    """Drop the checkpoints of a finished run: a forced rerun must train, not resume at the end."""
    shutil.rmtree(root, ignore_errors=True)


def problem(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed from, or None when it is complete.

    Reads every file's framing (JSON, the safetensors header, torch's zip archives and their
    CRCs), which is cheap for a LoRA run's few megabytes.
    """
    try:
        state = json.loads((checkpoint / STATE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {STATE}"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return f"{STATE} is damaged"
    if not isinstance(state, dict) or "global_step" not in state:
        return f"{STATE} has no global_step"
    weights = list(checkpoint.glob("*.safetensors"))
    if not weights:
        return "no weights (*.safetensors)"
    for path in sorted(checkpoint.iterdir()):
        why = _damaged(path)
        if why:
            return f"{path.name} {why}"
    return None


def _damaged(path: Path) -> str | None:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), "np"):
                return None
        except (OSError, SafetensorError) as exc:
            return f"is damaged ({str(exc).splitlines()[0][:80]})"
    if path.suffix in (".pt", ".pth", ".bin"):  # torch.save writes zip archives
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (OSError, zipfile.BadZipFile, EOFError):
            return "is truncated or damaged"
        return f"is damaged ({bad})" if bad else None
    if path.suffix == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return "is not valid JSON"
    return None


def latest_complete(root: Path) -> Path | None:
    """The newest complete ``checkpoint-N`` under ``root``, or None (a fresh start)."""
    found = sorted(
        (int(m.group(1)), p)
        for p in root.glob("checkpoint-*")
        if p.is_dir() and (m := _CHECKPOINT.fullmatch(p.name))
    )
    for _, path in reversed(found):
        why = problem(path)
        if why is None:
            return path
        log.warning("not resuming from %s: %s (interrupted while it was written?)", path, why)
    if found:
        log.warning("no complete checkpoint in %s: training starts fresh", root)
    return None
