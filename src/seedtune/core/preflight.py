"""Pre-flight key checks: a missing key is found before a stage spends minutes, not after.

The LLM client asks for its key when its first uncached request goes out, which is right at
the start of queries and synthesize, but evaluate generates base and tuned answers for
minutes first, and in ``dvc exp run`` train runs for minutes before evaluate. So:

- evaluate checks the judge's key before generating (:func:`require_llm_key`);
- train, inside ``dvc exp run`` (an experiment is always evaluated), checks it before
  loading weights, and outside one (``dvc repro train`` may be all you want) warns;
- compose warns, one line per key that a stage after it will need and that is not set.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from seedtune.core.config import LLMConfig
from seedtune.core.credentials import NAVER_KEYS, optional_secret
from seedtune.core.errors import ConfigError
from seedtune.core.machine import load_machine

log = logging.getLogger(__name__)


def llm_key_name(machine: dict[str, Any] | None = None) -> str | None:
    """The variable ``llm.api_key_env`` names (None: the endpoint needs no key)."""
    settings = (load_machine() if machine is None else machine).get("llm") or {}
    return settings.get("api_key_env", LLMConfig.model_fields["api_key_env"].default)


def missing_keys(machine: dict[str, Any] | None = None) -> list[str]:
    """The keys the pipeline's stages may need that are neither exported nor in ``.env``."""
    llm = llm_key_name(machine)
    wanted = ([llm] if llm else []) + list(NAVER_KEYS)
    return [name for name in wanted if not optional_secret(name)]


def require_llm_key(api_key_env: str | None, who: str) -> None:
    """Fail with one line naming the variable when ``api_key_env`` is set but not given."""
    if api_key_env and not optional_secret(api_key_env):
        raise ConfigError(
            f"environment variable {api_key_env} is not set ({who}); export it "
            "or add it to .env (llm.api_key_env: null for a server without keys)"
        )


def check_before_training(root: Path = Path(".")) -> None:
    """The judge's key, before training: fatal inside ``dvc exp run``, else a warning."""
    name = llm_key_name(load_machine(root))
    who = "the judge in evaluate, which runs after train, needs it"
    if os.environ.get("DVC_EXP_NAME"):
        require_llm_key(name, who)
    elif name and not optional_secret(name):
        log.warning("environment variable %s is not set: %s", name, who)


def warn_missing_keys() -> None:
    """One warning per key a later stage will need that is not set (compose: offline
    stages need none, so this is no error)."""
    for name in missing_keys():
        log.warning(
            "environment variable %s is not set: the stages that call its service "
            "(queries, search, synthesize, evaluate) will fail unless their answers "
            "are cached; export it or add it to .env",
            name,
        )
