"""Korean text utilities: normalisation, Hangul share, character n-gram similarity, and
making text from outside safe to store (lone surrogates).

Word tokenizers built for ASCII (rouge_score's default, for one) see nothing in Hangul, so
near-duplicates are found on character 3-grams, which work for any script.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

_WS = re.compile(r"\s+")
_SURROGATE = re.compile("[\ud800-\udfff]")


def normalize(text: str) -> str:
    """NFC, folded whitespace, stripped list markers and quotes."""
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", text)
    text = text.strip().strip("\"'“”‘’")
    return _WS.sub(" ", text).strip()


def hangul_share(text: str) -> float:
    """Share of letters (not digits, spaces, punctuation) that are Hangul syllables/jamo."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    hangul = sum(1 for c in letters if "\uac00" <= c <= "\ud7a3" or "\u3131" <= c <= "\u318e")
    return hangul / len(letters)


def char_ngrams(text: str, n: int = 3) -> set[str]:
    """Character n-grams of ``text`` with whitespace and punctuation removed."""
    s = re.sub(r"[\s\W_]+", "", text.lower())
    if len(s) <= n:
        return {s} if s else set()
    return {s[i : i + n] for i in range(len(s) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    """Jaccard similarity of two sets (0 when both are empty)."""
    if not a and not b:
        return 0.0
    return len(a & b) / len(a | b)


def stable_hash(text: str) -> int:
    """A process-independent 64-bit hash (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def replace_lone_surrogates(value: Any) -> tuple[Any, int]:
    """``value`` (a str, or lists/dicts of them) with every lone surrogate replaced by U+FFFD,
    and how many were replaced.

    ``json.loads`` turns ``"\\ud83d"`` (half of an emoji's surrogate pair) into a str that
    cannot be encoded as UTF-8, so it could never be cached or written out.
    """
    if isinstance(value, str):
        fixed, n = _SURROGATE.subn("\ufffd", value)
        return fixed, n
    if isinstance(value, list):
        pairs = [replace_lone_surrogates(v) for v in value]
        return [v for v, _ in pairs], sum(n for _, n in pairs)
    if isinstance(value, dict):
        out, total = {}, 0
        for k, v in value.items():
            (k2, n1), (v2, n2) = replace_lone_surrogates(k), replace_lone_surrogates(v)
            out[k2] = v2
            total += n1 + n2
        return out, total
    return value, 0
