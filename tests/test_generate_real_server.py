"""Answers from a real OpenAI-compatible server on CPU: ``transformers serve`` (the
``servers`` extra), started here, serving the tiny Gemma and a tuned copy of it by their
paths (it serves no LoRA by name: the tuned model is the adapter merged, which answers as
base + adapter does). Through the server, evaluate's greedy answers are the ones
in-process generation writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import realservers
from realservers import Unavailable

from seedtune.evaluation.generation import attach_adapter, generate_answers, load_model
from seedtune.evaluation.remote import GenerateConfig, answer_via_server

pytestmark = pytest.mark.slow

QUESTIONS = ["전세 계약 전에 무엇을 확인하나요?", "보증금은 어떻게 돌려받나요?"]
MAX_NEW_TOKENS = 12


@pytest.fixture(scope="module")
def tuned(tiny_models, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(adapter directory, the same adapter merged into a model directory): a LoRA with
    non-zero weights on the tiny Gemma, so that it answers otherwise than the base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("tuned")
    torch.manual_seed(0)
    gemma = tiny_models.gemma
    model = AutoModelForCausalLM.from_pretrained(gemma)
    tok = AutoTokenizer.from_pretrained(gemma)
    lora = LoraConfig(
        r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    peft = get_peft_model(model, lora)
    peft.save_pretrained(out / "adapter")
    tok.save_pretrained(out / "adapter")
    peft.merge_and_unload().save_pretrained(out / "merged")
    tok.save_pretrained(out / "merged")
    return out / "adapter", out / "merged"


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory: pytest.TempPathFactory):
    """``transformers serve`` on loopback, pinned to no model: it loads each by its path."""
    try:
        exe = realservers.transformers_executable()
    except Unavailable as e:
        if os.environ.get("SEEDTUNE_REAL_SERVERS") == "require":
            pytest.fail(f"SEEDTUNE_REAL_SERVERS=require: {e}")
        pytest.skip(str(e))
    port = realservers.free_port()
    argv = [exe, "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    logs = tmp_path_factory.mktemp("transformers-serve")
    with realservers.serve("transformers-serve", argv, port, str(tiny_models.gemma), logs) as s:
        yield s


def test_answers_through_transformers_serve_are_the_in_process_answers(
    tiny_models, tuned, server
) -> None:
    adapter, merged = tuned
    gemma = str(tiny_models.gemma)
    gen = GenerateConfig(
        base_url=server.base_url, base_model=gemma, tuned_model=str(merged), max_retries=1
    )
    got = answer_via_server(gen, gemma, "main", QUESTIONS, adapter, MAX_NEW_TOKENS)
    # transformers serve lists a local model only once loaded: the base could not be checked
    assert got.info["generator"] == "server" and got.info["generator_base_checked"] is False
    model, tok = load_model(gemma)
    want = {"base": generate_answers(model, tok, QUESTIONS, MAX_NEW_TOKENS, batch_size=1)}
    model, tok = attach_adapter(model, str(adapter))
    want["tuned"] = generate_answers(model, tok, QUESTIONS, MAX_NEW_TOKENS, batch_size=1)
    assert want["tuned"] != want["base"]  # the adapter changes the answers...
    assert got.answers == want  # ...and the server answers as in-process generation does
