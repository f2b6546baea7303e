"""Korean text utilities: normalisation, Hangul share, character n-gram similarity, and
making text from outside safe to store (lone surrogates).

Word tokenizers built for ASCII (rouge_score's default, for one) see nothing in Hangul;
character n-grams work for any script. (Questions' near-duplicates are found on key terms
instead: :mod:`seedtune.synthesis.dedup`; ``make bench`` measures the old bigram rule.)
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

_WS = re.compile(r"\s+")
_SURROGATE = re.compile("[\ud800-\udfff]")
# One list marker at the start (normalize's docstring says which) and the whitespace after it.
_MARKER = re.compile(
    r"^(?:[-*](?=\s)|•"  # a bullet; - and * also sign or stress
    r"|\d{1,2}\.(?=\s|[\uac00-\ud7a3])"  # 1. 전세, 1.전세; not 5.5억
    r"|\(?\d{1,2}\)"  # 2) or (2)
    r"|[\u2460-\u2473])\s*"
)  # ① to ⑳
_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "「": "」", "『": "』"}


def normalize(text: str) -> str:
    """``text`` as NFC with whitespace folded to single spaces, less one leading list marker
    and then one pair of quotes around the whole of it; nothing else is removed.

    A list marker is, at the very start: a bullet ``•``, or ``-`` or ``*`` followed by
    whitespace; a list number of one or two digits and ``.`` followed by whitespace or by a
    Hangul syllable (``1. 전세``, ``1.전세``); one or two digits closed by ``)``, bare or
    bracketed (``2)``, ``(2)``); a circled number ``①`` to ``⑳``. So ``5.5억``, ``3.3㎡당``,
    ``9.19 공동성명``, ``1.5배``, ``-1억``, ``+2%`` and ``2024. 3. 15.`` keep their numbers:
    a decimal, a sign or a year is not a marker. ``1.전세`` counts as one: at the start of a
    question a number, a dot and straight after it a syllable is a list number that an LLM
    ran into its text, never a decimal (whose dot is followed by a digit).

    The quotes are stripped only as a matched pair of one kind (``"…"``, ``'…'``, ``“…”``,
    ``‘…’``, ``「…」``, ``『…』``) that opens the text and closes it: ``"강동역"에 대해…``
    keeps both of its quotes. ``"`` and ``'`` open and close alike, so a pair of them is
    stripped only when no other of that kind is inside (in ``"A"와 "B"`` the first closes
    at ``A``); the other kinds only when the opening one closes at the very end and every
    one inside is balanced.
    """
    text = _WS.sub(" ", unicodedata.normalize("NFC", text)).strip()
    text = _MARKER.sub("", text, count=1)
    return _unquote(text)


def _unquote(text: str) -> str:
    """``text`` less the quotes around it where they are one matched pair (see normalize)."""
    if len(text) < 2 or text[0] not in _QUOTES or text[-1] != _QUOTES[text[0]]:
        return text
    opening, closing = text[0], text[-1]
    inner = text[1:-1]
    if opening == closing:
        if opening in inner:
            return text
    else:
        depth = 1
        for c in inner:
            depth += (c == opening) - (c == closing)
            if depth == 0:  # the opening quote closed before the end
                return text
        if depth != 1:
            return text
    return inner.strip()


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
