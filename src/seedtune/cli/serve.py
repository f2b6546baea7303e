"""``seedtune serve``: the vLLM command that serves the base model and the adapter by name.

Run: ``seedtune serve [--print] [--adapter models/adapter] [--port 8000] [-- VLLM ARGS]``.
Prints ``vllm serve BASE --enable-lora --lora-modules tuned=models/adapter
--max-lora-rank R ...`` for the adapter dvc made (its rank, the base model of params.yaml,
where ``models:`` puts its weights), and runs it when vLLM is installed here (``--print``:
never). Then point evaluate and ``seedtune ask`` at it with the machine setting
``generate.base_url: http://127.0.0.1:PORT/v1`` (:mod:`seedtune.evaluation.remote`).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import shutil
import sys
from pathlib import Path

from seedtune.core import paths
from seedtune.core.adapter import adapter_config
from seedtune.core.config import load_params
from seedtune.core.errors import ConfigError
from seedtune.core.machine import resolve_model
from seedtune.evaluation.remote import generate_settings

#: The LoRA ranks vLLM's ``--max-lora-rank`` takes; it must be at least the adapter's rank.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def lora_rank(adapter: Path) -> int:
    """The adapter's rank (``r`` of its adapter_config.json)."""
    r = adapter_config(adapter).get("r")
    if not isinstance(r, int) or r < 1:
        raise ConfigError(f"{adapter}/adapter_config.json: r: not a positive integer (got {r!r})")
    return r


def vllm_command(
    base_id: str, revision: str, adapter: Path, name: str, port: int, extra: list[str]
) -> list[str]:
    """``vllm serve`` for ``base_id`` with ``adapter`` served as ``name``: the base under
    its id (``--served-model-name`` when ``models:`` maps it to a local directory), the
    smallest ``--max-lora-rank`` vLLM takes that holds the adapter's rank."""
    local = resolve_model(base_id)
    r = lora_rank(adapter)
    rank = next((x for x in VLLM_LORA_RANKS if x >= r), r)
    argv = ["vllm", "serve", local]
    if local != base_id:
        argv += ["--served-model-name", base_id]
    if revision != "main" and local == base_id:
        argv += ["--revision", revision]
    argv += ["--enable-lora", "--lora-modules", f"{name}={adapter}", "--max-lora-rank", str(rank)]
    return [*argv, "--port", str(port), *extra]


def main(argv: list[str] | None = None) -> int:
    """Print (or run, when vLLM is installed) the vLLM command for the adapter."""
    argv = list(argv or [])
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(prog="seedtune serve", description=__doc__.splitlines()[0])
    ap.add_argument("--adapter", default=paths.ADAPTER, help="the LoRA adapter directory")
    ap.add_argument("--name", help="its model name (default: generate.tuned_model)")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--params", default=paths.PARAMS_FILE)
    ap.add_argument("--print", action="store_true", help="print the command, never run it")
    args = ap.parse_args(argv)
    p = load_params(args.params, ("train",))
    cmd = vllm_command(
        p.train.model.name_or_path,
        p.train.model.revision,
        Path(args.adapter),
        args.name or generate_settings().tuned_model,
        args.port,
        extra,
    )
    runnable = importlib.util.find_spec("vllm") is not None and shutil.which("vllm")
    if args.print or not runnable:
        if not args.print:
            print("vLLM is not installed here; on a machine with it, run:", file=sys.stderr)
        print(shlex.join(cmd))
        print(
            f"then set generate.base_url: http://127.0.0.1:{args.port}/v1 in "
            "conf/local/default.yaml (or SEEDTUNE_GENERATE_BASE_URL)",
            file=sys.stderr,
        )
        return 0
    print(f"seedtune serve: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    os.execvp(cmd[0], cmd)  # the server in this process's place: Ctrl-C stops it
    return 0  # not reached
