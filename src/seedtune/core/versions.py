"""The library versions seedtune needs, checked before any work.

pip keeps an older transformers already on a machine image when it satisfies the floors in
pyproject.toml, so the floors are what the code calls (transformers 5.24 for
``activation_checkpointing`` in ``TrainingArguments``: 5.17 rejects it; TRL 1.16 for its
``SFTConfig`` fields). One source of truth: the installed seedtune's own requirements.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, requires, version

from packaging.requirements import Requirement


def unmet(names: tuple[str, ...], dist: str = "seedtune") -> list[str]:
    """One line per requirement among ``names`` that the installed version does not meet;
    [] when seedtune runs from a source tree without installed metadata."""
    try:
        lines = requires(dist) or []
    except PackageNotFoundError:
        return []
    problems = []
    for line in lines:
        req = Requirement(line)
        if req.name not in names or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        try:
            have = version(req.name)
        except PackageNotFoundError:
            problems.append(
                f"{req.name} is not installed; seedtune needs {req} "
                "(`make setup` or `pip install -e .`)"
            )
            continue
        if not req.specifier.contains(have, prereleases=True):
            problems.append(
                f"{req.name} {have} is installed; seedtune needs {req} (pip install -U '{req}')"
            )
    return problems
