"""``seedtune demo``: the whole pipeline, offline, with simulators and tiny models.

Run: ``make demo`` (or ``seedtune demo``). It copies this repository's files into a scratch
workspace (default ``.cache/demo``), points that copy's ``conf/local/default.yaml`` at a
loopback ``seedtune sim`` and at tiny models built locally, runs plain ``dvc repro`` there,
and prints where every output is and ``dvc metrics show``. Your own ``conf/local/`` and
data are never touched, and the real services stay the default config.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from seedtune.core import paths
from seedtune.core.compose import set_conf_values
from seedtune.core.errors import ConfigError

# the workspace's simulator record: the demo writes it, `seedtune sim --workspace` reads it
from seedtune_sandbox.sim.workspace import save_sim_state

log = logging.getLogger(__name__)

# Credentials for the simulator only, made fresh per process so that a leak test can look
# for their exact values in every file the pipeline writes (they appear in no source file).
_TOKEN = secrets.token_hex(8)
SIM_ENV = {
    "OPENAI_API_KEY": f"sk-sim-{_TOKEN}",
    "NAVER_CLIENT_ID": f"sim-id-{_TOKEN}",
    "NAVER_CLIENT_SECRET": f"sim-secret-{_TOKEN}",
}

#: The file that marks a directory as a demo workspace (only such a directory is replaced).
MARKER = ".seedtune-demo"

#: The real models' ids (the defaults in conf/); the demo maps them to tiny stand-ins.
GEMMA_ID = "google/gemma-2b-it"
E5_ID = "intfloat/multilingual-e5-small"

OUTPUTS = [
    paths.PARAMS_FILE,
    paths.QUESTIONS,
    paths.DOCUMENTS,
    paths.PAGES,
    paths.RANKED,
    paths.INSTRUCTIONS,
    paths.DATASET_CARD,
    paths.DATASET_PAGE,
    paths.ADAPTER,
    "metrics/train/plots/metrics",  # dvclive's curves: its layout, not one of ours
    paths.EVALUATION_REPORT,
]


def sim_config(**overrides: Any) -> Any:
    """A :class:`~seedtune_sandbox.sim.SimConfig` that accepts exactly the :data:`SIM_ENV` keys,
    with the reference judge (longer, reference-like answers win), so the win rate moves."""
    from seedtune_sandbox.sim import SimConfig

    return SimConfig(
        **{
            "openai_api_key": SIM_ENV["OPENAI_API_KEY"],
            "naver_client_id": SIM_ENV["NAVER_CLIENT_ID"],
            "naver_client_secret": SIM_ENV["NAVER_CLIENT_SECRET"],
            "judge": "reference",
            **overrides,
        }
    )


def repo_files(repo: Path) -> list[str]:
    """Files git tracks or would track (not ignored) in ``repo``."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=repo,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [f for f in out.split("\0") if f and (repo / f).is_file()]


