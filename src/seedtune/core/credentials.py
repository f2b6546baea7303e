"""Secrets from the environment or a git-ignored ``.env``; never from params.

Values are returned to the caller and nowhere else: they are not logged, not written to
params.yaml, dvc.lock, caches, outputs or metrics.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from seedtune.core.errors import ConfigError
from seedtune.core.machine import exp_repository


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
    """Like :func:`get_secret` but returns None when unset. In a ``dvc exp run --queue``
    copy without a ``.env``, the repository's own ``.env`` is read."""
    path = Path(dotenv)
    if not path.is_file() and not path.is_absolute():
        repo = exp_repository()
        path = repo / path if repo is not None else path
    return os.environ.get(name) or _dotenv(path).get(name) or None


def hf_token() -> str | None:
    """HF_TOKEN for gated models such as google/gemma-2b-it (never logged)."""
    return optional_secret("HF_TOKEN")


def redact(text: str, secrets: list[str | None]) -> str:
    """``text`` with every secret value in ``secrets`` replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


#: Naver's keys (id, secret), needed by search, by the titles of queries and by ``seedtune
#: ask --rag``.
NAVER_KEYS = ("NAVER_CLIENT_ID", "NAVER_CLIENT_SECRET")


def naver_credentials() -> tuple[str | None, str | None]:
    """Naver's client id and secret from the environment or ``.env`` (None where unset: a
    client needs them only for what its cache lacks)."""
    client_id, secret = (optional_secret(name) for name in NAVER_KEYS)
    return client_id, secret


#: Redirect statuses that carry a ``Location`` to follow.
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
#: Same-origin redirect hops a credentialed client follows before giving up.
MAX_REDIRECTS = 5


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of ``url``, the port filled in for http/https (RFC 6454).

    A malformed URL (a bad port, a broken IPv6 literal) has the origin ``("", url, None)``,
    which matches nothing else: a redirect there is refused, never followed.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
        return parts.scheme.lower(), (parts.hostname or "").lower(), port
    except ValueError:
        return "", url, None


def same_origin(a: str, b: str) -> bool:
    """Whether credentials meant for ``a`` may be sent to ``b``: same scheme, host and port.

    ``requests`` strips only ``Authorization`` on a cross-host redirect (custom key headers
    such as Naver's go along), and a scheme change to http would send them in clear text.
    """
    return origin(a)[0] in ("http", "https") and origin(a) == origin(b)
