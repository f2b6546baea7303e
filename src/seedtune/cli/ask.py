"""``seedtune ask "QUESTION"``: talk to the tuned model, optionally grounded by search.

Run: ``seedtune ask "전세 계약 시 주의할 점은?" [--rag] [--adapter models/adapter]``.
Loads the base model named in params.yaml with the adapter, renders the question with the
model's own chat template (as in training) and streams the answer to the terminal (with
``generate.base_url`` set, an inference server answers instead, asked for the adapter by
name: :mod:`seedtune.evaluation.remote`). With
``--rag`` it first searches Naver, reads the pages behind the top results and ranks their
passages with e5 through the functions the search, crawl and rank stages run, and puts the
passages the synthesize stage would show the LLM into the prompt, numbered and fenced as
it showed them (the ask_rag task, which ``train.with_passages`` teaches).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from seedtune.core import paths
from seedtune.core.config import Params, load_params
from seedtune.core.credentials import hf_token
from seedtune.core.errors import ConfigError
from seedtune.core.machine import locate_model
from seedtune.core.stage import ignore_peft_checkpointing_warning

log = logging.getLogger(__name__)


def retrieve(p: Params, question: str, cache_dir: Path) -> list[dict[str, Any]]:
    """The passages the synthesize stage would ground an answer to ``question`` on, found
    by the functions the stages run: Naver search (:class:`SearchRun`), the pages behind the
    top results (:func:`crawl_questions`, personal data masked), e5 ranking
    (:func:`rank_questions`), the best ``synthesize.top_k`` (:func:`shown_documents`).
    Searches, pages and embeddings are kept in ``cache_dir`` and beside it (``../crawl``,
    ``../rank``)."""
    from seedtune.core.cache import ResponseCache
    from seedtune.core.credentials import naver_credentials
    from seedtune.retrieval.crawl import crawl_questions
    from seedtune.retrieval.embeddings import EmbeddingStore, encoder_fingerprint
    from seedtune.retrieval.naver import NaverClient
    from seedtune.retrieval.quota import QuotaExceeded
    from seedtune.retrieval.rank import load_encoder, rank_questions
    from seedtune.retrieval.search import SearchRun, derived_rows
    from seedtune.tasks.synthesize import shown_documents

    cid, secret = naver_credentials()
    if not (cid and secret):
        raise ConfigError(
            "--rag searches Naver: set NAVER_CLIENT_ID and NAVER_CLIENT_SECRET "
            "in the environment or .env"
        )
    client = NaverClient(p.search, ResponseCache(cache_dir), cid, secret)
    search = SearchRun(
        client, [question], desc="ask: search", rows=derived_rows(cache_dir, p.search)
    )
    rows = list(search)
    if search.stopped:
        raise QuotaExceeded(search.stopped)
    pages = {
        r["link"]: r
        for r in crawl_questions(rows, p.crawl, cache_dir.parent / "crawl", "ask: crawl")
    }
    encoder = load_encoder(p.rank.model, p.rank.device)
    with EmbeddingStore(cache_dir.parent / "rank", encoder_fingerprint(encoder)) as store:
        (ranked,) = rank_questions(encoder, rows, p.rank, store, pages)
    return shown_documents(ranked["documents"], p.synthesize)


def build_prompt(question: str, passages: list[dict[str, Any]] | None, top_k: int) -> str:
    """The user turn: the question alone, or with passages as the synthesize stage showed them."""
    if passages is None:
        return question
    from seedtune.tasks.ask_rag import rag_prompt

    return rag_prompt(question, passages, top_k)


def answer(
    p: Params,
    prompt: str,
    adapter: str | None,
    max_new_tokens: int,
    temperature: float,
    stream: bool = True,
) -> str:
    """Generate (and stream to stdout) the model's answer to one user turn."""
    import torch
    from transformers import TextStreamer

    from seedtune.evaluation.generation import load_model, stop_token_ids

    model, tok = load_model(p.train.model.name_or_path, adapter, p.train.model.revision)
    enc = tok.apply_chat_template(
        [{"role": "user", "content": prompt}],
        tokenize=True,
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    enc = {k: v.to(model.device) for k, v in enc.items()}
    streamer = TextStreamer(tok, skip_prompt=True, skip_special_tokens=True) if stream else None
    sampling = (
        {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    )
    with torch.no_grad():
        out = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            streamer=streamer,
            pad_token_id=tok.pad_token_id or tok.eos_token_id,
            eos_token_id=stop_token_ids(tok, model),
            **sampling,
        )
    return tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def main(argv: list[str] | None = None) -> int:
    """Answer one question with the tuned model."""
    ap = argparse.ArgumentParser(prog="seedtune ask", description=__doc__.splitlines()[0])
    ap.add_argument("question")
    ap.add_argument(
        "--adapter",
        default=paths.ADAPTER,
        help="LoRA adapter directory ('none' for the base model alone)",
    )
    ap.add_argument("--params", default=paths.PARAMS_FILE)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    ap.add_argument("--rag", action="store_true", help="ground the answer in Naver + e5")
    ap.add_argument(
        "--cache",
        default=".cache/ask/search",
        help="search cache for --rag (pages and embeddings go beside it: ../crawl, ../rank)",
    )
    args = ap.parse_args(argv)
    p = load_params(
        args.params, ("train", "search", "crawl", "rank", "synthesize") if args.rag else ("train",)
    )
    from seedtune.evaluation.remote import answer_one, generate_settings

    gen = generate_settings()  # generate.base_url set: the inference server answers
    if not gen.base_url:
        # before any paid-for search: an id that resolves nowhere is one line, not a traceback
        locate_model(
            p.train.model.name_or_path,
            "params.yaml: train.model.name_or_path",
            p.train.model.revision,
            hf_token(),
        )
    adapter = None if args.adapter == "none" else args.adapter
    if adapter and not (Path(adapter) / "adapter_config.json").is_file():
        raise ConfigError(
            f"--adapter {adapter}: no adapter_config.json there (run `dvc repro "
            "train` or `dvc pull`, or pass --adapter none)"
        )
    if adapter:
        ignore_peft_checkpointing_warning()  # the adapter goes on the base: expected
    passages = retrieve(p, args.question, Path(args.cache)) if args.rag else None
    prompt = build_prompt(
        args.question, passages, p.synthesize.top_k if passages is not None else 0
    )
    if gen.base_url:
        served = Path(adapter) if adapter else None
        base = p.train.model.name_or_path
        print(answer_one(gen, base, served, prompt, args.max_new_tokens, args.temperature))
    else:
        answer(p, prompt, adapter, args.max_new_tokens, args.temperature)
    if passages:
        print("\n\n출처 (sources):")
        for i, doc in enumerate(passages[: p.synthesize.top_k], 1):
            print(
                f"  [{i}] {doc.get('title', '')} {doc.get('link', '')} (score {doc['score']:.3f})"
            )
    sys.stdout.flush()
    return 0
