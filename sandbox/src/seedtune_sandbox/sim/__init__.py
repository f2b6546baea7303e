"""Loopback simulator of the OpenAI Chat Completions and Naver Search HTTP APIs.

Lets the real ``openai`` and ``requests`` clients run offline, with deterministic Korean
answers and seeded fault injection.  ``python -m seedtune_sandbox.sim --help`` for the CLI;
``SimServer(SimConfig(...))`` for in-process use (see ``seedtune_sandbox.sim.server``).
"""

from seedtune_sandbox.sim.server import SimConfig, SimServer, main

__all__ = ["SimConfig", "SimServer", "main"]
