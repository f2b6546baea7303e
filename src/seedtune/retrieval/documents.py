"""Clean documents from Naver Search answers: plain text, one link per page, no repeats.

Naver wraps matches in ``<b>`` tags and escapes entities (sometimes twice); these functions
turn one answer into ``{category, title, description, link, date}`` documents, with
personal data masked (:mod:`seedtune.core.pii`; ``pii_masked`` counts it), and drop repeats
across categories and pages. Pure functions: ``to_documents(category, body)``.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from seedtune.core.errors import InputError
from seedtune.core.paths import DOCUMENTS
from seedtune.core.pii import mask
from seedtune.core.records import iter_jsonl

# Only real tags (a letter after "<"): Naver escapes literal angle brackets in text, so
# "&lt;전세보증보험&gt;" is content and must survive as "<전세보증보험>".
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
# Inline markup that shows up once entities are unescaped (double-escaped "&lt;b&gt;").
_INLINE_TAG = re.compile(r"</?(?:b|strong|em|i|u|br|span|font|p)\b[^<>]*>", re.IGNORECASE)
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")
_WS = re.compile(r"\s+")
_NON_WORD = re.compile(r"\W+")


def clean_text(text: str | None) -> str:
    """Plain text from a Naver title/description.

    Tags such as ``<b>`` are removed, HTML entities unescaped (twice-escaped ones such as
    ``&amp;quot;`` too), Hangul normalised to NFC, and whitespace folded to single spaces.
    """
    text = _TAG.sub("", text or "")
    for _ in range(2):  # Naver sometimes escapes twice
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    text = _INLINE_TAG.sub("", text)
    text = _INVISIBLE.sub("", unicodedata.normalize("NFC", text))
    return _WS.sub(" ", text).strip()


def iso_date(item: dict[str, Any]) -> str | None:
    """The item's date as ``YYYY-MM-DD`` (blog ``postdate``, news ``pubDate``), else None.

    An unparseable value is kept as given rather than lost.
    """
    raw = str(item.get("postdate") or item.get("pubDate") or "").strip()
    if not raw:
        return None
    if re.fullmatch(r"\d{8}", raw):
        return f"{raw[:4]}-{raw[4:6]}-{raw[6:]}"
    try:
        return parsedate_to_datetime(raw).date().isoformat()
    except (TypeError, ValueError):
        return raw


def clean_link(link: str | None) -> str:
    """A result link with escaped ampersands restored (``&amp;`` -> ``&``), nothing more.

    Full unescaping could corrupt a URL (``&lt=2`` is a valid query parameter).
    """
    return str(link or "").strip().replace("&amp;", "&")


def to_documents(category: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Clean documents from one Naver answer: category, title, description, link, date.

    ``link`` is the publisher's ``originallink`` when Naver gives one (news), else ``link``.
    Items with neither title nor description carry nothing to rank and are skipped.
    """
    docs = []
    for item in body.get("items") or []:
        if not isinstance(item, dict):
            continue
        title, description = clean_text(item.get("title")), clean_text(item.get("description"))
        if not (title or description):
            continue
        # personal data never goes further than here: not to ranking, prompts or training
        (title, found_t), (description, found_d) = mask(title), mask(description)
        doc = {
            "category": category,
            "title": title,
            "description": description,
            "link": clean_link(item.get("originallink") or item.get("link")),
            "date": iso_date(item),
        }
        if found_t or found_d:
            doc["pii_masked"] = dict(found_t + found_d)
        docs.append(doc)
    return docs


def link_key(link: str) -> str:
    """A link without scheme, ``www.`` and trailing slash: the same page however written."""
    key = re.sub(r"^[a-z]+://", "", link.strip().lower())
    return key.removeprefix("www.").rstrip("/")


def text_key(text: str) -> str:
    """``text`` without case, width, spacing or punctuation: the same text however written."""
    return _NON_WORD.sub("", unicodedata.normalize("NFKC", text).lower())


def _text_key(doc: dict[str, Any]) -> str:
    """Title and description without case, spacing or punctuation."""
    return text_key(f"{doc['title']} {doc['description']}")


def dedupe_documents(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop repeats (across categories and pages) by link and by normalised text.

    The first occurrence wins, so the order of ``search.categories`` sets the preference.
    """
    seen_links: set[str] = set()
    seen_text: set[str] = set()
    out = []
    for doc in docs:
        link, text = link_key(doc["link"]), _text_key(doc)
        if (link and link in seen_links) or (text and text in seen_text):
            continue
        seen_links.add(link)
        seen_text.add(text)
        out.append(doc)
    return out


def check_rows(rows: list[Any], source: str = DOCUMENTS) -> None:
    """Raise InputError naming the first row that is not ``{question: str, documents: list}``."""
    for n, row in enumerate(rows, 1):
        check_row(row, n, source)


def check_row(row: Any, n: int, source: str = DOCUMENTS) -> None:
    """Raise InputError naming row ``n`` (1-based) of ``source`` unless it is ``{question:
    str, documents: list}`` (:func:`check_rows` for one row of a stream)."""
    if not (
        isinstance(row, dict)
        and isinstance(row.get("question"), str)
        and isinstance(row.get("documents"), list)
    ):
        raise InputError(f"{source}: row {n} is not {{question: str, documents: [...]}}")


def iter_documents(path: Path | str) -> Iterator[dict[str, Any]]:
    """The rows of a documents file, one at a time; the first that is not ``{question:
    str, documents: list}`` is an :class:`InputError` naming the file and row."""
    for n, row in enumerate(iter_jsonl(path), 1):
        check_row(row, n, f"{path}")
        yield row
