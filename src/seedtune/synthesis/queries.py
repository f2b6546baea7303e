"""The queries stage's logic: prompts per seed word, then clean, filter and deduplicate.

Requests are one per seed word, so adding a word costs only that word's calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seedtune.core.config import QueriesConfig
from seedtune.core.errors import InputError
from seedtune.core.records import read_lines
from seedtune.core.text import char_ngrams, hangul_share, jaccard, normalize
from seedtune.llm.client import LLMOutcome, LLMRequest
from seedtune.llm.prompts import PromptTemplate
from seedtune.llm.schemas import QuestionList


def load_seeds(cfg: QueriesConfig, root: Path = Path(".")) -> list[str]:
    """The seed words of ``queries.seed_file``, each once, in file order."""
    seeds = list(dict.fromkeys(read_lines(root / cfg.seed_file)))
    if not seeds:
        raise InputError(f"{cfg.seed_file}: no seed words (queries.seed_file wants one per "
                         "line; # starts a comment)")
    return seeds


#: How the prompt asks for each mix of ``queries.forms``.
_INSTRUCTIONS = "\"~알려 주세요\", \"~설명해 주세요\"처럼 요청하는 지시문(명령문)"
FORMS = {
    ("question",): "모두 물음표로 끝나는 의문문입니다.",
    ("instruction",): f"모두 {_INSTRUCTIONS}입니다.",
    ("instruction", "question"): f"물음표로 끝나는 의문문과 {_INSTRUCTIONS}을 섞어 씁니다.",
}


def build_requests(seeds: list[str], cfg: QueriesConfig, template: PromptTemplate
                   ) -> list[LLMRequest]:
    """One structured-output request per seed word, asking for ``queries.forms``."""
    forms = FORMS[tuple(sorted(set(cfg.forms)))]
    return [LLMRequest(id=seed, messages=template.render(seed=seed, n=cfg.per_seed, forms=forms),
                       schema=QuestionList, temperature=cfg.temperature,
                       template_version=template.version) for seed in seeds]


def candidates(outcomes: list[LLMOutcome], model: str, template_version: str,
               extra: list[str]) -> list[dict[str, Any]]:
    """Every question generated or supplied, with its provenance, before filtering."""
    rows: list[dict[str, Any]] = []
    for o in outcomes:
        if o.value is None:
            continue
        for q in o.value["questions"]:
            rows.append({"question": q, "seed": o.id, "source": "llm", "model": model,
                         "template": template_version})
    rows += [{"question": q, "seed": None, "source": "user", "model": None, "template": None}
             for q in extra]
    return rows


def filter_questions(rows: list[dict[str, Any]], cfg: QueriesConfig
                     ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Normalise, drop bad lengths / non-Korean, then exact and near duplicates.

    Exact duplicates are removed across the whole set; near duplicates (syllable-bigram
    Jaccard >= ``dedup_threshold``) among the questions of the same seed word, because
    questions about two different terms in the same phrasing ("전세의 장단점은?" /
    "월세의 장단점은?") share most bigrams yet are not duplicates. Returns the kept rows
    (first occurrence wins) and counts for the metrics.
    """
    counts = {"generated": len(rows), "filtered": 0, "duplicates": 0, "kept": 0}
    kept: list[dict[str, Any]] = []
    grams: dict[str | None, list[set[str]]] = {}
    seen: set[str] = set()
    for row in rows:
        q = normalize(row["question"])
        if not (cfg.min_chars <= len(q) <= cfg.max_chars) or \
                hangul_share(q) < cfg.min_hangul_share:
            counts["filtered"] += 1
            continue
        g = char_ngrams(q, 2)  # syllable bigrams: Hangul syllables are information-dense
        group = grams.setdefault(row.get("seed"), [])
        if q in seen or any(jaccard(g, other) >= cfg.dedup_threshold for other in group):
            counts["duplicates"] += 1
            continue
        seen.add(q)
        group.append(g)
        kept.append({**row, "question": q})
    counts["kept"] = len(kept)
    return kept, counts
