"""What the tests share: the repository root, and :class:`Workspace`, a scratch directory
in which a test runs a stage script the way ``dvc repro`` does (a subprocess, in its cwd)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]

# Offline everywhere: tests build their models locally and reach only loopback servers.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "DVC_NO_ANALYTICS": "1",
}


def need_browser() -> None:
    """Skip the calling test module unless playwright and a Chromium are installed (`make
    setup` installs both where it can: tests that open pages in a real browser)."""
    import pytest

    pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip(
            "chromium is not installed: apt-get install chromium (as root; `make setup` tries)",
            allow_module_level=True,
        )


def bench_module(name: str) -> Any:
    """``bench/<name>.py`` imported (the benchmarks are scripts beside each other, not a
    package), without leaving bench/ on ``sys.path``."""
    import importlib

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "bench"))


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated in place, nested dicts merged key by key."""
    for k, v in over.items():
        base[k] = merge(base.get(k) or {}, v) if isinstance(v, dict) else v
    return base


@cache
def _composed() -> str:
    from seedtune.core.compose import compose_config

    return json.dumps(compose_config(ROOT / "conf"))


def composed_params(**overrides: Any) -> dict[str, Any]:
    """The real conf/ composed (as params.yaml), with ``overrides`` merged per section."""
    return merge(json.loads(_composed()), overrides)


def jsonl(rows: list[dict[str, Any]]) -> str:
    """Rows as JSON Lines text."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def last_line(text: str) -> str:
    """The last non-empty line (progress bars end lines with carriage returns)."""
    return [line for line in re.split(r"[\r\n]", text) if line.strip()][-1]


def ranked_rows(n: int) -> list[dict[str, Any]]:
    """data/ranked.jsonl rows as rank writes them."""
    return [
        {
            "question": f"전세 계약 {i}번째 주의할 점은 무엇인가요?",
            "documents": [
                {
                    "passage": f"전세 계약 전 등기부등본을 확인하세요 {i}.",
                    "link": f"https://x/{i}",
                    "score": 0.9,
                }
            ],
        }
        for i in range(n)
    ]


class Workspace:
    """A directory with params.yaml and inputs where stage scripts run as DVC runs them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def params(self, **overrides: Any) -> Workspace:
        """Write params.yaml (the composed conf/ with the pipeline ``overrides`` merged per
        section) and conf/local/default.yaml (the machine settings among ``overrides``:
        endpoints, retries, devices, ``models``), as a user would split them."""
        from seedtune.core.machine import is_machine_key

        pipeline: dict[str, Any] = {}
        machine: dict[str, Any] = {}
        for section, values in overrides.items():
            if section == "models":
                machine["models"] = values
                continue
            for key, value in values.items():
                side = machine if is_machine_key(f"{section}.{key}") else pipeline
                side.setdefault(section, {})[key] = value
        self.write("params.yaml", yaml.safe_dump(composed_params(**pipeline), allow_unicode=True))
        self.write("conf/local/default.yaml", yaml.safe_dump(machine, allow_unicode=True))
        return self

    def write(self, rel: str, content: str | list[dict[str, Any]]) -> Path:
        """Write a text file (or rows as JSON Lines) at ``rel``."""
        path = self.path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else jsonl(content), encoding="utf-8")
        return path

    def copy_from_repo(self, rel: str) -> None:
        """Copy a file or directory of the repository (e.g. conf/accelerate) in."""
        src, dst = ROOT / rel, self.path / rel
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)

    def env(self, keys: dict[str, str] | None = None, drop: tuple[str, ...] = ()) -> dict[str, str]:
        """This process's environment, offline, without ``drop``, plus ``keys``."""
        env = {k: v for k, v in os.environ.items() if k not in drop}
        env.update({**OFFLINE_ENV, "PYTHONUNBUFFERED": "1", **(keys or {})})
        return env

    def command(self, stage: str) -> list[str]:
        """The stage's command line, as dvc.yaml runs it."""
        return [sys.executable, str(ROOT / "stages" / f"{stage}.py")]

    def run(
        self,
        stage: str,
        keys: dict[str, str] | None = None,
        drop: tuple[str, ...] = (),
        timeout: int = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``stages/<stage>.py`` here to completion."""
        return subprocess.run(
            self.command(stage),
            cwd=self.path,
            env=self.env(keys, drop),
            text=True,
            capture_output=True,
            timeout=timeout,
        )

    def popen(self, stage: str, keys: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``stages/<stage>.py`` here (for kill tests)."""
        return subprocess.Popen(
            self.command(stage),
            cwd=self.path,
            env=self.env(keys),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def metrics(self, stage: str) -> dict[str, Any]:
        """metrics/<stage>.json."""
        return json.loads((self.path / "metrics" / f"{stage}.json").read_text(encoding="utf-8"))

    def rows(self, rel: str) -> list[dict[str, Any]]:
        """The rows of a JSON Lines file here."""
        return [
            json.loads(x)
            for x in (self.path / rel).read_text(encoding="utf-8").splitlines()
            if x.strip()
        ]


def damage_line(segment: Path, offset: int = 0) -> None:
    """Flip one byte inside the JSON of the cache line at ``offset`` of ``segment`` (its
    checksum no longer matches: the entry must read as a miss)."""
    data = bytearray(segment.read_bytes())
    end = data.index(b"\n", offset)
    data[end - 2] ^= 0x01
    segment.write_bytes(bytes(data))
