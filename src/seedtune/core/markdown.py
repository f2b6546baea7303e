"""Markdown from values nobody here wrote: model names, column names, questions, answers,
reject reasons. They are rendered as text, never as links, images or HTML, so a crawled page
or a hostile param cannot put a live ``[..](javascript:..)`` or a remote image into a card or
a report a teammate opens on the Hub or GitHub."""

from __future__ import annotations

import html
import json
import re
from typing import Any


class Markdown(str):
    """Markdown this module wrote itself (a field description with its code spans): the one
    kind of text :func:`table` puts in a cell unescaped. Links and images come only from
    such text, never from a value."""


# what could turn a value into markup: HTML (<, >, & as entities), links and images ([ ]),
# code spans, emphasis and strikethrough, table cells (|), backslashes, and the targets of
# GFM's bare autolinks (scheme://, www., e-mail @)
_MD_SPECIAL = re.compile(
    r"[\\`*\[\]|~@]|:(?=//)|(?<=[wW]{3})\.|(?<![0-9A-Za-z])_"
    r"|_(?![0-9A-Za-z])"
)


def md_text(value: Any) -> str:
    """``value`` as inert markdown text, for prose and table cells alike: on one line, HTML
    escaped, and every character that could start a link, an image, a code span, emphasis
    or a cell boundary backslash-escaped. Every value the card did not write goes through
    this (or :func:`md_code`)."""
    if value is None:
        return "–"
    if isinstance(value, Markdown):
        return re.sub(r"\s+", " ", value).strip()
    if isinstance(value, float):
        value = f"{value:g}"
    elif isinstance(value, list | dict):
        value = json.dumps(value, ensure_ascii=False)
    text = re.sub(r"\s+", " ", str(value)).strip()
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), html.escape(text, quote=False))


def md_code(value: Any) -> str:
    """``value`` as an inline code span (nothing inside one is markup), on one line, fenced
    by more backticks than any run inside it."""
    text = re.sub(r"\s+", " ", "–" if value is None else str(value)).strip()
    ticks = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"
