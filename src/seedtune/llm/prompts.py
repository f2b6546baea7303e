"""Prompt templates rendered with ``$name`` fields (each task keeps its own text beside it:
:mod:`seedtune.tasks`), and :func:`fence_safe`, which keeps untrusted text from closing or
forging the block that fences it.

A template file has a ``[system]`` and a ``[user]`` section. Its sha256 (``version``) goes
into every cache key, so editing a prompt invalidates exactly the answers it produced.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from dataclasses import dataclass
from string import Template
from typing import Any

_SECTION = re.compile(r"^\[(system|user)\]\s*$", re.MULTILINE)


@dataclass(frozen=True)
class PromptTemplate:
    """A chat prompt template: system and user text with ``$field`` placeholders."""

    name: str
    system: str
    user: str
    version: str

    def render(self, **fields: object) -> list[dict[str, str]]:
        """Chat messages with every ``$field`` substituted (a missing field is a KeyError)."""
        messages = []
        if self.system:
            messages.append({"role": "system", "content": Template(self.system).substitute(fields)})
        messages.append({"role": "user", "content": Template(self.user).substitute(fields)})
        return messages


def parse_template(name: str, text: str) -> PromptTemplate:
    """Split template text into its sections."""
    parts = _SECTION.split(text)
    sections = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    if "user" not in sections:
        raise ValueError(f"prompt template {name}: needs a [user] section")
    version = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return PromptTemplate(name, sections.get("system", ""), sections["user"], version)


#: The tag that fences untrusted material in the templates (``<참고자료>...</참고자료>``).
FENCE_TAG = "참고자료"
# Angle-bracket look-alikes NFKC leaves alone; an LLM reads them as brackets all the same.
_LOOKALIKES = str.maketrans(
    {**{c: "<" for c in "〈⟨‹«《⧼ᐸ˂❮＜﹤"}, **{c: ">" for c in "〉⟩›»》⧽ᐳ˃❯＞﹥"}}
)
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")
_SPACED_TAG = r"\s*".join(FENCE_TAG)
# an opening or closing fence tag, or the tag name right after / before a bracket
_FORGED = re.compile(rf"<\s*/?\s*{_SPACED_TAG}[^<>\n]{{0,40}}>?|{_SPACED_TAG}\s*>")


def _normal(text: str) -> str:
    """What a reader sees: entities decoded (twice-escaped too), NFKC, look-alike brackets
    as ``<``/``>``, invisible characters dropped."""
    for _ in range(3):
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text)).translate(_LOOKALIKES)


def fence_safe(text: str) -> str:
    """``text`` unchanged, unless a reader could see the fence tag in it: then its normal
    form with the brackets of every such tag turned into parentheses.

    Whatever a document says (``</참고자료>``, ``&lt;/참고자료&gt;``, ``＜／참고 자료＞``,
    zero-width characters inside the name), it cannot end the untrusted block early or
    open a new one. Text without the tag is returned as is, so its prompts (and their
    cache keys) do not change.
    """
    normal = _normal(text)
    if not _FORGED.search(normal):
        return text
    return _FORGED.sub(lambda m: m.group(0).replace("<", "(").replace(">", ")"), normal)


def format_passages(documents: list[dict[str, Any]], top_k: int) -> str:
    """Numbered reference passages; the prompt fences them as untrusted material.

    The same format is used at inference by ``seedtune ask --rag``.
    """
    if not documents or top_k == 0:
        return "(참고 자료 없음)"
    return "\n".join(
        f"[{i}] {fence_safe(d['passage'])}" for i, d in enumerate(documents[:top_k], 1)
    )
