"""Imported by every stage script before anything of seedtune (``import _guard``).

A stage run where the project's environment is not active (``dvc repro`` from a shell
without ``.venv`` activated: ``python`` is then the system one, without seedtune) or where
it lacks a dependency (``torch`` not installed) ends with one line naming the fix and exit
status 2, not a ``ModuleNotFoundError`` traceback; so does a Ctrl-C before the stage got
going (while torch imports). Standard library only: it must work where nothing else is
installed. Not a dvc.yaml dep: it changes no output.
"""

import sys
from pathlib import Path

EXIT_USER_ERROR = 2  # seedtune.core.errors.EXIT_USER_ERROR, which may not be importable here


def _missing_module(kind: type[BaseException], exc: BaseException, tb: object) -> None:
    stage = Path(sys.argv[0]).stem or "stage"
    name = getattr(exc, "name", None) or ""
    if issubclass(kind, KeyboardInterrupt):
        print(f"{stage}: interrupted before it started", file=sys.stderr)
        raise SystemExit(130)
    if issubclass(kind, ModuleNotFoundError) and name == "seedtune":
        print(
            f"{stage}: error: {sys.executable} has no seedtune: the project's environment "
            "is not active; run `source .venv/bin/activate` (`make setup` creates it) and "
            "rerun",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_USER_ERROR)
    if issubclass(kind, ModuleNotFoundError) and name and name.split(".")[0] != "seedtune":
        print(
            f"{stage}: error: no module named {name!r} in {sys.executable}: a dependency "
            "is missing; run `make setup`",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_USER_ERROR)
    # a missing seedtune.* module is a bug, not a setup step: keep its traceback
    sys.__excepthook__(kind, exc, tb)  # type: ignore[arg-type]


sys.excepthook = _missing_module
