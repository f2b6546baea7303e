"""Benchmark: tuned generation through the unmerged LoRA adapter vs the adapter merged into
the base weights (``merge_and_unload`` on a copy), greedy, on this machine's CPU.

Run: ``python bench/run.py generate``. A LoRA on all seven projections (r=4, alpha=32, as
conf/lora), with non-zero weights so that it changes the answers, on two models:

* ``tiny``: the pre-trained tiny Gemma (seedtune_sandbox.tiny): do greedy answers change
  when the adapter is merged (``greedy_equal``: every answer the same text);
* ``wide``: a random Gemma at 1024 hidden / 4096 MLP, 4 layers, where the adapter's extra
  kernels at every decoded token are a realistic share of the work.

Tokens/s count generated tokens of a batch of :data:`BATCH` questions decoding exactly
:data:`NEW_TOKENS` tokens each (``min_new_tokens``), the best of :data:`REPEATS` rounds.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BATCH = 8
NEW_TOKENS = 48
REPEATS = 5
QUESTIONS = [
    "전세 계약 전에 무엇을 확인해야 하나요?",
    "보증금을 돌려받지 못하면 어떻게 하나요?",
    "확정일자는 언제 받나요?",
    "전입신고는 왜 해야 하나요?",
    "등기부등본에서 무엇을 보나요?",
    "월세 계약과 전세 계약의 차이는?",
    "집주인이 바뀌면 어떻게 되나요?",
    "전세보증보험은 꼭 들어야 하나요?",
]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def with_lora(model: Any) -> Any:
    """``model`` with a LoRA on every projection, its weights random (not a no-op)."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    cfg = LoraConfig(r=4, lora_alpha=32, target_modules=TARGETS, init_lora_weights=False)
    return get_peft_model(model, cfg).eval()


def _seconds(model: Any, enc: Any, pad: int) -> float:
    """One batch of fixed-length greedy answers, in seconds."""
    import torch

    t0 = time.perf_counter()
    with torch.no_grad():
        model.generate(
            **enc,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=pad,
        )
    return time.perf_counter() - t0


def measure(name: str, base: Any, tok: Any) -> dict[str, Any]:
    """Base, unmerged and merged tokens/s (measured in turn, round after round, so a busy
    neighbour slows all three alike; the best round of each), and whether greedy answers
    are the same merged and unmerged."""
    from seedtune.evaluation.generation import generate_answers

    tok.padding_side = "left"
    prompts = [
        tok.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in QUESTIONS[:BATCH]
    ]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    models = {"base": copy.deepcopy(base)}
    models["unmerged"] = with_lora(base)
    models["merged"] = copy.deepcopy(models["unmerged"]).merge_and_unload().eval()
    for m in models.values():  # warm up (first-call allocations)
        _seconds(m, enc, tok.pad_token_id)
    best = dict.fromkeys(models, float("inf"))
    for _ in range(REPEATS):
        for label, m in models.items():
            best[label] = min(best[label], _seconds(m, enc, tok.pad_token_id))
    out: dict[str, Any] = {
        f"{name}_{label}_tokens_per_s": BATCH * NEW_TOKENS / best[label] for label in models
    }
    out[f"{name}_merged_speedup"] = best["unmerged"] / best["merged"]
    a = generate_answers(models["unmerged"], tok, QUESTIONS, 64, BATCH)
    b = generate_answers(models["merged"], tok, QUESTIONS, 64, BATCH)
    out[f"{name}_greedy_equal"] = a == b
    out[f"{name}_greedy_equal_answers"] = sum(x == y for x, y in zip(a, b, strict=True))
    return out


def run() -> dict[str, Any]:
    """Both models' figures."""
    import torch
    from seedtune_sandbox.tiny import build_tiny_models
    from transformers import AutoModelForCausalLM, AutoTokenizer, GemmaConfig, GemmaForCausalLM

    torch.set_num_threads(max(1, torch.get_num_threads()))
    gemma = build_tiny_models(ROOT / ".cache" / "tiny-models").gemma
    tok = AutoTokenizer.from_pretrained(gemma)
    results = measure("tiny", AutoModelForCausalLM.from_pretrained(gemma).eval(), tok)
    torch.manual_seed(0)
    wide = GemmaConfig(
        vocab_size=len(tok),
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=1,
        head_dim=128,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
    )
    results.update(measure("wide", GemmaForCausalLM(wide).eval(), tok))
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
