"""GPU benchmark: gemma-2b-it's shape (random bf16 weights), the tutorial's settings vs ours.

Run on a CUDA machine with seedtune importable (``pip install -e .``, or ``PYTHONPATH=src``):
``python bench/gpu_train.py [--steps 4] [--json out.json]``. No download: the model is
``GemmaConfig`` with gemma-2b's shape, built straight on the GPU in bf16 (a fraction of a
second, not a minute of fp32 on the CPU); the data are random token ids with answer lengths
spread like real instruction data.

First the card's own bf16 matrix rate is measured (8192^3 products), then every setting
trains ``--steps`` timed optimizer steps after two warm-up steps (flex_attention and
torch.compile compile there). All settings run in one process, one after the other (the
model, trainer and CUDA cache freed and the peak-memory counter reset in between), so
imports happen once and compiled kernels are reused; ``--isolate`` runs each in its own
process instead. Settings that would start after ``--budget-s`` are listed as skipped, so
the table always prints. One table: real (non-pad) tokens/s, MFU (4 FLOPs per parameter
per token: LoRA's forward plus input gradients, against the measured rate), real tokens per
micro-batch, peak GPU memory, and the ratios to the tutorial:

* ``tutorial``: LoRA r=4/alpha=32 on all linear layers, bf16, fused AdamW, batch 4 x
  grad-accum 2, each batch padded to its longest example, sdpa;
* ``sdpa`` (only with ``--settings``): ours (``seedtune.training.configure.sft_config``:
  padding-free bfd packing) with sdpa, whose mask spans the packed row, blocks between
  examples computed and masked;
* ``defaults``: exactly the project's defaults (``attn_implementation: auto``: flash-attn if
  installed, else flex_attention, whose block mask skips those blocks; ``liger_kernel``
  false);
* ``defaults_unfused``: the defaults with PEFT's own scale and add after each ``lora_B``
  matmul (``seedtune.training.lora_path.fuse_lora_add`` folds them into the matmul);
* ``defaults_peft``: the defaults with PEFT's LoRA layers as shipped: that scale and add,
  and each LoRA input cast to the fp32 adapter dtype and back
  (``seedtune.training.lora_path.uncast_lora_inputs`` turns the casts off). The tutorial's
  row has them too, as its stack did. ``python bench/run.py lora`` counts the bytes each
  of the two changes saves, on a CPU;
* ``defaults_b8``: batch 8 x accum 1, the same tokens per optimizer step;
* ``defaults_eq``: the defaults at the tutorial's real tokens per micro-batch (one packed
  row of that length), for peak memory at equal work;
* ``compile``: the defaults plus ``train.compile`` (accelerate's regional compilation of
  each decoder layer: RMSNorm's fp32 chain, GeGLU, RoPE and the residual adds fused into
  fewer kernels; ``python bench/run.py lora`` shows how many bytes these passes move);
* ``liger`` (only with ``--settings``): the defaults plus Liger's layer kernels (RMSNorm,
  GeGLU, RoPE). TRL >= 1.16 computes the loss, entropy and accuracy through its own
  chunked fused LM head, so the 256k-vocabulary logits are never materialised with or
  without Liger, and TRL turns Liger's fused linear cross-entropy off.

One more optimizer step of ``defaults``, after its timed ones, runs under torch.profiler
(``bench/step_profile.py``): a second table gives that step's GPU time by kind of kernel
and the time no kernel ran, to show where the next factor is.

Without CUDA it exits with status 2 and one line saying so; ``--tiny`` shrinks the model so
every setting's code path runs on a CPU in well under a minute (sdpa stands in for flex
there; Liger and compile are off).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

GEMMA_2B = {
    "hidden_size": 2048,
    "num_hidden_layers": 18,
    "num_attention_heads": 8,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "intermediate_size": 16384,
    "vocab_size": 256000,
}
TINY = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 16,
    "intermediate_size": 128,
    "vocab_size": 512,
}
#: Untimed optimizer steps first: kernels compile and autotune there.
WARMUP = 2
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class Setting(NamedTuple):
    """One row of the table: the ``train`` params that differ between rows."""

    packing: bool
    attention: str
    batch: int
    accum: int
    liger: bool = False
    compile: bool = False
    #: PEFT casting every LoRA input to the fp32 adapter dtype and back, as the tutorial's
    #: stack did (seedtune.training.lora_path.uncast_lora_inputs turns it off)
    peft_casts: bool = False
    #: PEFT's scale and add after each lora_B matmul, kernels of their own
    #: (seedtune.training.lora_path.fuse_lora_add folds them into the matmul)
    peft_add: bool = False


#: Run in this order in one process: compile and Liger last, because both change state that
#: outlives a model (dynamo's caches; Liger patches transformers' Gemma classes in place).
SETTINGS: dict[str, Setting] = {
    "tutorial": Setting(False, "sdpa", 4, 2, peft_casts=True, peft_add=True),
    "sdpa": Setting(True, "sdpa", 4, 2),
    "defaults": Setting(True, "auto", 4, 2),
    "defaults_unfused": Setting(True, "auto", 4, 2, peft_add=True),
    "defaults_peft": Setting(True, "auto", 4, 2, peft_casts=True, peft_add=True),
    "defaults_b8": Setting(True, "auto", 8, 1),
    "defaults_eq": Setting(True, "auto", 1, 8),
    "compile": Setting(True, "auto", 4, 2, compile=True),
    "liger": Setting(True, "auto", 4, 2, liger=True),
}
#: What runs without --settings, so that the default run fits --budget-s with
#: torch.compile's first compile in it: Liger measured 11% slower on an H100 (issue 15) and
#: TRL's fused LM head leaves it only the layer kernels; sdpa on packed rows measured 35%
#: slower than flex_attention there. Both rows run on request only.
DEFAULT_SETTINGS = [name for name in SETTINGS if name not in ("liger", "sdpa")]
#: The setting whose extra, untimed last step is profiled (bench/step_profile.py).
PROFILED = "defaults"
#: Wall-clock budget for all settings (s): a GPU session's device time is 15 minutes in all,
#: so settings that would start after it are reported as skipped rather than run.
BUDGET_S = 220


def fail(msg: str) -> None:
    """One line on stderr, exit status 2."""
    print(f"gpu_train: error: {msg}", file=sys.stderr)
    sys.exit(2)


def flex_keeps_examples_apart() -> float:
    """Max |logit| difference between two examples packed in one row with flex_attention
    (the document mask from position_ids) and each run alone: ~0 when nothing leaks. Run on
    CUDA; torch's CPU flex_attention returned NaN here, so the CPU test covers sdpa only."""
    import torch
    from transformers import GemmaConfig, GemmaForCausalLM

    torch.manual_seed(0)
    cfg = GemmaConfig(
        **{**TINY, "hidden_size": 256, "head_dim": 64},
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        attn_implementation="flex_attention",
    )
    with torch.device("cuda"):
        model = GemmaForCausalLM(cfg).to(torch.bfloat16).eval()
        ids = torch.randint(4, TINY["vocab_size"], (1, 300))
        pos = torch.cat([torch.arange(120), torch.arange(180)]).unsqueeze(0)
    # with autograd on, as in training: inference-mode flex hit an inductor lowering error
    # ("NoValidChoices") on the H100 image
    packed = model(input_ids=ids, position_ids=pos, use_cache=False).logits[0]
    alone = torch.cat(
        [
            model(input_ids=ids[:, :120], use_cache=False).logits[0],
            model(input_ids=ids[:, 120:], use_cache=False).logits[0],
        ]
    )
    return float((packed.float() - alone.float()).abs().max().detach())


