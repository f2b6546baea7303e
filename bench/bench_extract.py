"""Benchmark: our main-text extraction and decoding vs plain trafilatura, on real pages.

Run: ``python bench/run.py extract``. Pages and truth come from scrapinghub's
article-extraction benchmark: the committed sample (tests/data/extraction/, 28 pages), or the
whole set (181 pages) from a directory with ``html/<id>.html.gz`` and ``ground-truth.json``
named by ``SEEDTUNE_EXTRACTION_BENCHMARK``; ``pages_set`` says which.

Reported, ours (:func:`seedtune.retrieval.pages.extract_main_text` at ``crawl.min_chars``)
vs trafilatura with its defaults vs our old call (``deduplicate=True``, all pages in one
process): precision, recall and F1 by the benchmark's measure (word 4-gram shingles, each
page weighted alike, precision over pages with output, recall over pages with truth),
pages under ``min_chars`` characters, pages per extraction path, and the characters one
Korean page gives when extracted three times in one process. Decoding: for real Korean
pages (UTF-8 from the sample, EUC-KR from tests/data/charsets/ under a wrong UTF-8 header)
with one byte removed, the characters that differ from the intact page's text, for
:func:`~seedtune.retrieval.fetch.decode_html` and the previous decoder (a detector's guess
as soon as the strict decodes failed).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "extraction"
CHARSETS = ROOT / "tests" / "data" / "charsets"
#: The benchmark's two Korean news pages (entermedia.co.kr), both UTF-8.
KOREAN_PAGES = (
    "0ec95c7261d122f304728e90c983450ef1ce1e0b423546835c397d50aaf0d0f2",
    "9da36ae4714bfccc72374c6c146e9d1cd3cca39e2110bd67ccdbcc806f4cf139",
)
_WORD = re.compile(r"\w+")


def shingles(text: str, n: int = 4) -> Counter[tuple[str, ...]]:
    """Word n-grams of ``text`` (``\\w+`` words), counted; a text shorter than ``n`` words
    is one shingle."""
    words = _WORD.findall(text or "")
    return Counter(
        tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1)) if words[i : i + n]
    )


def match(truth: str, pred: str) -> tuple[float, float, float]:
    """``(tp, fp, fn)`` over shingles, normalised to sum to 1 so each page weighs alike."""
    t, p = shingles(truth), shingles(pred)
    tp, fp, fn = sum((t & p).values()), sum((p - t).values()), sum((t - p).values())
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


def recall(truth: str, pred: str) -> float:
    """Shingle recall of one page's text."""
    tp, _, fn = match(truth, pred)
    return tp / (tp + fn) if tp + fn else 1.0


def scores(matches: list[tuple[float, float, float]]) -> dict[str, float]:
    """Mean precision over pages with output, mean recall over pages with truth, their F1
    (the benchmark's way: a page with nothing extracted costs recall, not precision)."""

    def ratio(a: float, b: float, fp: float, fn: float) -> float:
        return 1.0 if fp == fn == 0 else (a / (a + b) if a + b else 0.0)

    precision = statistics.mean([ratio(tp, fp, fp, fn) for tp, fp, fn in matches if tp + fp])
    rec = statistics.mean([ratio(tp, fn, fp, fn) for tp, fp, fn in matches if tp + fn])
    return {
        "precision": precision,
        "recall": rec,
        "f1": 2 * precision * rec / (precision + rec) if precision + rec else 0.0,
    }


def load_pages(where: Path) -> dict[str, tuple[str, str, str | None]]:
    """``{id: (html, truth text, url)}`` of a benchmark directory; html decoded as the
    crawl decodes a page without a header."""
    from seedtune.retrieval.fetch import decode_html

    truth = json.loads((where / "ground-truth.json").read_text(encoding="utf-8"))
    return {
        k: (
            decode_html(gzip.decompress((where / "html" / f"{k}.html.gz").read_bytes())).text,
            v.get("articleBody", ""),
            v.get("url"),
        )
        for k, v in sorted(truth.items())
    }


def _old_decode(body: bytes, content_type: str | None) -> str:
    """The decoder before replacement characters were kept to bad bytes: strict decodes,
    then charset-normalizer's guess for the whole page."""
    from charset_normalizer import from_bytes

    from seedtune.retrieval.fetch import _codec, declared_charset

    declared = declared_charset(content_type, body)
    for charset in dict.fromkeys(c for c in (declared, "utf-8", "cp949") if c):
        try:
            return body.decode(charset)
        except UnicodeDecodeError:
            continue
    best = from_bytes(body[:200_000]).best()
    charset = (_codec(best.encoding) if best is not None else None) or declared or "utf-8"
    return body.decode(charset, errors="replace")


