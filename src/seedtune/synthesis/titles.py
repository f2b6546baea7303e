"""The queries stage's ``titles`` source: real people's forum titles, rewritten as questions.

As the tutorial did with a Naver real-estate cafe: for each seed word the titles of its
Naver ``cafearticle`` and ``kin`` (지식iN) results (``queries.titles``), cleaned where they
enter (markup, entities, lone surrogates, personal data masked: the search stage's
:mod:`~seedtune.retrieval.documents`), each post once per seed word, are sent
``queries.titles.per_prompt`` at a time to the LLM, which turns each into a standalone
question or drops it with a reason (the titles task: :mod:`seedtune.tasks.titles`). Only the
API's fields are used: no cafe page is fetched (cafe.naver.com's robots.txt forbids it).

Batches are made per seed word from that word's results alone, so adding, removing or
reordering seed words never changes another word's prompts (and never pays for them
again); a post found under two seed words is judged under both and kept once, by the
question dedup. The Naver answers are cached like the search stage's (same client, quota
ledger and cache rules), in ``data/cache/titles``.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from seedtune.core.cache import ResponseCache
from seedtune.core.config import SearchConfig, TitlesConfig
from seedtune.core.credentials import naver_credentials
from seedtune.core.machine import load_machine
from seedtune.retrieval.documents import link_key, text_key
from seedtune.retrieval.naver import NaverClient
from seedtune.retrieval.quota import QuotaExceeded
from seedtune.retrieval.search import search_all, search_question
from seedtune.tasks.titles import Batch, Judged

log = logging.getLogger(__name__)


def search_config(cfg: TitlesConfig, machine: dict[str, Any] | None = None) -> SearchConfig:
    """The Naver client's settings for the titles: this machine's ``search`` settings
    (endpoint, rate, retries, daily quota: the same application and ledger as the search
    stage), with the categories, sort and paging of ``queries.titles``.

    ``per_seed`` results per category take ``ceil(per_seed / 100)`` requests (Naver gives
    at most 100 per request) of an even ``display``.
    """
    settings = (load_machine() if machine is None else machine).get("search") or {}
    pages = math.ceil(cfg.per_seed / 100)
    return SearchConfig(
        **settings,
        categories=list(cfg.categories),
        sort=cfg.sort,
        pages=pages,
        display=math.ceil(cfg.per_seed / pages),
    )


@dataclass
class TitleSet:
    """What the titles source found: the prompts to send, the titles dropped before them,
    how many results Naver gave, and the client that asked (None: source not used)."""

    batches: list[Batch] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    results: int = 0
    client: NaverClient | None = None

    @property
    def sent(self) -> int:
        """Titles sent to the LLM."""
        return sum(len(b.titles) for b in self.batches)

    def add(self, seed: str, documents: list[dict[str, Any]], per_prompt: int) -> None:
        """One seed word's search documents: its titles in prompts, the rest as rejects."""
        self.results += len(documents)
        kept, dropped = seed_titles(seed, documents)
        self.batches += batches(seed, kept, per_prompt)
        self.rejects += dropped


def seed_titles(
    seed: str, documents: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(titles to judge, rejects) of one seed word's search documents: each post once (by
    link and by title text; the first in Naver's order wins), none without a title."""
    kept, rejects = [], []
    seen: dict[str, str] = {}
    for doc in documents:
        title = doc.get("title") or ""
        row = {
            "source": "titles",
            "seed": seed,
            "title": title,
            "link": doc.get("link") or "",
            "category": doc.get("category"),
        }
        if not title:
            rejects.append({**row, "reason": "no_title"})
            continue
        keys = [
            k for k in ("l:" + link_key(row["link"]), "t:" + text_key(title)) if len(k) > 2
        ]  # an empty link or a title of punctuation is no key
        first = next((seen[k] for k in keys if k in seen), None)
        if first is not None:
            rejects.append({**row, "reason": "duplicate", "duplicate_of": first})
            continue
        for k in keys:
            seen[k] = title
        kept.append(row)
    return kept, rejects


def batches(seed: str, titles: list[dict[str, Any]], per_prompt: int) -> list[Batch]:
    """``titles`` in consecutive prompts of at most ``per_prompt``."""
    return [Batch(seed, titles[i : i + per_prompt]) for i in range(0, len(titles), per_prompt)]


def fetch(client: NaverClient, seeds: list[str], cfg: TitlesConfig) -> TitleSet:
    """Every seed word's titles in every category, from the cache or Naver, in prompts.

    A spent quota (Naver's or ``search.daily_quota``) raises
    :class:`~seedtune.retrieval.quota.QuotaExceeded` once the calls in flight have landed
    in the cache; the next run resumes from it.
    """
    # each post's repeats become rejects in seed_titles, not silently dropped by search
    rows, stopped = search_all(
        client, seeds, limit=cfg.per_seed, desc="titles", unit="seed word", dedupe=False
    )
    if stopped:
        raise QuotaExceeded(
            f"{stopped}; titles of {len(rows)}/{len(set(seeds))} seed words fetched, "
            f"{len(client.cache)} answers kept in {client.cache.root}; then rerun `dvc repro`: "
            "it resumes without refetching them"
        )
    found = TitleSet(client=client)
    for row in rows:
        found.add(row["question"], row["documents"], cfg.per_prompt)
    log.info(
        "titles: %d results for %d seed words, %d titles to judge in %d prompts",
        found.results,
        len(rows),
        found.sent,
        len(found.batches),
    )
    return found


def fetch_naver(seeds: list[str], cfg: TitlesConfig, cache: ResponseCache) -> TitleSet:
    """:func:`fetch` through a Naver client of :func:`search_config` on ``cache``; its keys
    (NAVER_CLIENT_ID, NAVER_CLIENT_SECRET) are read only for what the cache lacks."""
    client = NaverClient(search_config(cfg), cache, *naver_credentials())
    return fetch(client, seeds, cfg)


def from_cache(
    client: NaverClient, seeds: list[str], cfg: TitlesConfig
) -> tuple[TitleSet, list[str], int]:
    """What :func:`fetch` would find, from the cache alone (no call, no key needed), the
    seed words whose answers are not all cached yet, and how many pages were cached (for
    ``seedtune estimate``)."""
    hits, missed = 0, False

    def lookup(query: str, category: str, start: int) -> dict[str, Any]:
        nonlocal hits, missed
        hit = client.cached(query, category, start)
        if hit is None:
            missed = True
            return {"items": []}  # ends this category's pages; the next is still looked up
        hits += 1
        return hit

    found, missing = TitleSet(client=client), []
    for seed in dict.fromkeys(seeds):
        missed = False
        row = search_question(client, seed, limit=cfg.per_seed, fetch=lookup, dedupe=False)
        assert row is not None  # no stop event: never stopped
        if missed:
            missing.append(seed)
        else:
            found.add(seed, row["documents"], cfg.per_prompt)
    return found, missing, hits


def metrics(found: TitleSet, judged: Judged) -> dict[str, Any]:
    """metrics/queries.json's ``titles`` (nothing when the source is not used): results
    found, titles sent, prompts, questions made, titles dropped per reason, Naver calls."""
    if found.client is None:
        return {}
    stats = found.client.stats.as_dict("calls", "cache_hits", "retries")
    return {
        "titles": {
            "results": found.results,
            "sent": found.sent,
            "prompts": len(found.batches),
            "questions": len(judged.rows),
            "dropped": dict(
                sorted(Counter(r["reason"] for r in found.rejects + judged.rejects).items())
            ),
            **{f"naver_{k}": v for k, v in stats.items()},
            "naver_calls_today": found.client.budget.used(),
        }
    }
