"""In-process tuned generation merges the adapter into float32 weights: the same greedy
answers as through the unmerged adapter (bench/bench_generate.py measures the speed)."""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from seedtune.evaluation.generation import attach_adapter, generate_answers, is_merged

QUESTIONS = ["전세 계약 전에 무엇을 확인하나요?", "보증금은 어떻게 돌려받나요?", "확정일자는?"]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_merged_adapter_answers_as_the_unmerged_one(tiny_models, tmp_path) -> None:
    gemma = tiny_models.gemma
    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=32, target_modules=TARGETS, init_lora_weights=False)
    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(gemma), lora)
    peft.save_pretrained(tmp_path / "adapter")
    AutoTokenizer.from_pretrained(gemma).save_pretrained(tmp_path / "adapter")
    answers = {}
    for merge in (False, True):
        base = AutoModelForCausalLM.from_pretrained(gemma).eval()
        model, tok = attach_adapter(base, str(tmp_path / "adapter"), merge=merge)
        assert is_merged(model) is merge
        answers[merge] = generate_answers(model, tok, QUESTIONS, 32, batch_size=3)
    base = AutoModelForCausalLM.from_pretrained(gemma).eval()
    plain = generate_answers(base, tok, QUESTIONS, 32, batch_size=3)
    assert answers[True] == answers[False] != plain  # the adapter counts, merged or not
