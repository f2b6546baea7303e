"""Content-addressed response cache shared by the LLM, Naver and page clients.

Every answer is appended, the moment it arrives, as one line of a *segment*: an
append-only file ``<root>/seg-<time>-<pid>-<rand>.jsonl`` that only the process which made
it ever writes. A line is ``<key>\\t<stamp>\\t<crc32>\\t<json>\\n``: the key, a stamp that
orders answers to the same key (the newest wins), and a checksum of the JSON, so a torn or
damaged line is a miss (logged) and is asked again, never trusted. Each line is flushed at
once: ``kill -9`` loses at most the requests in flight.

Why segments and not one file per answer: DVC (``persist: true`` outputs) pushes and pulls
the cache like any other data, and its cost grows with the number of files; at 10k
questions one file per answer meant tens of thousands of objects, a no-op ``dvc repro`` of
tens of seconds and per-file pushes. A run adds one segment, so adding a seed word pushes
one small new file. Closing a cache merges small segments of about the same size once
:data:`MERGE_FANOUT` of them have piled up (size-tiered, as log-structured stores do): the
file count stays logarithmic in the number of answers, and a merge never rewrites the big
old segments a teammate already has. A merge writes its result under a temporary name,
renames it into place and only then deletes its inputs; a kill at any point leaves
duplicates at worst, which the stamps resolve. Segments another live process is still
writing (it holds an ``flock`` on them) are never merged.

A cache made by an older seedtune (one ``<key[:2]>/<key>.json`` file per answer) is moved
into a segment when opened, then its files are deleted: nothing is asked again.

Keys hash what determines the answer (model, messages, sampling params, schema, template
version), never the endpoint URL or a key.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import secrets
import shutil
import threading
import time
import weakref
import zlib
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from seedtune.core.records import FILE_MODE, sweep_stale

log = logging.getLogger(__name__)

SEGMENT_GLOB = "seg-*.jsonl"
#: Segments of one size tier are merged into one once this many have piled up.
MERGE_FANOUT = 8
#: Segments under this size are all of the smallest tier.
TIER_BASE_BYTES = 1 << 20
KEY_CHARS = 64


def cache_key(payload: Any) -> str:
    """sha256 of the canonical JSON of ``payload``."""
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def code_fingerprint(modules: Iterable[ModuleType], packages: Iterable[str] = ()) -> str:
    """sha256 over the source files of ``modules`` and the installed versions of
    ``packages``: the identity of the code that derives a cached row, so that a row derived
    by older code is never reused (it is derived again, for free, from the paid answer)."""
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256()
    for module in sorted(modules, key=lambda m: m.__name__):
        digest.update(module.__name__.encode())
        digest.update(Path(module.__file__ or "").read_bytes())
    for name in sorted(packages):
        try:
            digest.update(f"{name}=={version(name)}".encode())
        except PackageNotFoundError:
            digest.update(f"{name}==none".encode())
    return digest.hexdigest()


def derived_cache(root: Path | str, fingerprint: str, what: str) -> ResponseCache:
    """The cache of rows a stage derives from its paid answers under ``fingerprint`` (its
    params and code, :func:`code_fingerprint`): ``root/rows-<fingerprint>``. Rows derived
    under another fingerprint are removed: they are derived again, for free, from the
    answers if those settings come back, and DVC keeps pushing one set. ``what`` names them
    in the log."""
    root = Path(root)
    current = f"rows-{fingerprint}"
    for old in root.glob("rows-*"):
        if old.name != current and old.is_dir():
            log.info("dropping %s derived under other params or code (%s)", what, old)
            shutil.rmtree(old, ignore_errors=True)
    return ResponseCache(root / current)


class _Entry(NamedTuple):
    segment: str
    offset: int
    length: int
    stamp: int


def _line(key: str, stamp: int, value: Any) -> bytes:
    # json escapes control characters, so the JSON holds neither a tab nor a newline
    blob = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return b"%s\t%x\t%08x\t%s\n" % (key.encode("ascii"), stamp, zlib.crc32(blob), blob)


def _parse(line: bytes) -> tuple[str, int, bytes] | None:
    """``(key, stamp, json bytes)`` of an intact line, else None."""
    parts = line.rstrip(b"\n").split(b"\t", 3)
    if not line.endswith(b"\n") or len(parts) != 4 or len(parts[0]) != KEY_CHARS:
        return None
    try:
        key, stamp, crc = parts[0].decode("ascii"), int(parts[1], 16), int(parts[2], 16)
    except (UnicodeDecodeError, ValueError):
        return None
    return (key, stamp, parts[3]) if zlib.crc32(parts[3]) == crc else None


def _segment_name() -> str:
    return f"seg-{time.time_ns():x}-{os.getpid()}-{secrets.token_hex(3)}.jsonl"


def _tier(size: int) -> int:
    return 0 if size < TIER_BASE_BYTES else 1 + int(math.log(size / TIER_BASE_BYTES, MERGE_FANOUT))


def _unlocked(path: Path) -> int | None:
    """An fd holding an exclusive lock on ``path``, or None while a live writer holds it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


