"""Benchmark: padding-free bfd packing (ours) vs the tutorial's pad-to-longest batches, on CPU.

Run: ``python bench/run.py train``. Both runs use the same tiny Gemma, the same examples (answers
of very different lengths, as synthesize writes them), the same SFTTrainer mapping
(``seedtune.training.train.build_trainer``) and batch size; only ``train.packing`` differs. The
tutorial passed ``packing=True`` in a way its TRL version ignored, so its batches were padded
to the longest example. Figures:

* ``*_real_token_share``: real (non-pad) tokens among all tokens the model processes, over
  one epoch of batches (pad tokens cost compute and memory, and teach nothing);
* ``*_tokens_per_s``: real tokens per second over a few optimizer steps (TRL's ``num_tokens``
  counts real tokens in both modes);
* ``ours_fill``: how full the packed rows are relative to ``max_length``.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

BATCH, MAX_LENGTH, STEPS, ROWS = 4, 512, 8, 96


def make_rows(n: int = ROWS, seed: int = 0) -> list[dict[str, Any]]:
    """Korean Q/A rows whose answers run from one to twelve corpus sentences."""
    from seedtune_sandbox.tiny import corpus_lines

    lines, rng = corpus_lines(), random.Random(seed)
    rows = []
    for i in range(n):
        k = rng.randint(1, 12)
        start = rng.randrange(len(lines) - k)
        rows.append(
            {
                "question": f"{lines[i % len(lines)].split()[0]}에 대해 알려 주세요?",
                "answer": " ".join(lines[start : start + k]),
                "split": "train",
            }
        )
    return rows


def token_shares(trainer: Any) -> tuple[float, float, int]:
    """(real share, fill of max_length, real tokens) over one epoch of training batches."""
    real = processed = rows = 0
    for batch in trainer.get_train_dataloader():
        ids = batch["input_ids"]
        processed += ids.numel()
        if "attention_mask" in batch:  # padded batches mark their pad tokens
            real += int(batch["attention_mask"].sum())
            rows += ids.shape[0]
        else:  # padding-free: one row of back-to-back examples, pads only past the last one
            real += int(batch["cu_seq_lens_q"][-1])
            rows += trainer.args.per_device_train_batch_size
    return real / processed, real / (rows * MAX_LENGTH), real


def throughput(trainer: Any) -> float:
    """Real tokens per second: the median over :data:`STEPS` optimizer steps (after the first).

    The median, not the total, because a shared 2-core CI box stalls now and then.
    """
    import statistics
    import time

    from transformers import TrainerCallback

    marks: list[tuple[float, float]] = []

    class Clock(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "num_tokens" in logs:
                marks.append((time.perf_counter(), float(logs["num_tokens"])))

    trainer.add_callback(Clock())
    trainer.train()
    # from the end of step 1 on: no warm-up in the rate
    return statistics.median(
        (n1 - n0) / (t1 - t0) for (t0, n0), (t1, n1) in zip(marks, marks[1:], strict=False)
    )


def run() -> dict[str, Any]:
    """Tutorial (padded) vs ours (packed): real-token share and tokens/s, side by side."""
    import os

    from seedtune_sandbox.tiny import build_tiny_models

    from seedtune.core.config import TrainConfig
    from seedtune.training.train import build_trainer, split_rows

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    here = Path(__file__).resolve().parents[1]
    gemma = build_tiny_models(here / ".cache" / "tiny-models").gemma
    train_rows, _ = split_rows(make_rows())
    out: dict[str, Any] = {
        "examples": len(train_rows),
        "batch_size": BATCH,
        "max_length": MAX_LENGTH,
    }
    for name, packing in (("tutorial", False), ("ours", True)):
        cfg = TrainConfig.model_validate(
            {
                "model": {"name_or_path": str(gemma)},
                "lora": {
                    "r": 4,
                    "alpha": 32,
                    "target_modules": [
                        "q_proj",
                        "k_proj",
                        "v_proj",
                        "o_proj",
                        "gate_proj",
                        "up_proj",
                        "down_proj",
                    ],
                },
                "optim": {"lr": 1e-4},
                "max_steps": STEPS + 1,
                "batch_size": BATCH,
                "grad_accum": 1,
                "max_length": MAX_LENGTH,
                "packing": packing,
                "logging_steps": 1,
                "save_steps": 10_000,
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            trainer = build_trainer(cfg, 42, train_rows, [], Path(tmp))
            share, fill, real = token_shares(trainer)
            out[f"{name}_real_token_share"] = share
            out[f"{name}_tokens_per_s"] = throughput(trainer)
            if packing:
                out["ours_fill"] = fill
            out[f"{name}_real_tokens"] = real
    out["share_gain"] = out["ours_real_token_share"] / out["tutorial_real_token_share"]
    out["speedup_vs_tutorial"] = out["ours_tokens_per_s"] / out["tutorial_tokens_per_s"]
    return out
