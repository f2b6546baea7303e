"""The synthesize stage's logic: each question's provenance, its answer (the synthesize task:
:mod:`seedtune.tasks.synthesize`) streamed into rows and rejects, a deterministic train/eval
split that holds out questions of every source."""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from seedtune.core.config import SynthesizeConfig
from seedtune.core.errors import InputError
from seedtune.core.records import JsonlWriter, iter_jsonl, write_jsonl
from seedtune.core.stage import check_reject_rate
from seedtune.core.text import stable_hash
from seedtune.llm.client import LLMClient, LLMRequest
from seedtune.llm.prompts import PromptTemplate
from seedtune.tasks.synthesize import answer_row, build_request

log = logging.getLogger(__name__)

#: The source a row without ``question_source`` counts as (questions were only the LLM's
#: before the other sources existed).
DEFAULT_SOURCE = "llm"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def provenance(row: dict[str, Any]) -> dict[str, str | None]:
    """The :data:`~seedtune.tasks.synthesize.PROVENANCE` fields of one data/questions.jsonl
    row: its ``source`` and ``seed``, and for a ``titles`` question the post's ``title``,
    ``link`` and ``category`` (None for anything absent or not a string)."""
    source = _text(row.get("source"))
    post = row if source == "titles" else {}
    return {
        "question_source": source,
        "seed": _text(row.get("seed")),
        "post_title": _text(post.get("title")),
        "post_link": _text(post.get("link")),
        "post_category": _text(post.get("category")),
    }


def read_provenance(path: Path | str) -> dict[str, dict[str, str | None]]:
    """question -> its :func:`provenance`, read row by row from a questions file (only this
    dict is kept). A missing file, a malformed line or a row without a question is one
    :class:`InputError` line naming the file; a question listed twice keeps its first row,
    as the queries stage does."""
    out: dict[str, dict[str, str | None]] = {}
    for n, row in enumerate(iter_jsonl(path), 1):
        q = row.get("question") if isinstance(row, dict) else None
        if not isinstance(q, str) or not q.strip():
            raise InputError(f"{path}: row {n} has no non-empty `question` string")
        out.setdefault(q.strip(), provenance(row))
    return out


def source_of(value: Any) -> str:
    """The split group of a ``question_source`` value (:data:`DEFAULT_SOURCE` when absent)."""
    return value if isinstance(value, str) and value else DEFAULT_SOURCE


class Answers:
    """Checks each ranked question's outcome into a row or a reject
    (:func:`~seedtune.tasks.synthesize.answer_row`),
    counting the personal data masked per kind (``masked``) and the rows whose question is
    not in the questions file (``missing``)."""

    def __init__(
        self,
        cfg: SynthesizeConfig,
        model: str,
        template_version: str,
        questions: Mapping[str, dict[str, str | None]] | None = None,
    ) -> None:
        self.cfg, self.model, self.version = cfg, model, template_version
        self.questions = questions or {}
        self.masked: Counter[str] = Counter()
        self.missing = 0
        self.seen = self.rejected = 0

    def add(
        self, row: dict[str, Any], outcome: Any
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """``(row, None)`` or ``(None, reject)`` for one question."""
        out, reject, found = answer_row(
            row, outcome, self.cfg, self.model, self.version, self.questions.get(row["question"])
        )
        self.masked.update(found)
        self.missing += out is not None and row["question"] not in self.questions
        self.seen += 1
        self.rejected += out is None
        return out, reject

    def metrics(self) -> dict[str, Any]:
        """The counts so far (what metrics/synthesize.json has when the stage fails)."""
        return {
            "questions": self.seen,
            "rejects": self.rejected,
            "pii_masked": dict(sorted(self.masked.items())),
        }


def collect_answers(
    ranked: list[dict[str, Any]],
    outcomes: list[Any],
    cfg: SynthesizeConfig,
    model: str,
    template_version: str,
    questions: Mapping[str, dict[str, str | None]] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, int]]:
    """(instruction rows, rejects, personal data masked per kind) of lists that fit memory
    (see :class:`Answers`)."""
    answers = Answers(cfg, model, template_version, questions)
    rows, rejects = [], []
    for row, o in zip(ranked, outcomes, strict=True):
        out, reject = answers.add(row, o)
        if out is not None:
            rows.append(out)
        else:
            rejects.append(reject)
    return rows, rejects, dict(sorted(answers.masked.items()))


