"""Content-addressed response cache shared by the LLM and Naver clients.

One JSON file per answer at ``<root>/<key[:2]>/<key>.json``, written atomically the moment
the answer arrives: a crash or ``kill -9`` loses at most the requests in flight, and DVC
(``persist: true`` outputs) pushes and pulls the cache like any other data, so a teammate
who pulls reruns for free. Keys hash what determines the answer (model, messages, sampling
params, schema, template version), never the endpoint URL or a key.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from seedtune.core.records import atomic_write_text

log = logging.getLogger(__name__)


def cache_key(payload: Any) -> str:
    """sha256 of the canonical JSON of ``payload``."""
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """A directory of JSON answers addressed by :func:`cache_key`."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """Where the entry for ``key`` lives."""
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Any | None:
        """The stored value, or None.

        A damaged entry (unreadable, not JSON, not ``{"key": <this key>, "value": ...}``) is
        never trusted: it is logged with its path and counts as a miss, so it is asked again
        and overwritten.
        """
        path = self.path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            log.warning("ignoring damaged cache entry %s (%s)", path, type(exc).__name__)
            return None
        if not (isinstance(entry, dict) and entry.get("key") == key and "value" in entry):
            log.warning("ignoring damaged cache entry %s (not this key's entry)", path)
            return None
        return entry["value"]

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` atomically."""
        # not fsynced: kill-safe via the atomic rename, and an entry lost to a power cut is
        # simply asked again; fsync here would block the event loop ~0.5 ms per answer
        atomic_write_text(self.path(key), json.dumps({"key": key, "value": value},
                                                      ensure_ascii=False), durable=False)

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json"))
