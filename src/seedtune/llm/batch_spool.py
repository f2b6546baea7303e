"""The uncached requests of one batch-mode stream, as JSON Lines on disk, not in memory.

At 100k synthesize requests (each with its passages) the Batch API input lines are hundreds
of MB; :mod:`seedtune.llm.batch` writes each line here once, as the requests are read, and
keeps only where it lies (offset, length) by cache key; the input files are then cut from
these lines (:meth:`Spool.chunks`, within the API's limits, each a file of its own that is
uploaded from disk).

A spool lives beside the batch records (:func:`seedtune.llm.batch_state.state_path`'s
directory, ``batch-spool/``): outside every DVC output (a cache directory is pushed with DVC)
and on disk (``/tmp`` is often memory). It is a temp file of one run: named
``.spool-*.tmp``, made with a unique name, read only by the run that wrote it and removed
when the stream ends. A run killed with ``kill -9`` leaves it behind, and nothing ever reads
it: its answers are cached as they are read, its batches are in the records, and the next
run writes a spool of its own; a leftover older than an hour is swept then.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from seedtune.core.records import sweep_stale

PATTERN = ".spool-*.tmp"


class Spool:
    """Lines by key, appended once (:meth:`add`), read back by key (:meth:`read`)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        sweep_stale(directory, PATTERN)  # a killed run's: never read, so only swept
        self.directory = directory
        fd, name = tempfile.mkstemp(prefix=".spool-", suffix=".tmp", dir=directory)
        self.path = Path(name)
        self._file = os.fdopen(fd, "w+b")
        self._end = 0
        self.where: dict[str, tuple[int, int]] = {}  # key -> (offset, length)

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Remove the spool (and any input file cut from it that is still on disk)."""
        self._file.close()
        self.path.unlink(missing_ok=True)

    def add(self, key: str, line: bytes) -> None:
        """Append ``line`` (one JSONL line, newline included) as ``key``'s."""
        self._file.write(line)
        self.where[key] = (self._end, len(line))
        self._end += len(line)

    def read(self, key: str) -> bytes:
        """``key``'s line."""
        self._file.flush()
        offset, length = self.where[key]
        return os.pread(self._file.fileno(), length, offset)

    def lines(self, keys: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """``(key, line)`` for ``keys``, read in the order they were written (sequential)."""
        self._file.flush()
        fd = self._file.fileno()
        for key in sorted(keys, key=lambda k: self.where[k][0]):
            offset, length = self.where[key]
            yield key, os.pread(fd, length, offset)

    def chunks(
        self, lines: Iterable[tuple[str, bytes]], max_requests: int, max_bytes: int
    ) -> Iterator[tuple[Path, list[str]]]:
        """Consecutive input files of ``lines``, each within ``max_requests`` lines and
        ``max_bytes`` bytes: ``(path, keys)``; a file is removed once the next is asked for
        (its batch has been created from it by then) or the iteration ends."""
        made: list[Path] = []
        current: BinaryIO | None = None
        keys: list[str] = []
        size = 0
        try:
            for key, line in lines:
                full = len(keys) >= max_requests or size + len(line) > max_bytes
                if current is not None and full:
                    current.close()
                    yield made[-1], keys
                    made.pop().unlink(missing_ok=True)
                    current, keys, size = None, [], 0
                if current is None:
                    fd, name = tempfile.mkstemp(prefix=".spool-", suffix=".tmp", dir=self.directory)
                    made.append(Path(name))
                    current = os.fdopen(fd, "wb")
                current.write(line)
                keys.append(key)
                size += len(line)
            if current is not None:
                current.close()
                current = None
                yield made[-1], keys
        finally:
            if current is not None:
                current.close()
            for path in made:
                path.unlink(missing_ok=True)
