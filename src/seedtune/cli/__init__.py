"""The ``seedtune`` command line.

seedtune compose [--adopt | --discard] [overrides ...]
seedtune sim [--port 0 | --workspace DIR ...]  loopback OpenAI + Naver simulators
seedtune tiny-models DIR [--force]             tiny Gemma + e5 models built locally
seedtune estimate [--json]                     LLM, Naver and crawl costs before any
seedtune ask "QUESTION" [--rag]                 the tuned model answers (streamed)
seedtune demo [--workdir DIR]                  the whole DAG offline, in minutes
seedtune export [--out models/merged]          adapter merged into a standalone model
seedtune serve [--print]                       vLLM serving the base and the adapter by name
seedtune publish --model-repo O/N --dataset-repo O/N   adapter + dataset with cards to the Hub
"""

from __future__ import annotations

import importlib
import sys

# command -> (module with ``main(argv) -> int``, one-line help); imported only when run, so
# `seedtune --help` does not pay for torch.
COMMANDS: dict[str, tuple[str, str]] = {
    "compose": ("seedtune.core.compose", "compose conf/ into params.yaml"),
    "sim": ("seedtune.offline.sim", "run the loopback OpenAI + Naver simulators"),
    "tiny-models": ("seedtune.offline.tiny", "build tiny Gemma and e5 models locally"),
    "estimate": ("seedtune.cli.estimate", "predict LLM dollars, Naver calls, crawl hours"),
    "ask": ("seedtune.cli.ask", "answer with the tuned model (--rag: grounded by search)"),
    "demo": ("seedtune.offline.demo", "the whole pipeline offline: simulators, tiny models"),
    "export": ("seedtune.cli.export", "merge models/adapter into a standalone model directory"),
    "serve": ("seedtune.cli.serve", "print (or run) the vLLM command serving base + adapter"),
    "publish": ("seedtune.cli.publish", "push the adapter and the dataset, with cards, to the Hub"),
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

    from seedtune.core.errors import run_main
    from seedtune.core.stage import setup_logging

    setup_logging(argv[0])
    logging.getLogger().setLevel(logging.INFO)
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return run_main(f"seedtune {argv[0]}", lambda: module.main(argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