def make_tokenizer(vocab_size: int) -> Any:
    """A word-level tokenizer with Gemma's special ids (pad 0, eos 1, bos 2); data is
    pre-tokenized."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
    vocab.update({f"t{i}": i for i in range(4, vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
    )


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


def train_params(name: str, tiny: bool, eq_tokens: int | None) -> dict[str, Any]:
    """The ``train`` params of one setting (everything else is shared)."""
    packing, attention, batch, accum, liger, compile_, *_ = SETTINGS[name]
    if tiny:  # CPU smoke test: Liger and compile need CUDA (auto attention is sdpa there)
        liger, compile_ = False, False
    max_length = 256 if tiny else 1024
    if name == "defaults_eq" and eq_tokens:
        max_length = max(64, eq_tokens)
    return {
        "model": {"name_or_path": "random-gemma-2b", "attn_implementation": attention},
        "lora": {"r": 4, "alpha": 32, "dropout": 0.0, "target_modules": TARGETS},
        "optim": {
            "name": "adamw_torch_fused",
            "lr": 1e-4,
            "scheduler": "cosine",
            "warmup_ratio": 0.0,
        },
        "batch_size": batch,
        "grad_accum": accum,
        "max_length": max_length,
        "bf16": True,
        "packing": packing,
        "gradient_checkpointing": False,
        "liger_kernel": liger,
        "compile": compile_,
        "logging_steps": 1,
        "save_steps": 1_000_000,
    }


def run_setting(name: str, steps: int, tiny: bool, eq_tokens: int | None) -> dict[str, Any]:
    """Train :data:`WARMUP` + ``steps`` optimizer steps here; time the last ``steps``."""
    import tempfile

    import torch
    from transformers import GemmaConfig, GemmaForCausalLM, TrainerCallback

    from seedtune.core.config import TrainConfig
    from seedtune.core.device import device_caps
    from seedtune.training.configure import model_kwargs, sft_config
    from seedtune.training.lora_path import fuse_lora_add, uncast_lora_inputs
    from seedtune.training.train import sft_trainer

    caps = device_caps()
    profiled = name == PROFILED  # one more step, after the timed ones, under the profiler
    cfg = TrainConfig.model_validate(
        {**train_params(name, tiny, eq_tokens), "max_steps": steps + WARMUP + profiled}
    )
    shape = TINY if tiny else GEMMA_2B
    kwargs = model_kwargs(cfg, caps)
    gcfg = GemmaConfig(
        **shape,
        max_position_embeddings=8192,
        hidden_act="gelu_pytorch_tanh",
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        attn_implementation=kwargs["attn_implementation"],
    )
    t_build = time.perf_counter()
    torch.manual_seed(0)
    # built where it trains, in its training dtype: no fp32 copy on the CPU first
    torch.set_default_dtype(kwargs["dtype"])
    with torch.device("cuda" if caps["cuda"] else "cpu"):
        model = GemmaForCausalLM(gcfg)
    torch.set_default_dtype(torch.float32)
    build_s = time.perf_counter() - t_build
    n_params = sum(p.numel() for p in model.parameters())
    rows_needed = (steps + WARMUP) * cfg.batch_size * cfg.grad_accum
    # padded batches hold one example per row; packed rows hold several: give both enough
    data = make_dataset(rows_needed * 4, shape["vocab_size"], cfg.max_length)
    marks: list[tuple[float, float]] = []

    class Clock(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            # per-step training logs only: the end-of-training summary log carries
            # num_tokens too, stamped after the last step's work
            if logs and "num_tokens" in logs and "loss" in logs and "train_runtime" not in logs:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                marks.append((time.perf_counter(), float(logs["num_tokens"])))

    sink: dict[str, Any] = {}
    callbacks = [Clock()]
    if profiled:
        from step_profile import make_callback

        callbacks.append(make_callback(steps + WARMUP + 1, caps["cuda"], sink))
    with tempfile.TemporaryDirectory() as tmp:
        args = sft_config(cfg, 0, Path(tmp), has_eval=False, caps=caps)
        args.disable_tqdm = True
        trainer = sft_trainer(
            cfg, model, make_tokenizer(shape["vocab_size"]), args, data, callbacks=callbacks
        )
        if SETTINGS[name].peft_casts:  # the casts sft_trainer took off, back on
            uncast_lora_inputs(trainer.model, uncast=False)
        if SETTINGS[name].peft_add:  # PEFT's own forward back
            fuse_lora_add(trainer.model, fused=False)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        try:
            trainer.train()
        except torch.cuda.OutOfMemoryError:
            return {"setting": name, "error": "out of GPU memory"}
    # after the warm-up steps: compiles (flex_attention compiles again for the second shape
    # it sees, then runs with dynamic shapes) excluded
    timed = marks[WARMUP - 1 : WARMUP + steps]  # the profiled step, if any, is left out
    (t0, n0), (t1, n1) = timed[0], timed[-1]
    tokens_per_s = (n1 - n0) / (t1 - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    out = {
        "setting": name,
        "attention": kwargs["attn_implementation"],
        "liger": bool(args.use_liger_kernel),
        "compile": bool(args.torch_compile),
        "peft_casts": SETTINGS[name].peft_casts,
        "peft_add": SETTINGS[name].peft_add,
        "batch": f"{cfg.batch_size}x{cfg.grad_accum}",
        "max_length": cfg.max_length,
        "tokens_per_s": tokens_per_s,
        "tokens_per_microbatch": (n1 - n0) / ((len(timed) - 1) * cfg.grad_accum),
        "flops_per_s": tokens_per_s * 4 * n_params,
        "n_params": n_params,
        "peak_gib": peak,
        "build_s": build_s,
        "steps": len(timed) - 1,
    }
    if profiled:
        out["profile"] = sink.get("profile") or {"error": sink.get("error", "no step profiled")}
        out["profile_tokens"] = marks[-1][1] - marks[-2][1] if len(marks) > steps + WARMUP else None
    return out


def table(results: list[dict[str, Any]], peak_tflops: float | None) -> str:
    """The results as one plain-text table, ratios against the tutorial."""
    base = next((r for r in results if r["setting"] == "tutorial" and "error" not in r), None)
    head = (
        f"{'setting':<16} {'attention':<16} {'batch':>5} {'tokens/s':>9} {'MFU':>6} "
        f"{'tok/µb':>7} {'peak GiB':>8} {'vs tutorial':>11} {'mem vs tut':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        if "error" in r:
            lines.append(f"{r['setting']:<16} error: {r['error']}")
            continue
        mfu = f"{r['flops_per_s'] / (peak_tflops * 1e12):.1%}" if peak_tflops else "-"
        speed = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x" if base else "-"
        mem = f"{r['peak_gib'] / base['peak_gib']:.2f}x" if base and base["peak_gib"] else "-"
        attention = r["attention"] + ("+liger" if r["liger"] else "")
        lines.append(
            f"{r['setting']:<16} {attention:<16} {r['batch']:>5} "
            f"{r['tokens_per_s']:>9.0f} {mfu:>6} {r['tokens_per_microbatch']:>7.0f} "
            f"{r['peak_gib']:>8.2f} {speed:>11} {mem:>10}"
        )
    return "\n".join(lines)


def _free_cuda() -> None:
    """Free the previous setting's memory and restart the peak counter, so each setting's
    ``max_memory_allocated`` is its own when they share a process."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _in_child(name: str, steps: int, eq: int | None) -> dict[str, Any]:
    """One setting in a process of its own (``--isolate``)."""
    cmd = [sys.executable, __file__, "--only", name, "--steps", str(steps)]
    cmd += ["--eq-tokens", str(eq)] if eq else []
    proc = subprocess.run(
        cmd, text=True, capture_output=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    )
    if proc.returncode != 0:
        return {"setting": name, "error": " | ".join(proc.stderr.strip().splitlines()[-3:])}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Run every setting (within the budget) and print one table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4, help="timed optimizer steps per setting")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument(
        "--settings",
        nargs="+",
        choices=SETTINGS,
        default=DEFAULT_SETTINGS,
        help="which settings to run, in the order listed (default: all but sdpa and liger)",
    )
    ap.add_argument(
        "--budget-s",
        type=float,
        default=BUDGET_S,
        help="start no setting after this many seconds (default %(default)s)",
    )
    ap.add_argument("--isolate", action="store_true", help="each setting in its own process")
    ap.add_argument("--tiny", action="store_true", help="tiny model, CPU allowed (smoke test)")
    ap.add_argument("--only", choices=SETTINGS, help=argparse.SUPPRESS)  # one child process
    ap.add_argument("--eq-tokens", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    try:
        import torch
    except ImportError:
        fail("torch is not installed")
    if not args.tiny and not torch.cuda.is_available():
        fail("needs a CUDA GPU (torch.cuda.is_available() is False); run it on a GPU machine")
    try:
        import seedtune  # noqa: F401
    except ImportError:
        fail("seedtune is not importable; `pip install -e .` or PYTHONPATH=src")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.only:
        print(json.dumps(run_setting(args.only, args.steps, args.tiny, args.eq_tokens)))
        return 0
    from step_profile import why

    from seedtune.core.device import matmul_flops

    rate = None if args.tiny else matmul_flops()
    peak = rate / 1e12 if rate else None
    if peak:
        print(f"measured bf16 matrix rate: {peak:.0f} TFLOP/s", file=sys.stderr, flush=True)
        try:
            leak = f"{flex_keeps_examples_apart():.2e}"
        except Exception as exc:  # noqa: BLE001 - a report line, not the benchmark
            leak = f"not measured ({why(exc)})"
        print(
            f"flex_attention packed vs alone, max |logit diff|: {leak}", file=sys.stderr, flush=True
        )
    results: list[dict[str, Any]] = []
    for name in [n for n in SETTINGS if n in args.settings]:
        t0 = time.perf_counter()
        if t0 - t_start > args.budget_s:
            results.append(
                {"setting": name, "error": f"skipped: --budget-s {args.budget_s:.0f} spent"}
            )
            continue
        eq = next(
            (
                round(r["tokens_per_microbatch"])
                for r in results
                if r["setting"] == "tutorial" and "error" not in r
            ),
            None,
        )
        if args.isolate and not args.tiny:
            results.append(_in_child(name, args.steps, eq))
        else:
            _free_cuda()
            try:
                results.append(run_setting(name, args.steps, args.tiny, eq))
            except Exception as exc:  # noqa: BLE001 - one row's failure, the others still count
                results.append({"setting": name, "error": why(exc)})
        results[-1]["wall_s"] = round(time.perf_counter() - t0, 1)
        print(
            f"{name}: {results[-1]['wall_s']:.0f} s {json.dumps(results[-1])}",
            file=sys.stderr,
            flush=True,
        )  # partial results survive a timeout
    print(table(results, peak))
    for r in results:
        if "error" not in r.get("profile", {"error": None}):
            from step_profile import profile_table

            print(profile_table(r["setting"], r["profile"], r.get("profile_tokens")))
        elif "profile" in r:
            print(f"profile of `{r['setting']}`: {r['profile']['error']}")
    print(f"total {time.perf_counter() - t_start:.0f} s", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"bf16_tflops": peak, "results": results}, indent=2) + "\n")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
