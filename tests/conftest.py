"""Shared fixtures: the repo root, tiny models (built once), and a running simulator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_models():
    """Tiny Gemma + e5 built locally, cached across runs in .cache/tiny-models."""
    from seedtune.tiny import build_tiny_models

    return build_tiny_models(ROOT / ".cache" / "tiny-models")


@pytest.fixture()
def sim() -> Iterator[object]:
    """A fresh loopback simulator with the demo's credentials."""
    from seedtune.demo import sim_config
    from seedtune.sim import SimServer

    with SimServer(sim_config()) as server:
        yield server
