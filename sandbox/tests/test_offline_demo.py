"""seedtune demo's workspace: it replaces only what it made itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from seedtune_sandbox.demo import MARKER, prepare_workspace
from support import ROOT

from seedtune.core.errors import ConfigError


def _demo(workdir: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seedtune.cli", "demo", "--workdir", str(workdir)],
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=120,
    )


def test_demo_refuses_the_checkout_itself_and_deletes_nothing(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    (clone / "my-notes.txt").write_text("uncommitted work")
    for workdir in (Path("."), clone.parent):
        proc = _demo(workdir, clone)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert proc.stderr.strip().splitlines()[-1].startswith("seedtune demo: error: --workdir")
    assert (clone / ".git").is_dir() and (clone / "my-notes.txt").read_text() == "uncommitted work"


def test_demo_refuses_a_directory_it_did_not_make(tmp_path: Path) -> None:
    other = tmp_path / "other-repo"
    (other / ".git").mkdir(parents=True)
    (other / "data.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="holds a git repository"):
        prepare_workspace(ROOT, other, None)
    assert (other / "data.txt").read_text() == "keep me"


def test_demo_replaces_its_own_workspace(tmp_path: Path) -> None:
    ws = prepare_workspace(ROOT, tmp_path / "demo", None)
    assert (ws / MARKER).is_file() and (ws / ".git").is_dir()
    (ws / "stale.txt").write_text("from the last run")
    ws = prepare_workspace(ROOT, tmp_path / "demo", None)
    assert not (ws / "stale.txt").exists() and (ws / "dvc.yaml").is_file()