def host_port(url: str) -> str:
    """``host:port`` (``[v6]:port``) of an ``http://`` URL, as ``crawl.allow_networks``
    names an exact address."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"[{host}]:{parts.port}" if ":" in host else f"{host}:{parts.port}"


def local_config(sim_url: str, models: Any, page_origins: Iterable[str]) -> dict[str, Any]:
    """conf/local/default.yaml for an offline run: machine settings only (simulator URLs,
    the tiny models standing in for the real ids through ``models:``, and the simulator's
    page origins, :attr:`SimServer.page_origins`, as the only loopback addresses crawled)."""
    return {
        "llm": {"base_url": f"{sim_url}/v1"},
        "search": {"base_url": sim_url, "rps": 1000},
        # the simulator's page hosts are loopback: polite pacing would only slow the demo;
        # the crawler refuses loopback addresses but these exact ones (not 127.0.0.0/8)
        "crawl": {
            "host_rps": 50,
            "per_host": 4,
            "timeout_s": 10,
            "max_retries": 1,
            "allow_networks": sorted(host_port(url) for url in page_origins),
        },
        "rank": {"device": "cpu"},
        "models": {GEMMA_ID: str(models.gemma), E5_ID: str(models.e5)},
    }


def demo_params() -> dict[str, Any]:
    """Pipeline params for a run of a few minutes on a CPU, committed into the workspace's
    conf/ (sizes are pipeline params: they change what the outputs are)."""
    return {
        "llm.model": "sim-gpt",
        "queries.per_seed": 4,
        # both sources, as the tutorial: a few forum titles per seed word and category
        "queries.titles.per_seed": 4,
        "search.categories": ["blog", "news"],
        # a random-weight model needs a high learning rate for the tuned answers to visibly
        # differ from the base model's within a demo's few steps
        "train.max_steps": 40,
        "train.optim.lr": 0.01,
        "train.logging_steps": 2,
        "train.eval_steps": 10,
        "train.max_length": 256,
        "evaluate.max_new_tokens": 32,
        "evaluate.max_questions": 12,
    }


def prepare_workspace(
    repo: Path,
    dest: Path,
    local: dict[str, Any] | None,
    seeds: list[str] | None = None,
    params: dict[str, Any] | None = None,
) -> Path:
    """A fresh git + DVC workspace at ``dest``: ``repo``'s files, ``local`` machine settings
    in conf/local/default.yaml, and ``params`` (dotted keys) written into its conf/ files.

    ``dest`` is replaced only when it is a workspace this function made (it carries
    :data:`MARKER`); see :func:`check_workdir`.
    """
    check_workdir(repo, dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    (dest / MARKER).write_text("made by `seedtune demo`; replaced by the next run\n")
    for rel in repo_files(repo):
        if rel.startswith("conf/local/"):
            continue  # never carry one machine's settings into the copy
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, dest / rel)
    if seeds is not None:
        (dest / "data" / "seed_words.txt").write_text("\n".join(seeds) + "\n", encoding="utf-8")
    if params:
        set_conf_values(dest / "conf", params)
    if local is not None:
        (dest / "conf" / "local").mkdir(parents=True, exist_ok=True)
        (dest / "conf" / "local" / "default.yaml").write_text(
            yaml.safe_dump(local, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        [
            "git",
            "-c",
            "user.name=seedtune",
            "-c",
            "user.email=demo@seedtune.invalid",
            "commit",
            "-qm",
            "seedtune workspace",
        ],
    ):
        subprocess.run(cmd, cwd=dest, check=True)
    return dest


def check_workdir(repo: Path, dest: Path) -> None:
    """Refuse a demo workdir that would delete what the demo did not create.

    Refused: this repository or any directory holding it or the current directory, and an
    existing non-empty directory without :data:`MARKER` (a git clone, your files).
    """
    dest, here = dest.resolve(), Path.cwd().resolve()
    for inside in (repo.resolve(), here):
        if inside == dest or dest in inside.parents:
            raise ConfigError(
                f"--workdir {dest}: holds {inside}; the demo replaces its "
                "workdir, so pick a scratch directory such as .cache/demo"
            )
    if dest.is_dir() and any(dest.iterdir()) and not (dest / MARKER).is_file():
        what = "a git repository" if (dest / ".git").exists() else "files the demo did not make"
        raise ConfigError(
            f"--workdir {dest}: holds {what}; the demo replaces its workdir, so "
            "pick an empty or new directory"
        )
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"--workdir {dest}: is a file")


def tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for dvc subprocesses: this interpreter's bin dir first on PATH, offline."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "DVC_NO_ANALYTICS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def main(argv: list[str] | None = None) -> int:
    """Build tiny models, start the simulators, ``dvc repro`` in a scratch workspace."""
    from seedtune_sandbox.sim import SimServer
    from seedtune_sandbox.tiny import build_tiny_models

    ap = argparse.ArgumentParser(prog="seedtune demo", description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=".cache/demo", help="scratch workspace (recreated)")
    ap.add_argument("--models", default=".cache/tiny-models", help="tiny model cache")
    args = ap.parse_args(argv)
    repo = Path.cwd()
    if not (repo / "dvc.yaml").is_file():
        print(
            "seedtune demo: error: run it from the repository root (no dvc.yaml here)",
            file=sys.stderr,
        )
        return 2
    check_workdir(repo, Path(args.workdir))  # before minutes of model building
    t0 = time.perf_counter()
    models = build_tiny_models(Path(args.models).resolve())
    with SimServer(sim_config()) as sim:
        work = prepare_workspace(
            repo,
            Path(args.workdir).resolve(),
            local_config(sim.url, models, sim.page_origins.values()),
            params=demo_params(),
        )
        save_sim_state(work, sim)
        log.info("workspace %s, simulators at %s", work, sim.url)
        env = tool_env(SIM_ENV)
        rc = subprocess.run(["dvc", "repro"], cwd=work, env=env).returncode
        if rc != 0:
            print(
                f"seedtune demo: error: `dvc repro` failed (exit {rc}) in {work}", file=sys.stderr
            )
            return rc
        calls = sim.stats()
        calls["pages"] = {k: v for k, v in calls["pages"].items() if k != "by_url"}
        print(
            f"\nDemo pipeline finished in {time.perf_counter() - t0:.0f} s "
            f"(simulator calls: {calls}).\nOutputs in {work}:"
        )
        for rel in OUTPUTS:
            print(f"  {work / rel}")
        print("\n$ dvc metrics show")
        sys.stdout.flush()
        subprocess.run(["dvc", "metrics", "show"], cwd=work, env=env, check=False)
    print(next_steps(work))
    return 0


def next_steps(work: Path) -> str:
    """The demo's last lines: how to keep working in its workspace."""
    venv = Path(sys.executable).parent
    return (
        f"\nThe simulator stopped with the demo. To keep working in the workspace, bring it "
        f"back (same ports,\nthe keys in {work / '.env'}) and follow the README there:\n"
        f"  seedtune sim --workspace {work} &\n"
        f"  cd {work} && source {venv / 'activate'}\n"
        f"  dvc exp run -S train.lora.r=8 && dvc exp show\n"
    )
