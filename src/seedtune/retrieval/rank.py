"""Rank each question's search results with a multilingual-e5 sentence-transformers encoder.

e5 was trained with prefixes and scores poorly without them: questions are embedded as
``"query: " + question`` and documents as ``"passage: " + passage`` (the model's own default
prompt, if it has one, is switched off so nothing is prefixed twice). The model is loaded
once; every unique question and passage is embedded once, in batches sorted by token length
(little padding) across many questions, rather than once per question. Scores are cosines of
the L2-normalised embeddings, computed in float32 even when the encoder runs in fp16.
Given a :class:`seedtune.retrieval.embeddings.EmbeddingStore`, texts embedded by an earlier run
(or an earlier chunk) of the same encoder are not encoded again. The rank stage goes through
data/documents.jsonl :data:`CHUNK_QUESTIONS` questions at a time (:func:`rank_stream`), so
its memory is bounded by a chunk, not by the run.

Instead of the tutorial's absolute threshold (e5 cosines crowd into 0.7-1.0, so 0.9 keeps
almost nothing or almost everything depending on the model), a question keeps its ``top_k``
best passages that score within ``max_gap`` of its best one.

Try it::

    python -c "from seedtune.retrieval.rank import load_encoder as load; \
load('intfloat/multilingual-e5-small')"
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, Protocol

import numpy as np

from seedtune.core.config import RankConfig
from seedtune.core.device import pick_device
from seedtune.core.errors import ConfigError
from seedtune.core.machine import locate_model
from seedtune.retrieval.embeddings import EmbeddingStore
from seedtune.retrieval.passages import PagePassages

log = logging.getLogger(__name__)

QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
#: Questions ranked at a time by :func:`rank_stream`: memory holds one chunk's rows, texts
#: and vectors (about 16k passages), not the run's; each chunk's texts are length-sorted
#: into batches, which wastes little padding at this size.
CHUNK_QUESTIONS = 512


def load_encoder(name_or_path: str, device: str = "auto") -> Any:
    """Load a SentenceTransformer once, on ``device`` (fp16 on a GPU: cuda or mps).

    Raises :class:`ConfigError` naming ``rank.model`` when it cannot be loaded.
    """
    from sentence_transformers import SentenceTransformer

    path = locate_model(name_or_path, "params.yaml: rank.model")  # through models:, checked
    dev = pick_device(device, "rank.device")
    kwargs: dict[str, Any] = {}
    if dev in ("cuda", "mps"):
        import torch

        # loaded straight into fp16 (no fp32 copy on the GPU); scores are still float32
        kwargs["model_kwargs"] = {"dtype": torch.float16}
    log.info("loading encoder %s on %s", path, dev)
    try:
        return SentenceTransformer(path, device=dev, **kwargs)
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        via = f" (models: maps it to {path})" if path != name_or_path else ""
        raise ConfigError(
            f"rank.model: cannot load {name_or_path!r}{via} ({reason}); use a "
            "sentence-transformers model id, or map it to a local directory "
            "under models: in conf/local/default.yaml"
        ) from None


def passage_text(doc: dict[str, Any]) -> str:
    """The text embedded for a document (without the prefix): title, then description."""
    parts = (str(doc.get("title") or "").strip(), str(doc.get("description") or "").strip())
    return " ".join(p for p in parts if p)


def _token_lengths(model: Any, texts: list[str]) -> list[int]:
    """Token counts (capped at the model's limit) to sort by; characters if no tokenizer."""
    tokenizer = getattr(model, "tokenizer", None)
    if not texts:
        return []
    if tokenizer is None:
        return [len(t) for t in texts]
    limit = getattr(model, "max_seq_length", None) or 512
    ids = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=limit)
    return [len(x) for x in ids["input_ids"]]


