"""Benchmark: memory traffic of one gemma-2b decoder layer's LoRA training step, PEFT's LoRA
forward vs ours, counted kernel by kernel on the CPU (``bench/traffic.py``).

Run: ``python bench/run.py lora``. One decoder layer at gemma-2b's real widths (hidden 2048,
MLP 16384, one 256-wide KV head), bf16 weights under bf16 autocast as accelerate trains, LoRA
r=4/alpha=32 on all seven projections, one packed row of :data:`TOKENS` tokens, forward and
backward. A layer's bytes are a two-layer model's minus a one-layer model's (embedding, final
norm and LM head cancel); the frozen weights are left out, so the figure is per token. Each
variant is what the train stage's trainer would run:

* ``peft``: PEFT as shipped: each LoRA input copied to the fp32 adapter dtype (and back by
  autocast), ``lora_B``'s output scaled and added in kernels of their own;
* ``uncast``: without the casts (``seedtune.training.lora_path.uncast_lora_inputs``);
* ``ours``: also the scale and add folded into ``lora_B``'s matmul (``fuse_lora_add``).

Outside the matmuls a GPU kernel's time is about its bytes over the memory bandwidth, so
``h100_ms_saved_per_microbatch`` converts the saving to one 4096-token micro-batch of all
18 layers at 3.35 TB/s: an estimate from the counted bytes, not a GPU measurement
(``bench/gpu_train.py`` measures on a GPU).
"""

from __future__ import annotations

from typing import Any

TOKENS = 512
LAYERS = 18  # gemma-2b
MICROBATCH = 4096  # tokens per micro-batch: batch 4 x max_length 1024, packed
H100_BYTES_PER_S = 3.35e12
VARIANTS = ("peft", "uncast", "ours")


def layer_bytes(variant: str, layers: int) -> int:
    """Bytes one forward and backward moves in a ``layers``-deep gemma-2b-wide model."""
    import torch
    from gpu_train import GEMMA_2B, TARGETS
    from peft import get_peft_model
    from traffic import byte_counter
    from transformers import GemmaConfig, GemmaForCausalLM

    from seedtune.core.config import TrainConfig
    from seedtune.training.configure import lora_config
    from seedtune.training.lora_path import fuse_lora_add, uncast_lora_inputs

    torch.manual_seed(0)
    # gemma-2b's widths; a small vocabulary, as the LM head cancels out
    cfg = GemmaConfig(
        **{**GEMMA_2B, "num_hidden_layers": layers, "vocab_size": 512},
        hidden_act="gelu_pytorch_tanh",
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        attn_implementation="sdpa",
    )
    torch.set_default_dtype(torch.bfloat16)
    try:
        base = GemmaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(torch.float32)
    train = TrainConfig.model_validate(
        {
            "model": {"name_or_path": "gemma-2b-shaped"},
            "optim": {"lr": 1e-4},
            "lora": {"r": 4, "alpha": 32, "dropout": 0.0, "target_modules": TARGETS},
        }
    )
    model = get_peft_model(base, lora_config(train))
    if variant != "peft":
        uncast_lora_inputs(model)
    if variant == "ours":
        fuse_lora_add(model)
    ids = torch.randint(4, cfg.vocab_size, (1, TOKENS))
    # four packed examples, as the collator passes them (document mask from position_ids)
    pos = torch.cat([torch.arange(n) for n in (96, 160, 128, TOKENS - 384)]).unsqueeze(0)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    counter = byte_counter(fast_matmul=True, skip=frozen)
    with counter:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(input_ids=ids, position_ids=pos, use_cache=False).logits
        logits.float().logsumexp(-1).mean().backward()
    return counter.total()


def run() -> dict[str, Any]:
    """Bytes per token of one decoder layer for each variant, and the saving."""
    per_token = {v: (layer_bytes(v, 2) - layer_bytes(v, 1)) / TOKENS for v in VARIANTS}
    out: dict[str, Any] = {f"{v}_layer_kb_per_token": per_token[v] / 1e3 for v in VARIANTS}
    out["ours_vs_peft_bytes"] = per_token["ours"] / per_token["peft"]
    out["ours_vs_uncast_bytes"] = per_token["ours"] / per_token["uncast"]
    for v in ("peft", "uncast"):
        saved = (per_token[v] - per_token["ours"]) * LAYERS * MICROBATCH
        out[f"h100_ms_saved_vs_{v}"] = saved / H100_BYTES_PER_S * 1e3
    return out
