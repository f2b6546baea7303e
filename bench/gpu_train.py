"""GPU benchmark: gemma-2b-it's architecture (random weights), the tutorial's settings vs ours.

Run on a CUDA machine with seedtune installed (``pip install -e .``, optionally ``.[gpu]``
for flash-attn): ``python bench/gpu_train.py [--steps 20] [--json out.json]``. No download:
the model is ``GemmaConfig`` with gemma-2b's shape and random bf16 weights, the data random
token ids with answer lengths spread like real instruction data. Each setting runs in its own
process so its peak memory is its own. Reports real (non-pad) tokens/s and peak GPU memory:

* ``tutorial``: LoRA r=4/alpha=32 on all linear layers, bf16, flash-attention 2 (sdpa if
  flash-attn is missing), fused AdamW, batch 4 x grad-accum 2, batches padded to the longest
  example (the tutorial's ``packing=True`` was ignored by its TRL version);
* ``ours``: the same through ``seedtune.training.configure.sft_config``: padding-free bfd packing;
* ``ours_gc``: ours with gradient checkpointing (memory for speed).

Without CUDA it exits with status 2 and one line saying so (``--tiny`` shrinks the model so
the code path can be smoke-tested on CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SETTINGS = ("tutorial", "ours", "ours_gc")
GEMMA_2B = {"hidden_size": 2048, "num_hidden_layers": 18, "num_attention_heads": 8,
            "num_key_value_heads": 1, "head_dim": 256, "intermediate_size": 16384,
            "vocab_size": 256000}
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 1, "head_dim": 16, "intermediate_size": 128, "vocab_size": 512}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def fail(msg: str) -> None:
    """One line on stderr, exit status 2."""
    print(f"gpu_train: error: {msg}", file=sys.stderr)
    sys.exit(2)


def make_tokenizer(vocab_size: int) -> Any:
    """A word-level tokenizer with Gemma's special ids (pad 0, eos 1, bos 2); data is
    pre-tokenized."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
    vocab.update({f"t{i}": i for i in range(4, vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                                   bos_token="<bos>", unk_token="<unk>")


def make_dataset(n: int, vocab_size: int, max_length: int, seed: int = 0) -> Any:
    """Pre-tokenized prompt+answer examples: prompts ~20-60 tokens, answers lognormal ~300."""
    import numpy as np
    from datasets import Dataset

    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        p = int(rng.integers(20, 60))
        a = int(np.clip(rng.lognormal(np.log(300), 0.6), 16, max_length - p))
        ids = [2, *rng.integers(4, vocab_size, p + a).tolist()]
        rows.append({"input_ids": ids, "completion_mask": [0] * (p + 1) + [1] * a})
    return Dataset.from_list(rows)


def settings(name: str, tiny: bool) -> dict[str, Any]:
    """The ``train`` params of one setting (tutorial and ours share everything else)."""
    return {
        "model": {"name_or_path": "random-gemma-2b", "attn_implementation": "auto"},
        "lora": {"r": 4, "alpha": 32, "dropout": 0.0, "target_modules": TARGETS},
        "optim": {"name": "adamw_torch_fused", "lr": 1e-4, "scheduler": "cosine",
                  "warmup_ratio": 0.0},
        "batch_size": 4, "grad_accum": 2, "max_length": 256 if tiny else 1024, "bf16": True,
        "packing": name != "tutorial", "gradient_checkpointing": name == "ours_gc",
        "logging_steps": 1, "save_steps": 1_000_000, "liger_kernel": False,
    }


def run_setting(name: str, steps: int, tiny: bool) -> dict[str, Any]:
    """Train ``steps`` optimizer steps in this process; tokens/s after the first, peak memory."""
    import tempfile

    import torch
    from transformers import GemmaConfig, GemmaForCausalLM, TrainerCallback
    from trl import SFTTrainer

    from seedtune.core.config import TrainConfig
    from seedtune.training.configure import device_caps, lora_config, model_kwargs, sft_config

    caps = device_caps()
    cfg = TrainConfig.model_validate({**settings(name, tiny), "max_steps": steps + 1})
    shape = TINY if tiny else GEMMA_2B
    kwargs = model_kwargs(cfg, caps)
    gcfg = GemmaConfig(**shape, max_position_embeddings=8192, hidden_act="gelu_pytorch_tanh",
                       pad_token_id=0, eos_token_id=1, bos_token_id=2,
                       attn_implementation=kwargs["attn_implementation"])
    torch.manual_seed(0)
    model = GemmaForCausalLM(gcfg).to(dtype=kwargs["dtype"])
    batch_rows = (steps + 1) * cfg.batch_size * cfg.grad_accum
    # padded batches hold one example per row; packed rows hold several: give both enough
    data = make_dataset(batch_rows * 4, shape["vocab_size"], cfg.max_length)
    marks: list[tuple[float, float]] = []

    class Clock(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "num_tokens" in logs:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                marks.append((time.perf_counter(), float(logs["num_tokens"])))

    with tempfile.TemporaryDirectory() as tmp:
        args = sft_config(cfg, 0, Path(tmp), has_eval=False, caps=caps)
        args.disable_tqdm = True
        trainer = SFTTrainer(model=model, args=args, train_dataset=data,
                             processing_class=make_tokenizer(shape["vocab_size"]),
                             peft_config=lora_config(cfg), callbacks=[Clock()])
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        try:
            trainer.train()
        except torch.cuda.OutOfMemoryError:
            return {"setting": name, "error": "out of GPU memory"}
    (t0, n0), (t1, n1) = marks[0], marks[-1]
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    return {"setting": name, "attention": kwargs["attn_implementation"],
            "packing": cfg.packing, "gradient_checkpointing": cfg.gradient_checkpointing,
            "tokens_per_s": (n1 - n0) / (t1 - t0), "peak_gib": peak, "steps": steps}


def main(argv: list[str] | None = None) -> int:
    """Run every setting in its own process and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="timed optimizer steps per setting")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--only", choices=SETTINGS, help=argparse.SUPPRESS)  # one child process
    ap.add_argument("--tiny", action="store_true", help="tiny model, CPU allowed (smoke test)")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        fail("torch is not installed")
    if not args.tiny and not torch.cuda.is_available():
        fail("needs a CUDA GPU (torch.cuda.is_available() is False); run it on a GPU machine")
    try:
        import seedtune  # noqa: F401
    except ImportError:
        fail("seedtune is not installed; run `pip install -e .` in the repository first")
    if args.only:
        print(json.dumps(run_setting(args.only, args.steps, args.tiny)))
        return 0
    results = []
    for name in SETTINGS:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, "--only", name, "--steps", str(args.steps)]
        proc = subprocess.run(cmd + (["--tiny"] if args.tiny else []), text=True,
                              capture_output=True, env={**os.environ, "TOKENIZERS_PARALLELISM":
                                                        "false"})
        if proc.returncode != 0:
            results.append({"setting": name, "error": proc.stderr.strip().splitlines()[-1:]})
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    base = next((r for r in results if r["setting"] == "tutorial" and "error" not in r), None)
    print(f"\n{'setting':<10} {'attention':<18} {'tokens/s':>10} {'peak GiB':>9} {'speedup':>8}")
    for r in results:
        if "error" in r:
            print(f"{r['setting']:<10} error: {r['error']}")
            continue
        speed = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x" if base else "-"
        print(f"{r['setting']:<10} {r['attention']:<18} {r['tokens_per_s']:>10.0f} "
              f"{r['peak_gib']:>9.2f} {speed:>8}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
