"""The batches this machine submitted to a Batch API, and the requests in each.

One SQLite file per machine beside the Naver quota ledger, outside every DVC output (a
``dvc checkout`` must not forget a batch that is paid for): ``$SEEDTUNE_BATCH_STATE`` if
set, else ``llm_batches.sqlite3`` in the ledger's directory (``~/.cache/seedtune/``). A batch
is recorded, with the cache key (``custom_id``) of every request in it, *before* it is
created, under ``pending:<input file id>``, and renamed to its id the moment the API answers:
a run killed at any point finds its batches again (a pending record by its input file in the
endpoint's batch list) and never submits a request twice. ``seedtune batches`` lists it.

Each request's failures at an endpoint are counted here too, across runs (:meth:`tries`,
:meth:`add_tries`): how often a batch answered it with a transport-like error and sent it
back, and how often its answer was unusable; ``llm.max_retries`` and the parse budget bound
those over every run, not each one (a stage that stops at ``llm.batch_wait_s`` and is rerun
must not resubmit a failing request for ever). A request's counts go once it is answered.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATE_ENV = "SEEDTUNE_BATCH_STATE"
LEDGER_ENV = "SEEDTUNE_QUOTA_LEDGER"  # the Naver quota ledger's file (seedtune.retrieval.quota)
PENDING = "pending:"
TERMINAL = ("completed", "failed", "expired", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY, stage TEXT, base_url TEXT, input_file_id TEXT, status TEXT,
    created_at REAL, total INTEGER, completed INTEGER DEFAULT 0, failed INTEGER DEFAULT 0,
    collected INTEGER DEFAULT 0
);
CREATE TABLE IF NOT EXISTS batch_requests (
    batch_id TEXT, key TEXT, PRIMARY KEY (batch_id, key)
);
CREATE TABLE IF NOT EXISTS request_tries (
    base_url TEXT, key TEXT, resent INTEGER DEFAULT 0, unusable INTEGER DEFAULT 0,
    last TEXT, PRIMARY KEY (base_url, key)
);
"""
#: Keys per statement of :meth:`BatchState.tries` (under SQLite's variable limit).
_IN_CHUNK = 500