class ResponseCache:
    """Answers addressed by :func:`cache_key`, in append-only segments under ``root``.

    Thread-safe; use as a context manager or call :meth:`close` (it also runs at exit) to
    merge small segments.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._index: dict[str, _Entry] = {}
        self._fds: dict[str, int] = {}
        self._sizes: dict[str, int] = {}  # bytes of each segment indexed so far
        self._writer: Any = None
        self._writer_name: str | None = None
        self._stamp = 0
        self._full = False  # a write failed (disk full): merging would only fail too
        self._failed = ""  # the segment of that write
        self.damaged = 0
        for path in sorted(self.root.glob(SEGMENT_GLOB)):
            self._scan(path)
        sweep_stale(self.root, ".seg-*.tmp")  # what a merge killed midway left
        self._migrate()
        weakref.finalize(self, _release, self._fds)
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- reading ---------------------------------------------------------------------------
    def _open(self, name: str) -> int:
        fd = self._fds.get(name)
        if fd is None:
            fd = self._fds[name] = os.open(self.root / name, os.O_RDONLY)
        return fd

    def _scan(self, path: Path) -> None:
        """Index the intact lines of ``path`` not indexed yet; the newest stamp wins."""
        offset = self._sizes.get(path.name, 0)
        try:
            handle = path.open("rb")
        except FileNotFoundError:  # merged away by another process meanwhile
            return
        with handle:
            if path.name not in self._fds:
                self._fds[path.name] = os.dup(handle.fileno())
            handle.seek(offset)
            for line in handle:
                parsed = _parse(line)
                if parsed is None:
                    self.damaged += 1
                    log.warning("ignoring damaged cache entry %s at byte %d", path, offset)
                else:
                    key, stamp, _ = parsed
                    self._stamp = max(self._stamp, stamp)
                    old = self._index.get(key)
                    if old is None or stamp >= old.stamp:
                        self._index[key] = _Entry(path.name, offset, len(line), stamp)
                offset += len(line)
        self._sizes[path.name] = offset

    def _read(self, key: str) -> tuple[_Entry, bytes] | None:
        entry = self._index.get(key)
        if entry is None:
            return None
        try:
            line = os.pread(self._open(entry.segment), entry.length, entry.offset)
        except OSError:
            line = b""
        parsed = _parse(line)
        if parsed is None or parsed[0] != key:
            log.warning("ignoring damaged cache entry %s", self.where(key))
            return None
        return entry, parsed[2]

    def get(self, key: str) -> Any | None:
        """The newest intact value stored under ``key``, or None.

        A damaged entry (torn, wrong checksum, not JSON) is never trusted: it is logged with
        where it lies and counts as a miss, so it is asked again and superseded.
        """
        found = self._read(key)
        if found is None:
            return None
        try:
            return json.loads(found[1])
        except (UnicodeDecodeError, json.JSONDecodeError):
            log.warning("ignoring damaged cache entry %s (not JSON)", self.where(key))
            return None

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    def keys(self) -> list[str]:
        """Every key with an entry (intact when last scanned)."""
        return list(self._index)

    def where(self, key: str) -> str:
        """Where ``key``'s entry lies, for messages: ``<segment path>:<byte offset>``."""
        entry = self._index.get(key)
        return f"{self.root / entry.segment}:{entry.offset}" if entry else f"{self.root}"

    # -- writing ---------------------------------------------------------------------------
    def put(self, key: str, value: Any) -> None:
        """Append ``value`` under ``key`` (it supersedes any older entry); flushed at once."""
        with self._lock:
            if self._writer is None:
                self._start_segment()
            self._stamp = max(self._stamp + 1, time.time_ns())
            line = _line(key, self._stamp, value)
            offset = self._writer.tell()
            assert self._writer_name is not None
            # not fsynced: a kill -9 keeps what the kernel holds; a line torn by a power cut
            # fails its checksum and is simply asked again
            try:
                view = memoryview(line)
                while view:  # unbuffered: a short write (a disk filling up) is retried
                    view = view[self._writer.write(view) :]
            except OSError as exc:
                self._abandon_segment(offset)
                if exc.filename is None:  # name the file in the one-line error
                    exc.filename = str(self.root / self._failed)
                raise
            self._index[key] = _Entry(self._writer_name, offset, len(line), self._stamp)
            self._sizes[self._writer_name] = offset + len(line)

    def _abandon_segment(self, offset: int) -> None:
        """After a failed write (a full disk): cut the torn line off this process's segment,
        so every line before it stays intact, and write no more this run."""
        assert self._writer is not None and self._writer_name is not None
        with contextlib.suppress(OSError):
            os.ftruncate(self._writer.fileno(), offset)  # shrinking needs no free space
        self._writer.close()
        if offset == 0:  # nothing in it: do not leave an empty segment per failed put
            (self.root / self._writer_name).unlink(missing_ok=True)
        self._failed, self._writer, self._writer_name = self._writer_name, None, None
        self._full = True

    def _start_segment(self) -> None:
        name = _segment_name()
        # unbuffered: every line goes to the kernel at once, and a failed write leaves no
        # buffered bytes behind to land later as a torn line
        self._writer = (self.root / name).open("ab", buffering=0)
        os.chmod(self.root / name, FILE_MODE)  # open()'s mode, whatever the umask
        # held while this process writes: no other process merges a segment still growing
        fcntl.flock(self._writer.fileno(), fcntl.LOCK_EX)
        self._writer_name = name

    # -- closing and merging ---------------------------------------------------------------
    def close(self) -> None:
        """Finish this process's segment and merge small segments (see the module doc)."""
        with self._lock:
            if self._writer is not None:
                self._writer.close()  # releases the flock
                self._writer, self._writer_name = None, None
            if not self._full:
                self._merge()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _merge(self) -> None:
        while True:
            sizes = {p.name: p.stat().st_size for p in self.root.glob(SEGMENT_GLOB)}
            tiers: dict[int, list[str]] = {}
            for name in sorted(sizes):
                tiers.setdefault(_tier(sizes[name]), []).append(name)
            group = next(
                (names for _, names in sorted(tiers.items()) if len(names) >= MERGE_FANOUT), None
            )
            if group is None or not self._merge_group(group):
                return

    def _merge_group(self, names: list[str]) -> bool:
        """Merge ``names`` into one segment; False when a live writer holds one of them."""
        locks = [_unlocked(self.root / n) for n in names]
        try:
            if any(fd is None for fd in locks):
                return False
            for name in names:  # what another process appended since this one scanned
                self._scan(self.root / name)
            members = set(names)
            live = sorted(
                ((k, e) for k, e in self._index.items() if e.segment in members),
                key=lambda ke: (ke[1].segment, ke[1].offset),
            )
            target = _segment_name()
            tmp = self.root / f".{target}.{secrets.token_hex(3)}.tmp"
            moved: dict[str, _Entry] = {}
            try:
                with tmp.open("wb") as out:
                    for key, entry in live:
                        line = os.pread(self._open(entry.segment), entry.length, entry.offset)
                        if _parse(line) is None:
                            continue
                        moved[key] = _Entry(target, out.tell(), len(line), entry.stamp)
                        out.write(line)
                    out.flush()
                    os.fsync(out.fileno())
            except BaseException:  # a full disk: its inputs stay, the partial copy goes
                tmp.unlink(missing_ok=True)
                raise
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, self.root / target)
            self._index.update(moved)
            self._sizes[target] = (self.root / target).stat().st_size
            for name in names:
                (self.root / name).unlink(missing_ok=True)
                self._sizes.pop(name, None)
                fd = self._fds.pop(name, None)
                if fd is not None:
                    os.close(fd)
            log.info("merged %d cache segments into %s", len(names), self.root / target)
            return True
        finally:
            for fd in locks:
                if fd is not None:
                    os.close(fd)

    # -- the old layout --------------------------------------------------------------------
    def _migrate(self) -> None:
        """Move one-file-per-answer entries (``<key[:2]>/<key>.json``) into a segment."""
        legacy = sorted(self.root.glob("??/*.json"))
        if not legacy:
            return
        moved = 0
        for path in legacy:
            key = path.stem
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                entry = None
            if isinstance(entry, dict) and entry.get("key") == key and "value" in entry:
                if key not in self._index:
                    self.put(key, entry["value"])
                    moved += 1
            else:
                log.warning("ignoring damaged cache entry %s", path)
        if self._writer is not None:
            os.fsync(self._writer.fileno())  # durable before the old files go
        for path in legacy:
            path.unlink(missing_ok=True)
        for folder in {p.parent for p in legacy}:
            try:
                folder.rmdir()
            except OSError:
                pass
        log.info("moved %d cached answers in %s into one segment", moved, self.root)


def _release(fds: dict[str, int]) -> None:
    for fd in fds.values():
        os.close(fd)
    fds.clear()


def _close_at_exit(ref: weakref.ref[ResponseCache]) -> None:
    cache = ref()
    if cache is None:
        return
    try:
        cache.close()
    except OSError as exc:  # a full disk at exit must not hide the run's own error
        log.warning("could not merge cache segments in %s (%s)", cache.root, exc)
