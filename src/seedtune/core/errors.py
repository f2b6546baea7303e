"""One error policy for stages and the CLI.

Errors a user can fix (a param, an input file, a key, a quota, an outside service that is
down) derive from :class:`SeedtuneError`: :func:`run_main`, which runs every stage and every
``seedtune`` command, prints them as one line,
``<prog>: error: <what to fix>``, with exit status :data:`EXIT_USER_ERROR`. A full disk (or
quota) is one line too: what was written before it is intact (caches append whole lines,
outputs are replaced atomically), so freeing space and rerunning is the fix. Anything else
(a bug, CUDA out of memory) is not caught and keeps its traceback.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable

#: Exit status of a stage or command that stopped on a user-fixable error.
EXIT_USER_ERROR = 2


class SeedtuneError(Exception):
    """Base of every error the user can fix; its message is one line naming what to fix."""


class ConfigError(SeedtuneError):
    """A params.yaml or conf/ value, or a missing variable or model, to fix.

    ``problems`` lists every problem found (one line each) when there are several; the
    message itself stays one line.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class InputError(SeedtuneError):
    """An input file that is missing, empty, undecodable or of the wrong shape."""


class QuotaError(SeedtuneError):
    """A quota is spent (Naver's daily calls, an LLM account's credit): stop, keep what was paid."""


class ServiceError(SeedtuneError):
    """An outside service refuses or keeps failing after the retries (transport, 5xx)."""


class RejectRateError(SeedtuneError):
    """More items were rejected than ``llm.max_reject_rate`` allows."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run_main(prog: str, main: Callable[[], int | None]) -> int:
    """Call ``main`` and return its exit status (None counts as 0).

    A :class:`SeedtuneError` becomes one stderr line, ``<prog>: error: <what to fix>`` (one
    per problem for a :class:`ConfigError` that lists several), and status
    :data:`EXIT_USER_ERROR`; so does an ``OSError`` for a full disk or quota
    (:func:`disk_full`). Anything else propagates with its traceback.
    """
    try:
        return main() or 0
    except SeedtuneError as exc:
        lines = getattr(exc, "problems", None) or [one_line(exc)]
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        lines = [disk_full(exc)]
    sys.stdout.flush()
    for line in lines:
        print(f"{prog}: error: {line}", file=sys.stderr)
    return EXIT_USER_ERROR


def disk_full(exc: OSError) -> str:
    """The one line for a write that found the disk (or the user's quota) full."""
    what = "disk quota exceeded" if exc.errno == errno.EDQUOT else "disk full"
    where = f" writing {exc.filename}" if exc.filename else ""
    return f"{what}{where}: free space and rerun; nothing cached is lost"
