"""``seedtune ask "QUESTION"``: talk to the tuned model, optionally grounded by search.

Run: ``seedtune ask "전세 계약 시 주의할 점은?" [--rag] [--adapter models/adapter]``.
Loads the base model named in params.yaml with the adapter, renders the question with the
model's own chat template (as in training) and streams the answer to the terminal (with
``generate.base_url`` set, an inference server answers instead, asked for the adapter by
name: :mod:`seedtune.evaluation.remote`). With
``--rag`` it first searches Naver, reads the pages behind the top results and ranks their
passages with e5 through the same library code as the pipeline, and puts the top passages
into the prompt in the numbered, fenced format the synthesize stage showed the LLM.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from seedtune.core.config import Params, load_params
from seedtune.core.credentials import hf_token
from seedtune.core.errors import ConfigError
from seedtune.core.machine import locate_model
from seedtune.core.stage import ignore_peft_checkpointing_warning

log = logging.getLogger(__name__)


def retrieve(p: Params, question: str, cache_dir: Path) -> list[dict[str, Any]]:
    """Top passages for ``question`` as the pipeline finds them: Naver search, the pages
    behind the top results (``crawl.*``, personal data masked), then e5 ranking."""
    from seedtune.core.cache import ResponseCache
    from seedtune.core.credentials import optional_secret
    from seedtune.retrieval.crawl import crawl, fetch_settings
    from seedtune.retrieval.fetch import PageFetcher
    from seedtune.retrieval.naver import NaverClient
    from seedtune.retrieval.passages import page_passages
    from seedtune.retrieval.rank import PASSAGE_PREFIX, load_encoder, rank_rows
    from seedtune.retrieval.search import search_question

    cid, secret = optional_secret("NAVER_CLIENT_ID"), optional_secret("NAVER_CLIENT_SECRET")
    if not (cid and secret):
        raise ConfigError(
            "--rag searches Naver: set NAVER_CLIENT_ID and NAVER_CLIENT_SECRET "
            "in the environment or .env"
        )
    client = NaverClient(p.search, ResponseCache(cache_dir), cid, secret)
    row = search_question(client, question) or {"question": question, "documents": []}
    c = p.crawl
    fetcher = PageFetcher(
        fetch_settings(c), ResponseCache(cache_dir.parent / "crawl"), desc="ask: crawl"
    )
    pages = crawl([row], c.per_question, c.min_chars, fetcher)
    encoder = load_encoder(p.rank.model, p.rank.device)
    chunks = page_passages(
        pages, encoder, p.rank.passage_tokens, p.rank.passage_overlap, PASSAGE_PREFIX
    )
    return rank_rows(
        encoder,
        [row],
        p.rank.top_k,
        p.rank.max_gap,
        p.rank.batch_size,
        pages=chunks,
        prefer_pages=p.rank.prefer_pages,
    )[0]["documents"]


def build_prompt(question: str, passages: list[dict[str, Any]] | None, top_k: int) -> str:
    """The user turn: the question alone, or with passages as the synthesize stage showed them."""
    if passages is None:
        return question
    from seedtune.llm.rag import rag_prompt

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
        default="models/adapter",
        help="LoRA adapter directory ('none' for the base model alone)",
    )
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    ap.add_argument("--rag", action="store_true", help="ground the answer in Naver + e5")
    ap.add_argument(
        "--cache",
        default=".cache/ask/search",
        help="search cache for --rag (pages go beside it, in ../crawl)",
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
