"""The model a server answered as (the answer's ``model``), against the one asked for.

OpenAI answers ``gpt-4o-mini`` as ``gpt-4o-mini-2024-07-18``: the same model. A local
server may answer any name as its own model (``tiny-gemma``, ``/models/x.gguf``): then rows
record the served model, the run is priced only if the price table names it, and its
answers are never reused as another backend's.

Names compare by :func:`family`: the last path component, without a model-file extension,
a dated suffix (``-2024-07-18``, ``-0613``) or case; ``models/x.gguf`` serves ``x``.
Backends compare by :func:`identity`, which keeps the date: another snapshot is another
model, whose answers are asked again.

The cache (see :class:`~seedtune.llm.client.LLMClient`): the key stays the request's (so
moving the same OpenAI model between endpoints still hits) and each entry records its
served model; an entry is reused only when this endpoint serves that model now, known from
the run's first live answer. Until then an entry is trusted when its served model is the
configured name (or an entry older than this record, which counts as the configured name);
an entry served as another model waits for that first answer. An entry displaced by
another backend's answer is kept under :func:`served_key`, so switching back hits again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath

from seedtune.core.cache import cache_key

_MODEL_FILE = re.compile(r"\.(gguf|bin|safetensors|pt|onnx)$", re.IGNORECASE)
_DATED = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


def identity(name: str) -> str:
    """A backend's model id as compared between answers (path and extension dropped)."""
    return _MODEL_FILE.sub("", PurePosixPath(name.replace("\\", "/")).name or name).lower()


def family(name: str) -> str:
    """A model name without its dated suffix, as compared with ``llm.model``."""
    return _DATED.sub("", identity(name))


def same_model(served: str | None, configured: str) -> bool:
    """Whether an answer served as ``served`` is ``configured``'s (None: the server did not
    say, so it is taken at its word)."""
    return served is None or family(served) == family(configured)


def reusable(entry_served: str | None, current: str | None, configured: str) -> bool | None:
    """Whether a cache entry served as ``entry_served`` (None: recorded before served models
    were) may answer for an endpoint that serves ``current`` (None: not known yet). None:
    it cannot be told until the endpoint's served model is known."""
    if current is None:
        return True if same_model(entry_served, configured) else None
    if entry_served is None:
        return same_model(current, configured)
    return identity(entry_served) == identity(current)


def served_key(key: str, served: str) -> str:
    """Where an entry of another backend than the key's newest answer is kept."""
    return cache_key({"request": key, "served": identity(served)})


def price_name(
    configured: str, served: str | None, prices: Mapping[str, object], tier: str | None = None
) -> str | None:
    """The price table's name for an answer served as ``served`` to a request for
    ``configured`` (``name@tier`` first when a service tier is set); None: unpriced."""
    names = [served] if served else []
    if same_model(served, configured):
        names.append(configured)
    elif served:
        names.append(_DATED.sub("", served))
    for name in names:
        for candidate in ([f"{name}@{tier}"] if tier else []) + [name]:
            if candidate in prices:
                return candidate
    return None