def state_path() -> Path:
    """Where this machine's batch records live (see the module docstring)."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV])
    # the directory of seedtune.retrieval.quota's ledger (llm may not import retrieval)
    if os.environ.get(LEDGER_ENV):
        return Path(os.environ[LEDGER_ENV]).parent / "llm_batches.sqlite3"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "seedtune" / "llm_batches.sqlite3"


@dataclass(frozen=True)
class Tries:
    """A request's failures at one endpoint so far: resubmitted after a transport-like
    error (``resent``), answered unusably (``unusable``), and the last reason."""

    resent: int = 0
    unusable: int = 0
    last: str = ""


@dataclass(frozen=True)
class BatchRecord:
    """One batch as last seen: ``collected``: its results are read (it is history)."""

    id: str
    stage: str
    base_url: str
    input_file_id: str
    status: str
    created_at: float
    total: int
    completed: int
    failed: int
    collected: bool


class BatchState:
    """The records of :func:`state_path` (or ``path``); every change commits at once."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else state_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def intend(self, input_file_id: str, stage: str, base_url: str, keys: Iterable[str]) -> str:
        """Record a batch about to be created from ``input_file_id``; its pending id."""
        rid = PENDING + input_file_id
        keys = list(keys)
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO batches (id, stage, base_url, input_file_id, status, "
                "created_at, total) VALUES (?, ?, ?, ?, 'submitting', ?, ?)",
                (rid, stage, base_url, input_file_id, time.time(), len(keys)),
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO batch_requests VALUES (?, ?)", [(rid, k) for k in keys]
            )
        return rid

    def created(self, pending_id: str, batch: dict[str, Any]) -> None:
        """The API created ``pending_id`` as ``batch`` (its object): record its id."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE batches SET id = ? WHERE id = ?", (batch["id"], pending_id))
            self._db.execute(
                "UPDATE batch_requests SET batch_id = ? WHERE batch_id = ?",
                (batch["id"], pending_id),
            )
        self.seen(batch)

    def drop(self, record_id: str) -> None:
        """Forget a record (a batch that was never created)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM batches WHERE id = ?", (record_id,))
            self._db.execute("DELETE FROM batch_requests WHERE batch_id = ?", (record_id,))

    def seen(self, batch: dict[str, Any]) -> None:
        """Note a batch object's status and counts."""
        counts = batch.get("request_counts") or {}
        self._db.execute(
            "UPDATE batches SET status = ?, completed = ?, failed = ? WHERE id = ?",
            (
                str(batch.get("status")),
                int(counts.get("completed") or 0),
                int(counts.get("failed") or 0),
                batch["id"],
            ),
        )

    def collect(self, batch_id: str) -> None:
        """Its results are read and cached: history from now on."""
        self._db.execute("UPDATE batches SET collected = 1 WHERE id = ?", (batch_id,))

    def keys(self, record_id: str) -> set[str]:
        """The cache keys of the requests in a batch."""
        rows = self._db.execute("SELECT key FROM batch_requests WHERE batch_id = ?", (record_id,))
        return {r[0] for r in rows}

    def records(self, base_url: str | None = None, open_only: bool = False) -> list[BatchRecord]:
        """Every batch (of ``base_url``; ``open_only``: not collected yet), oldest first."""
        sql, args = "SELECT * FROM batches WHERE 1=1", []
        if base_url is not None:
            sql += " AND base_url = ?"
            args.append(base_url)
        if open_only:
            sql += " AND collected = 0"
        rows = self._db.execute(sql + " ORDER BY created_at", args).fetchall()
        return [
            BatchRecord(
                id=r[0],
                stage=r[1],
                base_url=r[2],
                input_file_id=r[3],
                status=r[4],
                created_at=r[5],
                total=r[6],
                completed=r[7],
                failed=r[8],
                collected=bool(r[9]),
            )
            for r in rows
        ]

    def tries(self, base_url: str, keys: Iterable[str]) -> dict[str, Tries]:
        """The failures counted so far for those of ``keys`` that have any."""
        keys = list(keys)
        out: dict[str, Tries] = {}
        for i in range(0, len(keys), _IN_CHUNK):
            part = keys[i : i + _IN_CHUNK]
            rows = self._db.execute(
                "SELECT key, resent, unusable, last FROM request_tries WHERE base_url = ? "
                f"AND key IN ({','.join('?' * len(part))})",
                [base_url, *part],
            )
            out.update({r[0]: Tries(r[1], r[2], r[3] or "") for r in rows})
        return out

    def add_tries(self, base_url: str, failures: dict[str, tuple[str, str]]) -> dict[str, Tries]:
        """Count one failure per key: ``{key: (kind, reason)}``, kind ``resent`` or
        ``unusable``; every key's counts after it, in one transaction."""
        if not failures:
            return {}
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for key, (kind, reason) in failures.items():
                column = "resent" if kind == "resent" else "unusable"
                self._db.execute(
                    "INSERT INTO request_tries (base_url, key, last) VALUES (?, ?, ?) "
                    "ON CONFLICT (base_url, key) DO NOTHING",
                    (base_url, key, reason),
                )
                self._db.execute(
                    f"UPDATE request_tries SET {column} = {column} + 1, last = ? "
                    "WHERE base_url = ? AND key = ?",
                    (reason, base_url, key),
                )
        return self.tries(base_url, failures)

    def forget_tries(self, base_url: str, keys: Iterable[str]) -> None:
        """Drop the counts of answered requests."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "DELETE FROM request_tries WHERE base_url = ? AND key = ?",
                [(base_url, k) for k in keys],
            )