def synthesize(
    ranked: Iterable[dict[str, Any]],
    client: LLMClient,
    cfg: SynthesizeConfig,
    template: PromptTemplate,
    answers: Answers,
    seed: int,
    out: Path | str,
    rejects: Path | str,
    max_reject_rate: float,
) -> dict[str, int]:
    """Answer each ranked question, streaming: rows and rejects are written as outcomes come
    (memory holds the LLM's window and one ``(question, source)`` pair per answer), the
    reject rate is checked, then the train/eval split (:func:`assign_split`, which needs
    every answered question) is added on a second pass into ``out``. ``answers`` is this
    run's (fresh): it counts the questions and rejects. Returns the counts."""
    out = Path(out)
    shown: deque[dict[str, Any]] = deque()  # the rows whose requests are in the window

    def requests() -> Iterator[LLMRequest]:
        for row in ranked:
            shown.append(row)
            yield build_request(row, cfg, template)

    sources: dict[str, str | None] = {}
    unsplit = out.with_name(f".{out.name}.unsplit")
    with (
        JsonlWriter(unsplit, durable=False) as rows,
        JsonlWriter(rejects, never_empty=True) as missing,
    ):
        for outcome in client.stream(requests()):
            row, reject = answers.add(shown.popleft(), outcome)
            if row is None:
                missing.write(reject)  # type: ignore[arg-type]
            else:
                sources[row["question"]] = row["question_source"]
                rows.write(row)
    n = answers.seen  # ``answers`` counts this run's questions and rejects
    try:
        if answers.missing:
            log.warning(
                "%d answered questions are not in the questions file; their "
                "provenance columns are null",
                answers.missing,
            )
        if not n:
            raise InputError(
                "synthesize: no ranked question to answer (data/ranked.jsonl has "
                "no rows); check the rank stage's output"
            )
        check_reject_rate("synthesize", n, answers.rejected, max_reject_rate)
        if not sources:  # every answer rejected, under a max_reject_rate of 1
            raise InputError(f"synthesize: none of the {n} answers is usable; see {rejects}")
        split = assign_split(list(sources), cfg.eval_fraction, cfg.min_eval, seed, sources)
        write_jsonl(out, ({**r, "split": split[r["question"]]} for r in iter_jsonl(unsplit)))
    finally:
        unsplit.unlink(missing_ok=True)
    n_eval = sum(1 for v in split.values() if v == "eval")
    return {
        "questions": n,
        "answers": len(split),
        "rejects": answers.rejected,
        "train": len(split) - n_eval,
        "eval": n_eval,
    }


def assign_split(
    questions: list[str],
    eval_fraction: float,
    min_eval: int,
    seed: int,
    sources: Mapping[str, str | None] | None = None,
) -> dict[str, str]:
    """Deterministic train/eval split by a hash of each question, holding out every source.

    1. A question is ``eval`` when its hash of ``{seed}:{question}`` falls under
       ``eval_fraction`` of the hash range.
    2. When ``eval_fraction > 0``, every source (``sources``: question -> its
       ``question_source``; absent counts as :data:`DEFAULT_SOURCE`) with at least 2
       questions and none in eval yet gets its lowest-hash question topped up into eval, so
       a small source (a few forum titles among many LLM questions) is judged too.
    3. While eval has fewer than ``min(min_eval, len(questions) // 2)`` questions, it is
       topped up round-robin across the sources: each round takes every source's
       lowest-hash train question (lowest hash first among them), until the minimum is met.

    A question's split depends only on its text and the seed, so adding questions never
    moves existing ones, except for the top-ups of steps 2 and 3.
    """
    sources = sources or {}
    hashes = {q: stable_hash(f"{seed}:{q}") for q in questions}
    by_source: dict[str, list[str]] = {}
    for q in sorted(hashes, key=hashes.__getitem__):  # each source's questions by hash
        by_source.setdefault(source_of(sources.get(q)), []).append(q)
    cutoff = eval_fraction * 2**64
    eval_set = {q for q, h in hashes.items() if h < cutoff}
    if eval_fraction > 0:
        for qs in by_source.values():
            # hashes are sorted, so a source's questions under the cutoff are a prefix
            if len(qs) >= 2 and qs[0] not in eval_set:
                eval_set.add(qs[0])
    target = min(min_eval, len(hashes) // 2)
    left = [[q for q in qs if q not in eval_set] for qs in by_source.values()]
    depth = 0
    while len(eval_set) < target:  # train has at least target questions: this ends
        batch = sorted((qs[depth] for qs in left if depth < len(qs)), key=hashes.__getitem__)
        eval_set.update(batch[: target - len(eval_set)])
        depth += 1
    return {q: ("eval" if q in eval_set else "train") for q in questions}


def split_rows(
    rows: list[dict[str, Any]], cfg: SynthesizeConfig, seed: int
) -> list[dict[str, Any]]:
    """``rows`` with a ``split`` field (train/eval) from :func:`assign_split`, which holds
    out questions of every ``question_source`` the rows have."""
    split = assign_split(
        [r["question"] for r in rows],
        cfg.eval_fraction,
        cfg.min_eval,
        seed,
        {r["question"]: r.get("question_source") for r in rows},
    )
    return [{**r, "split": split[r["question"]]} for r in rows]
