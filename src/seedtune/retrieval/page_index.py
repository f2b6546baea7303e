"""Crawled pages by link, read from data/pages.jsonl one row at a time.

crawl writes one row per link (``{link, status, text, ...}``); at 50k questions that is
150k pages, gigabytes of text. :class:`PageIndex` reads the file once, keeping only a
64-bit hash of each usable row's link (``status: ok`` with text) and the row's byte offset,
sorted (16 bytes a page), and reads a row again by seeking to it when asked; the row's link
is compared on read, so a hash clash costs nothing but a read. A link crawled twice gets
its last usable row, as a dict built from the file would.

Try it::

    python -c "from seedtune.retrieval.page_index import PageIndex; \
print(len(PageIndex('data/pages.jsonl')))"
"""

from __future__ import annotations

import array
import codecs
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from seedtune.core.errors import InputError
from seedtune.core.records import decode_line, strip_bom

log = logging.getLogger(__name__)


def link_hash(link: str) -> int:
    """64-bit hash of ``link`` (what the index sorts)."""
    return int.from_bytes(hashlib.blake2b(link.encode("utf-8"), digest_size=8).digest(), "little")


def usable(row: Any) -> bool:
    """Whether a pages.jsonl row is a crawled page with text (what rank splits)."""
    return (
        isinstance(row, dict)
        and row.get("status") == "ok"
        and bool(row.get("text"))
        and isinstance(row.get("link"), str)
    )


class PageIndex:
    """``link -> row`` of a pages.jsonl file for every usable row, without holding rows."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        hashes, offsets = array.array("Q"), array.array("q")
        with self.path.open("rb") as fh:
            offset = 0
            for n, raw in enumerate(fh, 1):
                row = self._parse(raw, n)
                if usable(row):
                    hashes.append(link_hash(row["link"]))
                    offsets.append(offset)
                offset += len(raw)
        h = np.frombuffer(hashes, dtype=np.uint64) if hashes else np.zeros(0, np.uint64)
        o = np.frombuffer(offsets, dtype=np.int64) if offsets else np.zeros(0, np.int64)
        # by hash, then by offset: the last row of a link is the last of its run
        order = np.lexsort((o, h))
        self._hashes, self._offsets = h[order].copy(), o[order].copy()
        self._fh = self.path.open("rb")
        log.info("%d crawled pages with text in %s", len(self._hashes), self.path)

    def _parse(self, raw: bytes, n: int) -> Any:
        """Row ``n`` (its bytes ``raw``), or None for a blank line; bad input names the line."""
        if n == 1:
            raw = strip_bom(self.path, raw)
        line = decode_line(self.path, n, raw)
        if not line.strip():
            return None
        try:
            return json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{self.path}:{n}: not valid JSON ({exc.msg})") from None

    def __len__(self) -> int:
        return len(self._hashes)

    def get(self, link: str) -> dict[str, Any] | None:
        """The last usable row crawled for ``link``, or None."""
        h = np.uint64(link_hash(link))
        lo = int(np.searchsorted(self._hashes, h, "left"))
        hi = int(np.searchsorted(self._hashes, h, "right"))
        for i in range(hi - 1, lo - 1, -1):  # the last row first
            offset = int(self._offsets[i])
            self._fh.seek(offset)
            raw = self._fh.readline()
            if offset == 0 and raw.startswith(codecs.BOM_UTF8):  # warned about when indexed
                raw = raw[len(codecs.BOM_UTF8) :]
            row = json.loads(raw.decode("utf-8"))
            if row.get("link") == link:
                return row
        return None

    def close(self) -> None:
        """Close the file."""
        self._fh.close()

    def __enter__(self) -> PageIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
