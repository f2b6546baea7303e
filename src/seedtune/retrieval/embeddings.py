"""Embeddings kept across runs, so that a rerun of rank encodes only texts it has not seen.

The rank stage reruns whenever ``rank.top_k``, ``rank.max_gap`` or the documents change,
yet most of its texts were encoded last time; on a CPU encoding is most of its time. The
store keeps one directory per encoder (:func:`encoder_fingerprint`) of immutable shards
``<root>/<fingerprint>/<sha>.emb``, each written atomically once ``flush_every`` new vectors
have piled up: a kill loses at most one shard's worth of work, and DVC (``persist: true``)
pushes only the shards that are new.

Memory is bounded by a batch, not by the store: users keep millions of vectors (1.5M
passages at 50k questions: 2.3 GB for e5-small), so only a compact index stays in memory
(the first 8 bytes of each text's sha256, sorted, with its shard and row: 17 bytes a
vector) and each vector is read from its shard when a text is looked up (``os.pread``, not
a mapping of the file, whose touched pages would count as resident memory).

A shard is ``records | keys | footer``: ``count`` records of ``sha256 (32 bytes) | float32
vector | crc32 of both``, then the ``count`` keys again in one block (all that opening the
store reads), then ``magic, dim, count, crc32`` (the crc covers the key block, dim and
count). Nothing read back is trusted: a shard of the wrong size or with a bad key block is
ignored, a record whose key or checksum does not match is a miss; either is logged once per
shard and its texts are encoded again. Closing the store merges small shards (each run's
last one) once :data:`MERGE_FANOUT` have piled up, so the file count stays in the hundreds
at 50k questions. Shards of the older ``.npz`` layout are rewritten in this one when the
store opens, then deleted: nothing is encoded again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from seedtune.core.records import FILE_MODE, atomic_write_bytes, sweep_stale

log = logging.getLogger(__name__)

#: Texts whose embeddings identify an encoder: its weights, tokenizer, pooling and dtype all
#: show in them (Korean and English, with each e5 prefix).
PROBES = (
    "query: 전세 계약 전에 확인할 서류는 무엇인가요?",
    "passage: 확정일자와 전입신고로 대항력을 갖춘 임차인은 보증금을 보호받는다.",
    "query: What does a lease registration protect?",
)

SHARD_SUFFIX = ".emb"
MAGIC = b"SEEDEMB1"
#: magic, dim, count, crc32 of (key block, dim, count)
FOOTER = struct.Struct("<8sIII")
KEY_BYTES = 32
#: Small shards (fewer than ``flush_every`` vectors) are merged into one once this many exist.
MERGE_FANOUT = 8
#: Shard files kept open at once for reading.
OPEN_SHARDS = 64


def text_key(text: str) -> str:
    """sha256 hex of ``text`` (the prefixed text, exactly as it is encoded)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encoder_fingerprint(model: Any) -> str:
    """A short id that changes whenever the encoder would embed differently.

    Hashes the embeddings of :data:`PROBES` (rounded to 1e-4, so float noise between runs
    does not split the store), the parameter dtype and the truncation length, which the
    short probes cannot reveal. Costs one small encode.
    """
    vecs = np.asarray(
        model.encode(list(PROBES), prompt="", convert_to_numpy=True, show_progress_bar=False),
        dtype=np.float64,
    )
    try:
        dtype = str(next(model.parameters()).dtype)
    except (AttributeError, StopIteration, TypeError):
        dtype = "unknown"
    meta = json.dumps(
        {
            "dtype": dtype,
            "max_seq_length": getattr(model, "max_seq_length", None),
            "dim": int(vecs.shape[1]),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(meta.encode("utf-8"))
    digest.update(np.round(vecs, 4).astype("<f8").tobytes())
    return digest.hexdigest()[:16]


def _prefixes(keys: bytes) -> np.ndarray:
    """The first 8 bytes of each 32-byte key in ``keys``, as uint64 (what the index sorts):
    big-endian, so that keys in byte order give sorted prefixes."""
    return (
        np.frombuffer(keys, dtype=np.uint8)
        .reshape(-1, KEY_BYTES)[:, :8]
        .copy()
        .view(">u8")
        .ravel()
        .astype(np.uint64)
    )


def _record(key: bytes, vec: np.ndarray) -> bytes:
    body = key + np.ascontiguousarray(vec, dtype="<f4").tobytes()
    return body + struct.pack("<I", zlib.crc32(body))


def _footer(keys: bytes, dim: int, count: int) -> bytes:
    crc = zlib.crc32(struct.pack("<II", dim, count), zlib.crc32(keys))
    return FOOTER.pack(MAGIC, dim, count, crc)


class _Shard:
    """One shard file as indexed: where its records are and how long each is."""

    def __init__(self, path: Path, dim: int, count: int) -> None:
        self.path, self.dim, self.count = path, dim, count
        self.record = KEY_BYTES + 4 * dim + 4
        self.warned = False


class EmbeddingStore:
    """Vectors of one encoder, read from and appended to ``root/fingerprint`` (see the module
    doc); use as a context manager, or call :meth:`close`, to write what is pending and
    merge small shards.

    ``reused`` counts distinct texts found that earlier runs stored; ``encoded`` the vectors
    added by this run.
    """

    def __init__(self, root: Path | str, fingerprint: str, flush_every: int = 4096) -> None:
        self.dir = Path(root) / fingerprint
        self.flush_every = flush_every
        self._pending: dict[bytes, np.ndarray] = {}
        self._fds: dict[int, int] = {}  # shard id -> open fd, the most recently used last
        self.reused = 0
        self.encoded = 0
        sweep_stale(self.dir, ".*.tmp")  # what a killed write or merge left
        self._migrate_npz()
        self._load()
        if len(self._prefix):
            log.info(
                "%d stored embeddings for this encoder in %s (%d shards)",
                len(self),
                self.dir,
                len(self._shards),
            )

    # -- the index -------------------------------------------------------------------------
    def _load(self) -> None:
        """Index every intact shard: sorted key prefixes, with shard id and row."""
        self._close_fds()
        self._shards: list[_Shard] = []
        parts: list[tuple[np.ndarray, int]] = []
        for path in sorted(self.dir.glob(f"*{SHARD_SUFFIX}")):
            keys = self._read_keys(path)
            if keys is not None:
                parts.append((_prefixes(keys[0]), len(self._shards)))
                self._shards.append(keys[1])
        prefix = np.concatenate([p for p, _ in parts]) if parts else np.zeros(0, "<u8")
        shard = (
            np.concatenate([np.full(len(p), s, np.uint32) for p, s in parts])
            if parts
            else np.zeros(0, np.uint32)
        )
        row = (
            np.concatenate([np.arange(len(p), dtype=np.uint32) for p, _ in parts])
            if parts
            else np.zeros(0, np.uint32)
        )
        order = np.argsort(prefix, kind="stable")
        self._prefix, self._shard, self._row = prefix[order], shard[order], row[order]
        # 0: stored by an earlier run and not yet counted in `reused`; 1: counted, or new
        self._seen = np.zeros(len(prefix), np.uint8)

    def _read_keys(self, path: Path) -> tuple[bytes, _Shard] | None:
        """The key block of ``path`` and its shard, or None (logged) when it is damaged."""
        try:
            with path.open("rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size < FOOTER.size:
                    raise ValueError("shorter than its footer")
                fh.seek(size - FOOTER.size)
                magic, dim, count, crc = FOOTER.unpack(fh.read(FOOTER.size))
                if magic != MAGIC or dim == 0:
                    raise ValueError("not an embedding shard")
                shard = _Shard(path, dim, count)
                if size != count * (shard.record + KEY_BYTES) + FOOTER.size:
                    raise ValueError(f"{size} bytes, not the {count} vectors it says")
                fh.seek(count * shard.record)
                keys = fh.read(count * KEY_BYTES)
        except (OSError, ValueError, struct.error) as exc:
            # a damaged shard only costs re-encoding its texts; it is never trusted
            log.warning("ignoring damaged embedding shard %s (%s)", path, exc)
            return None
        if _footer(keys, dim, count)[-4:] != struct.pack("<I", crc):
            log.warning("ignoring damaged embedding shard %s (its keys fail their checksum)", path)
            return None
        return keys, shard

    def __len__(self) -> int:
        """Distinct texts with a stored or pending vector."""
        stored = int(np.count_nonzero(np.diff(self._prefix))) + 1 if len(self._prefix) else 0
        return stored + len(self._pending)

    # -- reading ---------------------------------------------------------------------------
    def get(self, text: str) -> np.ndarray | None:
        """The stored vector of ``text`` (prefixed), or None (see :meth:`lookup`)."""
        return self.lookup([text])[0]

    def lookup(self, texts: list[str]) -> list[np.ndarray | None]:
        """The stored vector of each of ``texts`` (prefixed, as encoded), None where there is
        none or it is damaged; the first hit of each text an earlier run stored counts in
        ``reused``."""
        keys = [hashlib.sha256(t.encode("utf-8")).digest() for t in texts]
        out: list[np.ndarray | None] = [self._pending.get(k) for k in keys]
        if not len(self._prefix) or not keys:
            return out
        wanted = _prefixes(b"".join(keys))
        lo = np.searchsorted(self._prefix, wanted, "left")
        hi = np.searchsorted(self._prefix, wanted, "right")
        for i in np.flatnonzero(hi > lo).tolist():
            if out[i] is not None:
                continue
            for entry in range(int(lo[i]), int(hi[i])):  # more than one: a copy, or a clash
                vec = self._read(int(self._shard[entry]), int(self._row[entry]), keys[i])
                if vec is not None:
                    out[i] = vec
                    if not self._seen[entry]:
                        self._seen[entry] = 1
                        self.reused += 1
                    break
        return out

    def _read(self, shard_id: int, row: int, key: bytes) -> np.ndarray | None:
        shard = self._shards[shard_id]
        try:
            data = os.pread(self._fd(shard_id), shard.record, row * shard.record)
        except OSError:
            data = b""
        intact = len(data) == shard.record and struct.unpack("<I", data[-4:])[0] == zlib.crc32(
            data[:-4]
        )
        if intact and data[:KEY_BYTES] == key:
            return np.frombuffer(data, dtype="<f4", count=shard.dim, offset=KEY_BYTES)
        if intact:
            return None  # another text whose key starts alike: not this one's vector
        if not shard.warned:
            shard.warned = True
            log.warning(
                "embedding shard %s: a damaged vector (row %d), encoding it again", shard.path, row
            )
        return None

    def _fd(self, shard_id: int) -> int:
        fd = self._fds.pop(shard_id, None)
        if fd is None:
            if len(self._fds) >= OPEN_SHARDS:
                os.close(self._fds.pop(next(iter(self._fds))))
            fd = os.open(self._shards[shard_id].path, os.O_RDONLY)
        self._fds[shard_id] = fd
        return fd

    def _close_fds(self) -> None:
        for fd in getattr(self, "_fds", {}).values():
            os.close(fd)
        self._fds = {}

    # -- writing ---------------------------------------------------------------------------
    def add(self, texts: list[str], vecs: np.ndarray) -> None:
        """Keep ``vecs`` (one row per text); written out every ``flush_every`` vectors."""
        for text, vec in zip(texts, np.asarray(vecs, dtype=np.float32), strict=True):
            self._pending[hashlib.sha256(text.encode("utf-8")).digest()] = vec.copy()
        self.encoded += len(texts)
        if len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write the vectors not yet on disk as one new shard (atomically)."""
        if not self._pending:
            return
        keys = sorted(self._pending)
        dim = int(self._pending[keys[0]].shape[0])
        block = b"".join(keys)
        data = (
            b"".join(_record(k, self._pending[k]) for k in keys)
            + block
            + _footer(block, dim, len(keys))
        )
        path = self.dir / f"{hashlib.sha256(block).hexdigest()[:16]}{SHARD_SUFFIX}"
        # not fsynced: a shard lost to a power cut is only encoded again
        atomic_write_bytes(path, data, durable=False)
        self._pending.clear()
        self._insert(_prefixes(block), len(self._shards))
        self._shards.append(_Shard(path, dim, len(keys)))

    def _insert(self, prefixes: np.ndarray, shard_id: int) -> None:
        """Merge a new shard's (sorted) prefixes into the sorted index: linear, not a sort."""
        order = np.argsort(prefixes, kind="stable")  # sorted already; cheap to be sure
        at = np.searchsorted(self._prefix, prefixes[order], "left")
        self._prefix = np.insert(self._prefix, at, prefixes[order])
        self._shard = np.insert(self._shard, at, np.uint32(shard_id))
        self._row = np.insert(self._row, at, order.astype(np.uint32))
        self._seen = np.insert(self._seen, at, np.uint8(1))  # encoded now: never `reused`

    # -- closing and merging ---------------------------------------------------------------
    def close(self) -> None:
        """Write what is pending, then merge small shards (see the module doc)."""
        self.flush()
        small = [s for s in self._shards if s.count < self.flush_every and s.path.is_file()]
        if len(small) >= MERGE_FANOUT:
            self._merge(small)
        self._close_fds()

    def __enter__(self) -> EmbeddingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self._close_fds()

    def _merge(self, shards: list[_Shard]) -> None:
        """Rewrite ``shards`` as one (intact records only, each key once), then delete them.

        Streams one record at a time to a temp file renamed into place: a kill leaves the
        inputs (and at worst a temp file, swept later), never a partial shard.
        """
        self._close_fds()
        seen: set[bytes] = set()
        keys: list[bytes] = []
        dims = {s.dim for s in shards}
        if len(dims) != 1:
            return
        fd, tmp = tempfile.mkstemp(prefix=".merge.", suffix=".tmp", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as out:
                for shard in shards:
                    with shard.path.open("rb") as fh:
                        for _ in range(shard.count):
                            data = fh.read(shard.record)
                            key = data[:KEY_BYTES]
                            if (
                                len(data) != shard.record
                                or key in seen
                                or struct.unpack("<I", data[-4:])[0] != zlib.crc32(data[:-4])
                            ):
                                continue
                            seen.add(key)
                            keys.append(key)
                            out.write(data)
                block = b"".join(keys)
                out.write(block + _footer(block, dims.pop(), len(keys)))
                out.flush()
                os.fsync(out.fileno())  # durable before its inputs are deleted
            os.chmod(tmp, FILE_MODE)  # mkstemp made it 0600
            name = hashlib.sha256(block).hexdigest()[:16] + SHARD_SUFFIX
            os.replace(tmp, self.dir / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for shard in shards:
            if shard.path.name != name:
                shard.path.unlink(missing_ok=True)
        log.info("merged %d embedding shards into %s", len(shards), self.dir / name)
        self._load()

    # -- the old layout --------------------------------------------------------------------
    def _migrate_npz(self) -> None:
        """Rewrite ``.npz`` shards (``keys``: sha256 hex, ``vecs``: float32 rows) in the
        shard layout, then delete them (damaged ones too: they were never trusted)."""
        legacy = sorted(self.dir.glob("*.npz"))
        if not legacy:
            return
        moved = 0
        for path in legacy:
            try:
                with np.load(path, allow_pickle=False) as data:
                    keys, vecs = data["keys"], np.asarray(data["vecs"], dtype=np.float32)
                if len(keys) != len(vecs) or vecs.ndim != 2:
                    raise ValueError(f"{len(keys)} keys for {len(vecs)} vectors")
                raw = [bytes.fromhex(str(k)) for k in keys]
                if any(len(k) != KEY_BYTES for k in raw):
                    raise ValueError("a key is not a sha256")
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                log.warning("ignoring damaged embedding shard %s (%s)", path, exc)
                continue
            for key, vec in zip(raw, vecs, strict=True):
                self._pending[key] = vec
                if len(self._pending) >= self.flush_every:
                    self._write_pending()
            moved += len(raw)
        self._write_pending()
        for path in legacy:
            path.unlink(missing_ok=True)
        log.info(
            "moved %d stored embeddings in %s from %d .npz files into the shard layout",
            moved,
            self.dir,
            len(legacy),
        )

    def _write_pending(self) -> None:
        """:meth:`flush` before the index exists (while migrating)."""
        self._prefix = np.zeros(0, "<u8")
        self._shard = self._row = np.zeros(0, np.uint32)
        self._seen = np.zeros(0, np.uint8)
        self._shards = []
        self.flush()
