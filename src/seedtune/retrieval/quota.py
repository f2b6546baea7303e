"""Naver's daily call budget, counted per application across every process on this machine.

Naver counts calls per application (client id) per Korean day, whoever makes them: the
search stage, ``seedtune ask --rag``, several workspaces or parallel experiments. So the
ledger is one SQLite file per machine, outside every DVC output (``dvc checkout`` must not
roll it back): ``$SEEDTUNE_QUOTA_LEDGER`` if set, else
``$XDG_CACHE_HOME/seedtune/naver_quota.sqlite3`` (``~/.cache/...``). Each call is counted in
its own write transaction before it is sent, so processes never lose each other's counts
and a crash overcounts by at most the calls in flight, never undercounts. Only a one-way tag
of the client id is stored. The file is in SQLite's WAL mode (keep it on a local disk).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from seedtune.core.clock import korean_today
from seedtune.core.errors import QuotaError

#: Environment variable naming the ledger file (a machine setting; tests point it elsewhere).
LEDGER_ENV = "SEEDTUNE_QUOTA_LEDGER"


class QuotaExceeded(QuotaError):
    """Naver's daily quota (errorCode 010) or ``search.daily_quota`` is spent."""


def ledger_path() -> Path:
    """Where this machine's ledger lives (see the module docstring)."""
    if os.environ.get(LEDGER_ENV):
        return Path(os.environ[LEDGER_ENV])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "seedtune" / "naver_quota.sqlite3"


def account_key(client_id: str | None) -> str:
    """A short, one-way tag for a Naver application: never the client id itself."""
    return hashlib.sha256((client_id or "").encode("utf-8")).hexdigest()[:16]


class DailyBudget:
    """Calls one Naver application made today, against a limit, in the machine's ledger."""

    def __init__(
        self,
        limit: int,
        account: str,
        path: Path | str | None = None,
        today: Callable[[], str] = korean_today,
    ) -> None:
        self.limit, self.account, self._today = limit, account, today
        self.path = Path(path) if path is not None else ledger_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit mode: every transaction below is explicit; one connection per object,
        # shared by its threads under a lock
        self._db = sqlite3.connect(
            self.path, timeout=60, isolation_level=None, check_same_thread=False
        )
        # write-ahead log, synced at checkpoints: a call's count is a few µs instead of a
        # journal file written and synced per call (0.7 ms here, ~14 ms on slow disks),
        # and a killed process still loses no count it committed (only a power cut could)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS calls (day TEXT NOT NULL, account TEXT "
            "NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (day, account))"
        )
        self._lock = threading.Lock()

    def used(self) -> int:
        """Calls this application made today."""
        with self._lock:
            row = self._db.execute(
                "SELECT n FROM calls WHERE day = ? AND account = ?", (self._today(), self.account)
            ).fetchone()
        return int(row[0]) if row else 0

    def take(self) -> None:
        """Count one call, or raise :class:`QuotaExceeded` when today's budget is spent."""
        with self._lock:
            day = self._today()
            self._db.execute("BEGIN IMMEDIATE")  # the write lock: other processes wait
            try:
                row = self._db.execute(
                    "SELECT n FROM calls WHERE day = ? AND account = ?", (day, self.account)
                ).fetchone()
                used = int(row[0]) if row else 0
                if used >= self.limit:
                    raise QuotaExceeded(
                        f"search.daily_quota={self.limit} calls already made today ({day} KST) "
                        "with this NAVER_CLIENT_ID; wait for midnight KST or raise "
                        "search.daily_quota"
                    )
                self._db.execute(
                    "INSERT INTO calls (day, account, n) VALUES (?, ?, 1) ON "
                    "CONFLICT (day, account) DO UPDATE SET n = n + 1",
                    (day, self.account),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close the ledger connection."""
        self._db.close()
