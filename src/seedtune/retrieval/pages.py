"""Main text of a fetched page: trafilatura's extraction, tidied, personal data masked.

trafilatura drops navigation, comments, related-article lists and footers and keeps the
body's paragraphs (one per line). The text is NFC-normalised with whitespace folded inside
each paragraph, and personal data is masked (:mod:`seedtune.core.pii`) before anything else
sees it: the passages, the encoder, the prompts and the training data only ever get the
masked text.
"""

from __future__ import annotations

import logging
import re
import unicodedata

from seedtune.core.pii import mask
from seedtune.core.text import replace_lone_surrogates

log = logging.getLogger(__name__)

_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")


def extract_main_text(html: str, url: str | None = None) -> str:
    """The page's main text, one paragraph per line ("" when trafilatura finds none)."""
    import trafilatura

    try:
        text = trafilatura.extract(html, url=url, include_comments=False, include_tables=True,
                                   include_links=False, include_images=False,
                                   deduplicate=True, output_format="txt")
    except Exception as exc:  # noqa: BLE001 - a page that breaks the parser is a page without text
        log.warning("no text extracted from %s (%s: %s)", url, type(exc).__name__, exc)
        return ""
    return tidy(text or "")


def tidy(text: str) -> str:
    """NFC, invisible characters removed, spaces folded within lines, blank lines dropped."""
    text = replace_lone_surrogates(text)[0]
    text = _INVISIBLE.sub("", unicodedata.normalize("NFC", text))
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def page_text(html: str, url: str | None = None) -> tuple[str, dict[str, int]]:
    """``(masked main text, {kind: count masked})`` of one page."""
    text, found = mask(extract_main_text(html, url))
    return text, dict(found)