def changed_chars(a: str, b: str) -> int:
    """Characters of the intact text ``b`` outside its common prefix and suffix with ``a``:
    1 when one of its characters was lost or replaced (by one replacement character or two:
    a UTF-8 character that lost its first byte leaves two stray continuation bytes)."""
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    return len(b) - start - end


def one_bad_byte(body: bytes) -> bytes:
    """``body`` with its middle non-ASCII byte removed."""
    i = len(body) // 2
    while body[i] < 0x80:
        i += 1
    return body[:i] + body[i + 1 :]


def _decoding_figures(utf8_bodies: list[bytes]) -> dict[str, Any]:
    from seedtune.retrieval.fetch import decode_html

    header = "text/html; charset=utf-8"  # right for the UTF-8 pages, wrong for EUC-KR ones
    sets = {
        "utf8": [(b, b.decode("utf-8")) for b in utf8_bodies],
        "euckr": [
            (b, b.decode("cp949"))
            for p in sorted(CHARSETS.iterdir())
            if p.suffix != ".md"
            for b in [p.read_bytes()]
        ],
    }
    figures: dict[str, Any] = {}
    for name, cases in sets.items():
        ours = [changed_chars(decode_html(one_bad_byte(b), header).text, t) for b, t in cases]
        old = [changed_chars(_old_decode(one_bad_byte(b), header), t) for b, t in cases]
        figures.update(
            {
                f"bad_byte_{name}_pages": len(cases),
                f"bad_byte_{name}_changed_ours": "/".join(map(str, ours)),
                f"bad_byte_{name}_changed_old": "/".join(map(str, old)),
            }
        )
    return figures


def run(min_chars: int | None = None) -> dict[str, Any]:
    """Extract every page three ways; the figures in the module docstring."""
    import trafilatura

    from seedtune.retrieval.pages import EXTRACTORS, extract_main_text, tidy

    if min_chars is None:  # the pipeline's own threshold (params.yaml, crawl.min_chars)
        import yaml

        min_chars = int(yaml.safe_load((ROOT / "params.yaml").read_text())["crawl"]["min_chars"])
    env = os.environ.get("SEEDTUNE_EXTRACTION_BENCHMARK")
    where = Path(env) if env else SAMPLE
    pages = load_pages(where)
    matches: dict[str, list[tuple[float, float, float]]] = {"ours": [], "plain": [], "old": []}
    short: Counter[str] = Counter()
    paths: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    for html, truth, url in pages.values():
        t0 = time.perf_counter()
        text, path = extract_main_text(html, url, min_chars)
        seconds["ours"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        plain = tidy(trafilatura.extract(html, url=url) or "")
        seconds["plain"] += time.perf_counter() - t0
        # the old call: its segment cache is the module's own, shared by every call here
        old = tidy(
            trafilatura.extract(
                html, url=url, include_comments=False, include_tables=True, deduplicate=True
            )
            or ""
        )
        paths[path] += 1
        for name, out in (("ours", text), ("plain", plain), ("old", old)):
            matches[name].append(match(truth, out))
            short[name] += len(out) < min_chars
    figures: dict[str, Any] = {
        "pages_set": "full" if env else "sample",
        "pages": len(pages),
        "min_chars": min_chars,
    }
    for name in matches:
        for key, value in scores(matches[name]).items():
            figures[f"{key}_{name}"] = value
        figures[f"empty_{name}"] = short[name]
    figures.update({f"path_{p}": paths[p] for p in EXTRACTORS})
    figures["ms_per_page_ours"] = 1000 * seconds["ours"] / len(pages)
    figures["ms_per_page_plain"] = 1000 * seconds["plain"] / len(pages)
    # the same page three times in one process, after everything above
    korean = load_pages(SAMPLE)[KOREAN_PAGES[0]][0]
    figures["same_page_x3_chars_ours"] = "/".join(
        str(len(extract_main_text(korean, None, min_chars)[0])) for _ in range(3)
    )
    from trafilatura.deduplication import LRUCache
    from trafilatura.settings import LRU_SIZE

    fresh = LRUCache(LRU_SIZE)  # what a new process's module cache starts as
    figures["same_page_x3_chars_old"] = "/".join(
        str(
            len(
                tidy(
                    trafilatura.extract(
                        korean, include_comments=False, include_tables=True, deduplicate=fresh
                    )
                    or ""
                )
            )
        )
        for _ in range(3)
    )
    utf8 = [gzip.decompress((SAMPLE / "html" / f"{k}.html.gz").read_bytes()) for k in KOREAN_PAGES]
    figures.update(_decoding_figures(utf8))
    return figures
