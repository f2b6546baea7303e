"""Shared fixtures: tiny models (built once), a running simulator, a stage workspace.

Both test folders use them (tests/ and sandbox/tests/): each conftest.py star-imports this
module, which pytest finds through the ``pythonpath`` setting in pyproject.toml."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import OFFLINE_ENV, ROOT, Workspace

for _key, _value in OFFLINE_ENV.items():
    os.environ.setdefault(_key, _value)
# tests never count Naver calls in this machine's real ledger (module-scoped workspaces too)
os.environ["SEEDTUNE_QUOTA_LEDGER"] = str(
    Path(tempfile.mkdtemp(prefix="seedtune-quota-")) / "naver_quota.sqlite3"
)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_models():
    """Tiny Gemma + e5 built locally, cached across runs in .cache/tiny-models."""
    from seedtune_sandbox.tiny import build_tiny_models

    return build_tiny_models(ROOT / ".cache" / "tiny-models")


@pytest.fixture()
def sim() -> Iterator[object]:
    """A fresh loopback simulator with the demo's credentials."""
    from seedtune_sandbox.demo import sim_config
    from seedtune_sandbox.sim import SimServer

    with SimServer(sim_config()) as server:
        yield server


@pytest.fixture()
def workspace(tmp_path: Path) -> Workspace:
    """A scratch directory to run stage scripts in (see :class:`support.Workspace`)."""
    return Workspace(tmp_path / "ws")


@pytest.fixture(autouse=True)
def quota_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test counts Naver calls in a ledger of its own, never the machine's."""
    path = tmp_path / "naver_quota.sqlite3"
    monkeypatch.setenv("SEEDTUNE_QUOTA_LEDGER", str(path))
    return path
