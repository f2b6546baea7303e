"""Shared fixtures: tiny models (built once), a running simulator, a stage workspace."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import OFFLINE_ENV, ROOT, Workspace

for _key, _value in OFFLINE_ENV.items():
    os.environ.setdefault(_key, _value)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_models():
    """Tiny Gemma + e5 built locally, cached across runs in .cache/tiny-models."""
    from seedtune.offline.tiny import build_tiny_models

    return build_tiny_models(ROOT / ".cache" / "tiny-models")


@pytest.fixture()
def sim() -> Iterator[object]:
    """A fresh loopback simulator with the demo's credentials."""
    from seedtune.offline.demo import sim_config
    from seedtune.offline.sim import SimServer

    with SimServer(sim_config()) as server:
        yield server


@pytest.fixture()
def workspace(tmp_path: Path) -> Workspace:
    """A scratch directory to run stage scripts in (see :class:`support.Workspace`)."""
    return Workspace(tmp_path / "ws")
