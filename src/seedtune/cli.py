"""The ``seedtune`` command line.

    seedtune compose [--conf conf] [--out params.yaml] [overrides ...]
    seedtune sim [--port 0 --port-file F ...]      loopback OpenAI + Naver simulators
    seedtune tiny-models DIR [--force]             tiny Gemma + e5 models built locally
    seedtune estimate [--json]                     LLM calls, tokens, dollars before any
    seedtune ask "QUESTION" [--rag]                 the tuned model answers (streamed)
    seedtune demo [--workdir DIR]                  the whole DAG offline, in minutes
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def _compose(argv: list[str]) -> int:
    from seedtune.compose import write_params

    ap = argparse.ArgumentParser(prog="seedtune compose",
                                 description="compose conf/ into params.yaml")
    ap.add_argument("--conf", default="conf")
    ap.add_argument("--out", default="params.yaml")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. train.lora.r=8")
    args = ap.parse_args(argv)
    write_params(args.out, args.conf, args.overrides, respect_exp=False)
    return 0


def _sim(argv: list[str]) -> int:
    from seedtune.sim import main

    return main(argv)


def _tiny(argv: list[str]) -> int:
    from seedtune.tiny import main

    return main(argv)


def _estimate(argv: list[str]) -> int:
    from seedtune.estimate import main

    return main(argv)


def _ask(argv: list[str]) -> int:
    from seedtune.ask import main

    return main(argv)


def _demo(argv: list[str]) -> int:
    from seedtune.demo import main

    return main(argv)


def _export(argv: list[str]) -> int:
    from seedtune.export import main

    return main(argv)


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "compose": (_compose, "compose conf/ into params.yaml"),
    "sim": (_sim, "run the loopback OpenAI + Naver simulators"),
    "tiny-models": (_tiny, "build tiny Gemma and e5 models locally"),
    "estimate": (_estimate, "predict LLM calls, tokens and dollars before spending any"),
    "ask": (_ask, "answer a question with the tuned model (--rag: grounded by search)"),
    "demo": (_demo, "run the whole pipeline offline with simulators and tiny models"),
    "export": (_export, "merge models/adapter into a standalone model directory"),
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``seedtune`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip())
        print("\ncommands:")
        for name, (_, help_) in COMMANDS.items():
            print(f"  {name:12s} {help_}")
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    import logging

    from seedtune.config import ConfigError
    from seedtune.stage import setup_logging

    setup_logging(argv[0])
    logging.getLogger().setLevel(logging.INFO)
    try:
        return COMMANDS[argv[0]][0](argv[1:])
    except ConfigError as exc:
        print(f"seedtune {argv[0]}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
