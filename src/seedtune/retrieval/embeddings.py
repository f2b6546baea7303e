"""Embeddings kept across runs, so that a rerun of rank encodes only texts it has not seen.

The rank stage reruns whenever ``rank.top_k``, ``rank.max_gap`` or the documents change,
yet most of its texts were encoded last time; on a CPU encoding is most of its time. The
store keeps one directory per encoder (:func:`encoder_fingerprint`) of immutable shards
``<root>/<fingerprint>/<sha>.npz`` (``keys``: sha256 of each prefixed text, ``vecs``:
float32 L2-normalised rows), each written atomically once ``flush_every`` new vectors have
piled up: a kill loses at most one shard's worth of work, and DVC (``persist: true``)
pushes only the shards that are new.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from seedtune.core.records import atomic_write_bytes

log = logging.getLogger(__name__)

#: Texts whose embeddings identify an encoder: its weights, tokenizer, pooling and dtype all
#: show in them (Korean and English, with each e5 prefix).
PROBES = ("query: 전세 계약 전에 확인할 서류는 무엇인가요?",
          "passage: 확정일자와 전입신고로 대항력을 갖춘 임차인은 보증금을 보호받는다.",
          "query: What does a lease registration protect?")


def text_key(text: str) -> str:
    """sha256 hex of ``text`` (the prefixed text, exactly as it is encoded)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encoder_fingerprint(model: Any) -> str:
    """A short id that changes whenever the encoder would embed differently.

    Hashes the embeddings of :data:`PROBES` (rounded to 1e-4, so float noise between runs
    does not split the store), the parameter dtype and the truncation length, which the
    short probes cannot reveal. Costs one small encode.
    """
    vecs = np.asarray(model.encode(list(PROBES), prompt="", convert_to_numpy=True,
                                   show_progress_bar=False), dtype=np.float64)
    try:
        dtype = str(next(model.parameters()).dtype)
    except (AttributeError, StopIteration, TypeError):
        dtype = "unknown"
    meta = json.dumps({"dtype": dtype, "max_seq_length": getattr(model, "max_seq_length", None),
                       "dim": int(vecs.shape[1])}, sort_keys=True)
    digest = hashlib.sha256(meta.encode("utf-8"))
    digest.update(np.round(vecs, 4).astype("<f8").tobytes())
    return digest.hexdigest()[:16]


class EmbeddingStore:
    """Vectors of one encoder, read from and appended to ``root/fingerprint``."""

    def __init__(self, root: Path | str, fingerprint: str, flush_every: int = 2048) -> None:
        self.dir = Path(root) / fingerprint
        self.flush_every = flush_every
        self._vectors: dict[str, np.ndarray] = {}
        self._pending: dict[str, np.ndarray] = {}
        self.reused = 0
        self.encoded = 0
        for shard in sorted(self.dir.glob("*.npz")):
            self._read(shard)
        if self._vectors:
            log.info("%d stored embeddings for this encoder in %s", len(self._vectors), self.dir)

    def _read(self, shard: Path) -> None:
        try:
            with np.load(shard, allow_pickle=False) as data:
                keys, vecs = data["keys"], np.asarray(data["vecs"], dtype=np.float32)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            # a damaged shard only costs re-encoding its texts; it is never trusted
            log.warning("ignoring unreadable embedding shard %s (%s)", shard, exc)
            return
        if len(keys) != len(vecs):
            log.warning("ignoring embedding shard %s: %d keys for %d vectors", shard,
                        len(keys), len(vecs))
            return
        self._vectors.update(zip((str(k) for k in keys), vecs, strict=True))

    def __len__(self) -> int:
        return len(self._vectors) + len(self._pending)

    def get(self, text: str) -> np.ndarray | None:
        """The stored vector of ``text`` (prefixed), or None; counts a hit in ``reused``."""
        key = text_key(text)
        vec = self._vectors.get(key)
        if vec is None:
            vec = self._pending.get(key)
        if vec is not None:
            self.reused += 1
        return vec

    def add(self, texts: list[str], vecs: np.ndarray) -> None:
        """Keep ``vecs`` (one row per text); written out every ``flush_every`` vectors."""
        for text, vec in zip(texts, np.asarray(vecs, dtype=np.float32), strict=True):
            self._pending[text_key(text)] = vec
        self.encoded += len(texts)
        if len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write the vectors not yet on disk as one new shard (atomically)."""
        if not self._pending:
            return
        keys = sorted(self._pending)
        vecs = np.stack([self._pending[k] for k in keys])
        buf = io.BytesIO()
        np.savez(buf, keys=np.array(keys), vecs=vecs)
        name = hashlib.sha256("".join(keys).encode("ascii")).hexdigest()[:16]
        # not fsynced: an entry lost to a power cut is only encoded again
        atomic_write_bytes(self.dir / f"{name}.npz", buf.getvalue(), durable=False)
        self._vectors.update(self._pending)
        self._pending.clear()
