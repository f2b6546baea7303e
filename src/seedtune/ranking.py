"""Rank search results per question with a multilingual-e5 sentence-transformers encoder.

e5 needs its prefixes: questions are embedded as ``"query: ..."`` and documents as
``"passage: ..."``. The model is loaded once; every unique text is encoded once, in batches
(sentence-transformers sorts by length inside ``encode``); scores are cosines of normalised
embeddings. Instead of an absolute threshold (e5 cosines crowd into 0.7-1.0) a passage is
kept when it is in the top ``k`` and within ``max_gap`` of the question's best score.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "


def pick_device(requested: str = "auto") -> str:
    """cuda, then mps, then cpu when ``requested`` is auto."""
    if requested != "auto":
        return requested
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def passage_text(doc: dict[str, Any]) -> str:
    """The text embedded for a document (without the prefix): title and description."""
    return " ".join(p for p in (doc.get("title", ""), doc.get("description", "")) if p).strip()


def load_encoder(name_or_path: str, device: str = "auto") -> Any:
    """Load a SentenceTransformer once, fp16 on CUDA."""
    from sentence_transformers import SentenceTransformer

    dev = pick_device(device)
    kwargs: dict[str, Any] = {}
    if dev == "cuda":
        import torch

        kwargs["model_kwargs"] = {"torch_dtype": torch.float16}
    log.info("loading encoder %s on %s", name_or_path, dev)
    return SentenceTransformer(name_or_path, device=dev, **kwargs)


def encode(model: Any, texts: list[str], prefix: str, batch_size: int) -> np.ndarray:
    """Normalised embeddings of ``prefix + text`` for each text."""
    if not texts:
        return np.zeros((0, 1), dtype=np.float32)
    return model.encode([prefix + t for t in texts], batch_size=batch_size,
                        normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=len(texts) > batch_size).astype(np.float32)


def rank_rows(model: Any, rows: list[dict[str, Any]], top_k: int, max_gap: float,
              batch_size: int = 64) -> list[dict[str, Any]]:
    """``{question, documents}`` rows with documents scored, cut and sorted high to low."""
    questions = [r["question"] for r in rows]
    passages = sorted({passage_text(d) for r in rows for d in r["documents"]} - {""})
    q_emb = encode(model, questions, QUERY_PREFIX, batch_size)
    p_emb = encode(model, passages, PASSAGE_PREFIX, batch_size)
    p_index = {p: i for i, p in enumerate(passages)}
    out = []
    for qi, row in enumerate(rows):
        scored = []
        for doc in row["documents"]:
            text = passage_text(doc)
            if not text:
                continue
            score = float(q_emb[qi] @ p_emb[p_index[text]])
            scored.append({**doc, "passage": text, "score": score})
        scored.sort(key=lambda d: d["score"], reverse=True)
        if scored:
            best = scored[0]["score"]
            scored = [d for d in scored[:top_k] if d["score"] >= best - max_gap]
        out.append({"question": row["question"], "documents": scored})
    return out
