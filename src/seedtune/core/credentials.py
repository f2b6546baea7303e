"""Secrets from the environment or a git-ignored ``.env``; never from params.

Values are returned to the caller and nowhere else: they are not logged, not written to
params.yaml, dvc.lock, caches, outputs or metrics.
"""

from __future__ import annotations

import os
from pathlib import Path

from seedtune.core.errors import ConfigError


def _dotenv(path: Path) -> dict[str, str]:
    """The variables of a .env file, parsed by python-dotenv (quotes, ``export``, inline
    ``# comments`` after unquoted values, escapes), without touching ``os.environ``."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def get_secret(name: str, purpose: str, dotenv: Path | str = ".env") -> str:
    """The value of environment variable ``name`` (or its line in ``.env``).

    Raises :class:`ConfigError` naming the variable when it is unset or empty.
    """
    value = optional_secret(name, dotenv)
    if not value:
        raise ConfigError(
            f"environment variable {name} is not set ({purpose}); export it or add it to .env"
        )
    return value


def optional_secret(name: str, dotenv: Path | str = ".env") -> str | None:
    """Like :func:`get_secret` but returns None when unset."""
    return os.environ.get(name) or _dotenv(Path(dotenv)).get(name) or None


def hf_token() -> str | None:
    """HF_TOKEN for gated models such as google/gemma-2b-it (never logged)."""
    return optional_secret("HF_TOKEN")


def redact(text: str, secrets: list[str | None]) -> str:
    """``text`` with every secret value in ``secrets`` replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