def embed(
    model: Any,
    texts: list[str],
    prefix: str,
    batch_size: int,
    desc: str = "encode",
    store: EmbeddingStore | None = None,
    flush: bool = True,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """float32 L2-normalised embeddings of ``prefix + text``, one row per text, in order.

    Texts go through the encoder longest first in batches of ``batch_size``, so each batch
    is padded only to lengths its neighbours share. With a ``store``, texts it holds are
    not encoded again and the newly encoded ones are added to it (and, with ``flush``,
    written out before returning). ``progress`` (optional) is called with the size of each
    batch encoded, instead of a progress bar of batches.
    """
    from tqdm.auto import tqdm

    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    prefixed = [prefix + t for t in texts]
    rows: list[np.ndarray | None] = (
        store.lookup(prefixed) if store is not None else [None] * len(prefixed)
    )
    todo = [i for i, row in enumerate(rows) if row is None]
    if store is not None and len(todo) < len(texts):
        log.debug(
            "%s: %d of %d embeddings reused from %s",
            desc,
            len(texts) - len(todo),
            len(texts),
            store.dir,
        )
    lengths = _token_lengths(model, [prefixed[i] for i in todo])
    order = [todo[j] for j in np.argsort([-n for n in lengths], kind="stable")]
    starts = range(0, len(order), batch_size)
    try:
        for start in tqdm(
            starts, desc=desc, unit="batch", disable=len(starts) < 2 or progress is not None
        ):
            idx = order[start : start + batch_size]
            batch = [prefixed[i] for i in idx]
            # prompt="" keeps a model's default prompt (if any) from being added to ours
            vecs = np.asarray(
                model.encode(
                    batch,
                    prompt="",
                    batch_size=len(idx),
                    convert_to_numpy=True,
                    show_progress_bar=False,
                ),
                dtype=np.float32,
            )
            vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
            for i, vec in zip(idx, vecs, strict=True):
                rows[i] = vec
            if store is not None:
                store.add(batch, vecs)
            if progress is not None:
                progress(len(idx))
    finally:
        if store is not None and flush:
            store.flush()  # also on Ctrl-C or an error: what was encoded is kept
    return np.stack(rows)  # type: ignore[arg-type]  # every row is filled by now


def _within_gap(scored: list[dict[str, Any]], max_gap: float) -> list[dict[str, Any]]:
    """The documents scoring within ``max_gap`` of the best, high to low (the relative cut)."""
    ranked = sorted(scored, key=lambda d: d["score"], reverse=True)  # stable: ties keep order
    return [d for d in ranked if d["score"] >= ranked[0]["score"] - max_gap] if ranked else []


def keep_top(scored: list[dict[str, Any]], top_k: int, max_gap: float) -> list[dict[str, Any]]:
    """The ``top_k`` best documents scoring within ``max_gap`` of the best, high to low."""
    return _within_gap(scored, max_gap)[:top_k]


def keep_pages_first(
    scored: list[dict[str, Any]], top_k: int, max_gap: float
) -> list[dict[str, Any]]:
    """The relative cut of :func:`keep_top` (within ``max_gap`` of the best of all), then
    page passages first and the best snippets in the slots left, each group high to low.

    A snippet is a one- or two-sentence summary that repeats the query's words (Naver
    highlights them), so by cosine it often edges out a passage of the very page it
    summarises; the page says more, so it is what answers are grounded on when there is one.
    A page passage far below the best (a login wall, a cookie notice) is still cut.
    """
    ranked = _within_gap(scored, max_gap)
    pages = [d for d in ranked if d.get("kind") == "page"]
    return (pages + [d for d in ranked if d.get("kind") != "page"])[:top_k]


class PageLookup(Protocol):
    """Passages of a crawled page by its link: a dict, or
    :class:`seedtune.retrieval.passages.PagePassages`."""

    def get(self, link: str, default: None = None, /) -> list[str] | None: ...


def candidates(
    docs: list[dict[str, Any]], pages: PageLookup | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """``(passage, doc)`` to score for one question, each passage text once.

    A document whose page was crawled gives one candidate per passage of the page
    (``kind: page``); any other gives its snippet, title then description (``kind:
    snippet``).
    """
    seen: set[str] = set()
    out = []
    for doc in docs:
        chunks = pages.get(doc.get("link") or "") if pages is not None else None
        # one dict per document, shared by its passages: a page has dozens
        tagged = {**doc, "kind": "page" if chunks else "snippet"}
        for text in chunks or [passage_text(doc)]:
            if text and text not in seen:
                seen.add(text)
                out.append((text, tagged))
    return out


def rank_rows(
    model: Any,
    rows: list[dict[str, Any]],
    top_k: int,
    max_gap: float,
    batch_size: int = 64,
    store: EmbeddingStore | None = None,
    pages: PageLookup | None = None,
    prefer_pages: bool = True,
) -> list[dict[str, Any]]:
    """Score, cut and sort each ``{question, documents}`` row's passages, all rows at once.

    ``pages`` maps a document's link to its page's passages (:mod:`.passages`); those are
    ranked instead of the document's snippet; with ``prefer_pages`` (``rank.prefer_pages``)
    page passages take the slots first (:func:`keep_pages_first`). Each kept candidate is
    the document with ``kind`` (page or snippet), ``passage`` (the exact text embedded,
    without its prefix) and ``score`` (cosine with the question), sorted high to low. A
    question without documents stays, with an empty list. ``store`` (optional) supplies and
    keeps embeddings. :func:`rank_stream` does the same a chunk of rows at a time.
    """
    try:
        return _rank_chunk(model, rows, top_k, max_gap, batch_size, store, pages, prefer_pages)
    finally:
        if store is not None:
            store.flush()  # also on Ctrl-C or an error: what was encoded is kept


def _rank_chunk(
    model: Any,
    rows: list[dict[str, Any]],
    top_k: int,
    max_gap: float,
    batch_size: int,
    store: EmbeddingStore | None,
    pages: PageLookup | None,
    prefer_pages: bool,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """:func:`rank_rows` without writing the store's pending vectors out."""
    per_row = [candidates(r["documents"], pages) for r in rows]
    questions = list(dict.fromkeys(r["question"] for r in rows))
    passages = list(dict.fromkeys(text for cands in per_row for text, _ in cands))
    q_emb = embed(
        model,
        questions,
        QUERY_PREFIX,
        batch_size,
        "rank: questions",
        store,
        flush=False,
        progress=progress,
    )
    p_emb = embed(
        model,
        passages,
        PASSAGE_PREFIX,
        batch_size,
        "rank: passages",
        store,
        flush=False,
        progress=progress,
    )
    q_index = {q: i for i, q in enumerate(questions)}
    p_index = {p: i for i, p in enumerate(passages)}
    out = []
    for row, docs in zip(rows, per_row, strict=True):
        scores = (
            p_emb[[p_index[t] for t, _ in docs]] @ q_emb[q_index[row["question"]]] if docs else []
        )
        scored = [
            {**doc, "passage": text, "score": float(s)}
            for (text, doc), s in zip(docs, scores, strict=True)
        ]
        out.append(
            {
                "question": row["question"],
                "documents": (
                    keep_pages_first(scored, top_k, max_gap)
                    if prefer_pages
                    else keep_top(scored, top_k, max_gap)
                ),
            }
        )
    return out


def rank_stream(
    model: Any,
    rows: Iterable[dict[str, Any]],
    top_k: int,
    max_gap: float,
    batch_size: int,
    store: EmbeddingStore,
    pages: PageLookup | None = None,
    prefer_pages: bool = True,
    chunk: int = CHUNK_QUESTIONS,
    progress: Any = None,
) -> Iterator[dict[str, Any]]:
    """:func:`rank_rows` over ``rows`` (an iterable: e.g. a file read a row at a time),
    ``chunk`` rows at a time, yielding ranked rows in order: memory holds one chunk.

    Each chunk's texts are looked up in ``store`` and only the missing ones encoded (sorted
    by length within the chunk), so a text shared with an earlier chunk is encoded once;
    the ranked rows are those :func:`rank_rows` gives for all rows at once. ``progress``
    (optional: a tqdm bar over questions) is advanced a chunk at a time and shows how many
    texts were encoded so far. The store's pending vectors are written out at the end, or
    on an error.
    """
    log.debug("ranking %d questions a chunk", chunk)

    def encoded(_: int) -> None:
        if progress is not None:
            progress.set_postfix(encoded=store.encoded, reused=store.reused, refresh=True)

    try:
        for n, part in enumerate(_batched(rows, chunk)):
            before = store.encoded
            yield from _rank_chunk(
                model, part, top_k, max_gap, batch_size, store, pages, prefer_pages, encoded
            )
            log.debug(
                "chunk %d: %d questions, %d texts encoded", n, len(part), store.encoded - before
            )
            if progress is not None:
                progress.update(len(part))
    finally:
        store.flush()  # also on Ctrl-C or an error: what was encoded is kept


def rank_questions(
    model: Any,
    rows: Iterable[dict[str, Any]],
    cfg: RankConfig,
    store: EmbeddingStore,
    pages: Any = None,
    progress: Any = None,
) -> Iterator[dict[str, Any]]:
    """The rank stage's work, which ``seedtune ask --rag`` does for its one question too:
    ``rows`` (``{question, documents}``) ranked by :func:`rank_stream` under the ``rank``
    section, a document's crawled page cut into passages when first needed
    (:class:`~seedtune.retrieval.passages.PagePassages`). ``pages``: anything with
    ``get(link) -> page row`` (a :class:`~seedtune.retrieval.page_index.PageIndex`, a dict
    of data/pages.jsonl rows by link), or None when nothing was crawled."""
    passages = PagePassages(pages, model, cfg.passage_tokens, cfg.passage_overlap, PASSAGE_PREFIX)
    return rank_stream(
        model,
        rows,
        cfg.top_k,
        cfg.max_gap,
        cfg.batch_size,
        store,
        passages,
        cfg.prefer_pages,
        progress=progress,
    )


def _batched(rows: Iterable[dict[str, Any]], n: int) -> Iterator[list[dict[str, Any]]]:
    """``rows`` in lists of ``n`` (the last one shorter); itertools.batched from 3.12 on."""
    it = iter(rows)
    while part := list(islice(it, n)):
        yield part


class RankMetrics:
    """metrics/rank.json accumulated a ranked row at a time (see :func:`rank_metrics`)."""

    def __init__(self) -> None:
        self.questions = self.with_passages = self.pages = self.snippets = self.kept = 0
        self.top_scores = 0.0

    def add(self, row: dict[str, Any]) -> None:
        """Count one ranked row."""
        docs = row["documents"]
        self.questions += 1
        self.kept += len(docs)
        self.pages += sum(1 for d in docs if d.get("kind") == "page")
        self.snippets += sum(1 for d in docs if d.get("kind") != "page")
        if docs:
            self.with_passages += 1
            self.top_scores += docs[0]["score"]

    def result(self, store: EmbeddingStore | None = None) -> dict[str, Any]:
        """The metrics of the rows added so far (with the ``store``'s counters)."""
        counts = {"encoded": store.encoded, "reused": store.reused} if store is not None else {}
        return {
            "questions": self.questions,
            "kept_from_pages": self.pages,
            "kept_from_snippets": self.snippets,
            "with_passages": self.with_passages,
            "without_passages": self.questions - self.with_passages,
            "mean_top_score": (self.top_scores / self.with_passages if self.with_passages else 0.0),
            "mean_kept": self.kept / max(1, self.questions),
            **counts,
        }


def rank_metrics(
    ranked: Iterable[dict[str, Any]], store: EmbeddingStore | None = None
) -> dict[str, Any]:
    """metrics/rank.json: questions, how many have a passage, passages kept from pages and
    from snippets, mean top score, mean kept, and with a ``store`` how many texts were
    encoded and how many reused."""
    metrics = RankMetrics()
    for row in ranked:
        metrics.add(row)
    return metrics.result(store)
