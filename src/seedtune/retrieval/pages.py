"""Main text of a fetched page: trafilatura's extraction, tidied, personal data masked.

trafilatura drops navigation, comments, related-article lists and footers and keeps the
body's paragraphs (one per line). Each page is extracted on its own: trafilatura's
``deduplicate`` keeps a cache of the segments it has seen across calls (and across one
call's own internal passes), so the same page came out whole, whole, then empty the third
time, and 3 of the 181 pages of the article-extraction benchmark (both Korean news pages
among them) came out empty. It is off, so a page's text never depends on what was
extracted before it.

When trafilatura's pass gives fewer than ``min_chars`` characters from a page whose visible
text is much longer (at least :data:`FALLBACK_FACTOR` times ``min_chars``), two fallbacks
are tried in turn: trafilatura with ``favor_recall`` (a page whose body it judged too small
or too link-heavy), then its baseline extractor (embedded JSON-LD ``articleBody``,
``<article>``, ``<p>``, and at worst the whole body). :class:`PageText` records which path
gave the text (``extractor``: ``trafilatura``, ``favor_recall`` or ``baseline``). A
fallback's text that is mostly link labels (a menu, a category list: see
:data:`MAX_LINK_SHARE`) is not taken, so a page trafilatura found (almost) nothing on does
not become a list of menu entries, and a genuinely short page stays short (``empty`` in
the crawl). trafilatura's own text is always kept: a page it extracts never comes out
empty.

The text is NFC-normalised with whitespace folded inside each paragraph, and personal data
is masked (:mod:`seedtune.core.pii`) before anything else sees it: the passages, the
encoder, the prompts and the training data only ever get the masked text.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from seedtune.core.pii import mask
from seedtune.core.text import replace_lone_surrogates

log = logging.getLogger(__name__)

#: The fallbacks run only on a page whose visible text is at least this many times
#: ``min_chars``: a short page with a little chrome is short, not a failed extraction.
FALLBACK_FACTOR = 3
#: A text whose characters are mostly (over this share) whole link labels of the page is a
#: menu or a list of links, not main text.
MAX_LINK_SHARE = 0.5
#: The extraction paths, in the order they are tried.
EXTRACTORS = ("trafilatura", "favor_recall", "baseline")

_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")


@dataclass
class PageText:
    """One page's masked main text, what was masked (``{kind: count}``) and the path that
    extracted it (one of :data:`EXTRACTORS`)."""

    text: str
    pii_masked: dict[str, int] = field(default_factory=dict)
    extractor: str = "trafilatura"


def _trafilatura(html: str, url: str | None, favor_recall: bool = False) -> str:
    import trafilatura

    # deduplicate stays off: its segment cache outlives the call (see the module docstring)
    return (
        trafilatura.extract(
            html,
            url=url,
            include_comments=False,
            include_tables=True,
            include_links=False,
            include_images=False,
            favor_recall=favor_recall,
            deduplicate=False,
            output_format="txt",
        )
        or ""
    )


def _baseline(html: str, url: str | None) -> str:
    import trafilatura

    return trafilatura.baseline(html)[1]


_PASSES: dict[str, Callable[[str, str | None], str]] = {
    "trafilatura": _trafilatura,
    "favor_recall": lambda html, url: _trafilatura(html, url, favor_recall=True),
    "baseline": _baseline,
}


def _run(name: str, html: str, url: str | None) -> str:
    try:
        return tidy(_PASSES[name](html, url))
    except Exception as exc:  # noqa: BLE001 - a page that breaks the parser is a page without text
        log.warning("%s: no text extracted from %s (%s: %s)", name, url, type(exc).__name__, exc)
        return ""


def _link_labels(tree: Any) -> set[str]:
    """The link labels of a parsed page (an lxml tree), tidied."""
    return {tidy(a.text_content()) for a in tree.iter("a")} - {""}


def link_share(text: str, labels: set[str]) -> float:
    """The share of ``text``'s characters in lines that are a link label, whole."""
    lines = text.splitlines()
    total = sum(len(line) for line in lines)
    return sum(len(line) for line in lines if line in labels) / total if total else 0.0


def extract_main_text(html: str, url: str | None = None, min_chars: int = 0) -> tuple[str, str]:
    """``(main text, extractor)``: one paragraph per line, "" when no path finds text.

    trafilatura first; its fallbacks only when it gives fewer than ``min_chars`` characters
    from a page with at least :data:`FALLBACK_FACTOR` times as much visible text, and a
    fallback's text that is mostly link labels is not taken (module docstring).
    """
    need = max(min_chars, 1)
    # trafilatura's own text is kept whatever it is: a page it extracts never comes out
    # empty; only what a fallback finds must not be a menu
    first = _run("trafilatura", html, url)
    if len(first) >= need:
        return first, "trafilatura"
    import trafilatura
    from trafilatura.utils import load_html

    tree = load_html(html)  # parsed again only for the few pages that need a second look
    if tree is None or len(tidy(trafilatura.html2txt(tree))) < FALLBACK_FACTOR * need:
        return first, "trafilatura"
    for name in EXTRACTORS[1:]:
        text = _run(name, html, url)
        if len(text) >= need and link_share(text, _link_labels(tree)) <= MAX_LINK_SHARE:
            return text, name
    return first, "trafilatura"


def tidy(text: str) -> str:
    """NFC, invisible characters removed, spaces folded within lines, blank lines dropped."""
    text = replace_lone_surrogates(text)[0]
    text = _INVISIBLE.sub("", unicodedata.normalize("NFC", text))
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def page_text(html: str, url: str | None = None, min_chars: int = 0) -> PageText:
    """One page's masked main text (:func:`extract_main_text`), what was masked and the
    path that extracted it."""
    text, extractor = extract_main_text(html, url, min_chars)
    masked, found = mask(text)
    return PageText(masked, dict(found), extractor)
