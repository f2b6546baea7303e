"""The ``seedtune`` subcommands this package adds, through the ``seedtune.commands`` entry
points in sandbox/pyproject.toml.

Each is a light function (its docstring's first line is the help ``seedtune --help``
shows) that imports its module only when run, so listing them costs no torch import.
"""

from __future__ import annotations


def sim(argv: list[str]) -> int:
    """run the loopback OpenAI + Naver simulators (--workspace DIR: a demo's again)"""
    from seedtune_sandbox.sim.server import main

    return main(argv, prog="seedtune sim")


def tiny_models(argv: list[str]) -> int:
    """build tiny Gemma and e5 models locally"""
    from seedtune_sandbox.tiny import main

    return main(argv)


def demo(argv: list[str]) -> int:
    """the whole pipeline offline: simulators, tiny models"""
    from seedtune_sandbox.demo import main

    return main(argv)
