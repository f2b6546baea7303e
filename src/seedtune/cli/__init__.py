"""The ``seedtune`` command line.

    seedtune compose [--adopt | --discard] [overrides ...]
    seedtune estimate [--json]                     LLM, Naver and crawl costs before any
    seedtune ask "QUESTION" [--rag]                 the tuned model answers (streamed)
    seedtune export [--out models/merged]          adapter merged into a standalone model
    seedtune batches [--cancel ID]                 the Batch API batches of llm.mode: batch
    seedtune serve [--print]                       vLLM serving the base and the adapter by name
    seedtune publish --model-repo O/N --dataset-repo O/N   adapter + dataset with cards to the Hub

Installed packages add commands through the ``seedtune.commands`` entry-point group (the
repository's stand-ins add ``sim``, ``tiny-models`` and ``demo``); ``seedtune --help`` lists
them with the rest.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

# command -> (module with ``main(argv) -> int``, one-line help); imported only when run, so
# `seedtune --help` does not pay for torch.
COMMANDS: dict[str, tuple[str, str]] = {
    "compose": ("seedtune.core.compose", "compose conf/ into params.yaml"),
    "estimate": ("seedtune.cli.estimate", "predict LLM dollars, Naver calls, crawl hours"),
    "ask": ("seedtune.cli.ask", "answer with the tuned model (--rag: grounded by search)"),
    "export": ("seedtune.cli.export", "merge models/adapter into a standalone model directory"),
    "batches": ("seedtune.cli.batches", "list (or --cancel) the Batch API batches of this machine"),
    "serve": ("seedtune.cli.serve", "print (or run) the vLLM command serving base + adapter"),
    "publish": ("seedtune.cli.publish", "push the adapter and the dataset, with cards, to the Hub"),
}
#: Where other installed packages register commands: ``name = "module:function"``, a
#: ``function(argv) -> int`` whose docstring's first line is its help.
PLUGIN_GROUP = "seedtune.commands"


def plugins() -> dict[str, EntryPoint]:
    """The commands installed packages add (a built-in name always wins)."""
    return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP) if ep.name not in COMMANDS}


def _runner(name: str, added: dict[str, EntryPoint]) -> Callable[[list[str]], int]:
    if name in COMMANDS:
        return importlib.import_module(COMMANDS[name][0]).main
    return added[name].load()


def _help(ep: EntryPoint) -> str:
    try:
        doc = ep.load().__doc__ or ""
    except Exception as exc:  # a broken plugin must not take --help down with it
        return f"(cannot load {ep.value}: {exc})"
    return doc.strip().splitlines()[0] if doc.strip() else ep.value


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``seedtune`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    added = plugins()
    if (
        not argv
        or argv[0] in ("-h", "--help")
        or (argv[0] not in COMMANDS and argv[0] not in added)
    ):
        print(__doc__.strip())
        print("\ncommands:")
        for name, (_, help_) in COMMANDS.items():
            print(f"  {name:12s} {help_}")
        for name, ep in sorted(added.items()):
            print(f"  {name:12s} {_help(ep)}")
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    import logging

    from seedtune.core.errors import run_main
    from seedtune.core.stage import setup_logging

    setup_logging(argv[0])
    logging.getLogger().setLevel(logging.INFO)
    command = _runner(argv[0], added)
    return run_main(f"seedtune {argv[0]}", lambda: command(argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
