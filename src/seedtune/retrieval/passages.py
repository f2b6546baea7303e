"""Page text cut into passages the encoder reads whole.

e5 reads at most 512 tokens (``passage: `` and the special tokens included); anything past
that is silently truncated and never ranked. A page is split into passages of at most
``rank.passage_tokens`` tokens of the encoder's own tokenizer: whole sentences packed
greedily (Korean sentence ends: ``다.``, ``요.``, ``?``, ``!``, and line breaks, which
trafilatura puts between paragraphs), each passage starting with the last sentences of the
one before, up to ``rank.passage_overlap`` tokens, so a fact on a boundary is whole in one of
them. A sentence longer than a passage is cut by words.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

#: After sentence-final punctuation (with closing quotes/brackets) and spaces, or a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?。？！…])[\"'”’)\]」』]*\s+|\n+")

TokenCounter = Callable[[list[str]], list[int]]


def split_sentences(text: str) -> list[str]:
    """Sentences and paragraph lines of ``text``, stripped, empty ones dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def _cut_long(sentence: str, count: TokenCounter, max_tokens: int) -> list[str]:
    """A sentence over ``max_tokens`` as word runs that each fit."""
    words = sentence.split()
    sizes = count(words) if words else []
    pieces, current, size = [], [], 0
    for word, n in zip(words, sizes, strict=True):
        if current and size + n > max_tokens:
            pieces.append(" ".join(current))
            current, size = [], 0
        current.append(word)
        size += n
    if current:
        pieces.append(" ".join(current))
    return pieces


def split_passages(text: str, count: TokenCounter, max_tokens: int, overlap: int = 0) -> list[str]:
    """``text`` as passages of at most ``max_tokens`` tokens (``count`` gives the token
    counts of a list of strings), sentences kept whole where they fit, consecutive
    passages sharing up to ``overlap`` tokens of whole sentences."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be positive")
    sentences = split_sentences(text)
    sizes = count(sentences) if sentences else []
    units: list[tuple[str, int]] = []
    for sentence, n in zip(sentences, sizes, strict=True):
        if n <= max_tokens:
            units.append((sentence, n))
        else:
            pieces = _cut_long(sentence, count, max_tokens)
            units += zip(pieces, count(pieces), strict=True)
    passages: list[str] = []
    current: list[tuple[str, int]] = []
    fresh = False  # whether `current` holds anything beyond the carried-over overlap
    for unit in units:
        # +1: the space joining two sentences may be a token of its own
        if current and sum(n for _, n in current) + len(current) + unit[1] > max_tokens:
            if fresh:
                passages.append(" ".join(s for s, _ in current))
            carry: list[tuple[str, int]] = []
            for prev in reversed(current):
                if sum(n for _, n in carry) + prev[1] > overlap:
                    break
                carry.insert(0, prev)
            while carry and sum(n for _, n in carry) + len(carry) + unit[1] > max_tokens:
                carry.pop(0)
            current, fresh = carry, False
        current.append(unit)
        fresh = True
    if current and fresh:
        passages.append(" ".join(s for s, _ in current))
    return passages


def token_counter(model: object) -> TokenCounter:
    """Token counts by ``model``'s tokenizer, without special tokens; characters when the
    model has no tokenizer."""
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        return lambda texts: [len(t) for t in texts]

    def count(texts: list[str]) -> list[int]:
        if not texts:
            return []
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [len(x) for x in ids]

    return count


def passage_budget(model: object, count: TokenCounter, prefix: str, wanted: int) -> int:
    """Tokens a passage may have so that ``prefix + passage`` and the special tokens fit the
    model's ``max_seq_length``: ``wanted`` or less (``count``: :func:`token_counter`)."""
    limit = getattr(model, "max_seq_length", None) or 512
    prefix_tokens = count([prefix])[0]
    return max(8, min(wanted, limit - prefix_tokens - 2))


def page_passages(
    pages: list[dict[str, Any]],
    model: object,
    passage_tokens: int,
    overlap: int,
    prefix: str = "passage: ",
) -> dict[str, list[str]]:
    """``{link: passages}`` for every crawled page with text (``status: ok``), all at once:
    what :class:`PagePassages` gives link by link, as the rank stage and ``seedtune ask``
    need them."""
    count = token_counter(model)
    budget = passage_budget(model, count, prefix, passage_tokens)
    return {
        p["link"]: split_passages(p["text"], count, budget, min(overlap, budget // 2))
        for p in pages
        if p.get("status") == "ok" and p.get("text")
    }


class PagePassages:
    """``link -> passages`` of crawled pages, split when first asked for, the last
    ``cache_pages`` pages kept (questions about one seed word share pages, and sit side by
    side in data/documents.jsonl); ``pages`` is anything with ``get(link) -> row``, e.g. a
    :class:`seedtune.retrieval.page_index.PageIndex`, or None for no pages."""

    def __init__(
        self,
        pages: Any,
        model: object,
        passage_tokens: int,
        overlap: int,
        prefix: str = "passage: ",
        cache_pages: int = 2048,
    ) -> None:
        self.pages = pages
        self.count = token_counter(model)
        self.budget = passage_budget(model, self.count, prefix, passage_tokens)
        self.overlap = min(overlap, self.budget // 2)
        self.cache_pages = cache_pages
        self._split: OrderedDict[str, list[str] | None] = OrderedDict()

    def get(self, link: str, default: list[str] | None = None) -> list[str] | None:
        """The passages of ``link``'s page, or ``default`` when it has none with text."""
        if link in self._split:
            self._split.move_to_end(link)
        else:
            row = self.pages.get(link) if self.pages is not None else None
            self._split[link] = (
                split_passages(row["text"], self.count, self.budget, self.overlap)
                if row and row.get("status") == "ok" and row.get("text")
                else None
            )
            if len(self._split) > self.cache_pages:
                self._split.popitem(last=False)
        found = self._split[link]
        return default if found is None else found
