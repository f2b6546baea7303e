"""A short training run on the tiny Gemma (CPU): metrics and dvclive files, MFU and
tokens/s, the adapter reloads and generates, resume after an interruption, checkpoints
that restart when params change, the model card."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from train_support import make_cfg

# ------------------------------------------------------------------------ a short run


def test_short_run_metrics_and_dvclive_files(trained) -> None:
    _, metrics, live_dir = trained
    assert metrics["steps"] == 4 and metrics["eval_examples"] == 4
    assert math.isfinite(metrics["train_loss"]) and math.isfinite(metrics["eval_loss"])
    assert metrics["tokens_per_s"] > 0  # what metrics/summary.json shows as train_tokens_per_s
    assert metrics["mfu"] is None and metrics["bf16_tflops"] is None  # measured on CUDA only
    summary = json.loads((live_dir / "metrics.json").read_text())  # dvclive's last values
    assert summary["train"]["loss"] == metrics["train_loss"] and summary["step"] == 4
    plots = live_dir / "plots/metrics"
    for name in ("train/loss", "eval/loss", "train/learning_rate", "train/tokens_per_s"):
        lines = (plots / f"{name}.tsv").read_text().splitlines()
        assert lines[0].split("\t")[:2] == ["step", name.split("/")[1]], name
        assert len(lines) >= 3, name
    steps = [int(x.split("\t")[0]) for x in (plots / "train/loss.tsv").read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4]


def test_mfu_is_4_flops_per_parameter_per_token_against_the_measured_rate(gemma: Path) -> None:
    """MFU as issue 15 defines it: 4N FLOPs per token (N with the LM head) over the card's
    measured bf16 matrix rate, per GPU; without a measured rate (no CUDA) there is none."""
    from transformers import AutoModelForCausalLM

    from seedtune.core.device import matmul_flops
    from seedtune.training.train import mfu

    model = AutoModelForCausalLM.from_pretrained(gemma)
    n = sum(p.numel() for p in model.parameters())
    assert mfu(1000.0, model, 1, 8000.0 * n) == 0.5  # 4n FLOPs x 1000 tokens/s over 8000n
    assert mfu(1000.0, model, 2, 8000.0 * n) == 0.25  # the same tokens/s over two such GPUs
    assert mfu(1000.0, model, 1, None) is None and mfu(None, model, 1, 1e15) is None
    from peft import get_peft_model

    from seedtune.training.configure import lora_config

    tuned = get_peft_model(model, lora_config(make_cfg(gemma)))  # PEFT counts it (4-bit too)
    assert mfu(1000.0, tuned, 1, 8000.0 * sum(p.numel() for p in tuned.parameters())) == 0.5
    import torch

    if not torch.cuda.is_available():
        assert matmul_flops() is None


def test_tokens_per_s_leaves_out_the_warm_up_and_evaluation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run whose first step spends 100 s compiling, then trains 1000 tokens a second with
    a 30 s evaluation in between, reports 1000 tokens/s; a run too short for the window
    after the warm-up steps is measured from its start; a resumed run counts its own part."""
    from types import SimpleNamespace

    from seedtune.training import live

    now = [0.0]
    monkeypatch.setattr(live.time, "perf_counter", lambda: now[0])

    def run(
        steps: list[tuple[int, float, float, dict[str, Any]]],
        history: list[Any] = (),
        step0: int = 0,
    ) -> float | None:
        meter, now[0] = live.Throughput(), 0.0
        meter.on_train_begin(
            None, SimpleNamespace(log_history=list(history), global_step=step0), None
        )
        for step, t, tokens, extra in steps:
            now[0] = t
            meter.on_log(
                None,
                SimpleNamespace(global_step=step),
                None,
                logs={"loss": 1.0, "num_tokens": tokens, **extra},
            )
        return meter.tokens_per_s()

    # step 1 at 100 s (compiles), logs every 5 steps, an eval of 30 s before step 15's log
    steps = [
        (1, 100.0, 1000.0, {}),
        (5, 104.0, 5000.0, {}),
        (10, 109.0, 10000.0, {}),
        (15, 144.0, 15000.0, {"eval_runtime": 30.0}),
        (20, 149.0, 20000.0, {}),
    ]
    assert run(steps) == 1000.0
    assert run(steps[:2]) == round(5000 / 104, 1)  # no log after the window opens: from 0
    assert run([]) is None
    # resumed at step 10 with 10000 tokens counted before: its own steps and tokens only
    resumed = [(11, 50.0, 11000.0, {}), (15, 54.0, 15000.0, {}), (20, 59.0, 20000.0, {})]
    assert run(resumed, history=[{"num_tokens": 10000.0}], step0=10) == 1000.0


def test_adapter_reloads_generates_and_carries_the_base_template(trained, gemma: Path) -> None:
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    from seedtune.evaluation.generation import generate_answers

    out, _, _ = trained
    assert (out / "adapter_model.safetensors").is_file()
    assert not (out / "training_args.bin").exists()
    assert (out / "chat_template.jinja").read_text() == (gemma / "chat_template.jinja").read_text()
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template == AutoTokenizer.from_pretrained(gemma).chat_template
    model = AutoPeftModelForCausalLM.from_pretrained(out)
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # the adapter learned something
    answers = generate_answers(model, tok, ["전세 계약 전에 무엇을 확인하나요?"], max_new_tokens=8)
    assert len(answers) == 1 and isinstance(answers[0], str)


def test_interrupted_run_resumes_to_the_same_adapter(trained, gemma: Path, rows, tmp_path) -> None:
    """Stopped after step 3 (checkpoint at 2), rerun: it resumes and ends where an
    uninterrupted run with the same seed ends (so the seed makes runs deterministic too)."""
    import torch
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    from seedtune.training.train import train

    class Interrupt(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step == 3:
                raise KeyboardInterrupt

    ckpt, out = tmp_path / "ckpt", tmp_path / "adapter"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        train(make_cfg(gemma), rows, 42, out, ckpt, None, [Interrupt()])
    assert (ckpt / "checkpoint-2").is_dir() and not (out / "adapter_config.json").exists()
    # newer checkpoints a kill left half-written must be skipped, not block the rerun
    shutil.copytree(ckpt / "checkpoint-2", ckpt / "checkpoint-3")
    optimizer = ckpt / "checkpoint-3" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[: optimizer.stat().st_size // 2])
    shutil.copytree(ckpt / "checkpoint-2", ckpt / "checkpoint-5")
    (ckpt / "checkpoint-5" / "trainer_state.json").unlink()
    from seedtune.training.checkpoints import latest_complete, problem

    assert problem(ckpt / "checkpoint-3") == "optimizer.pt is truncated or damaged"
    assert problem(ckpt / "checkpoint-5") == "no trainer_state.json"
    assert latest_complete(ckpt) == ckpt / "checkpoint-2"
    metrics = train(make_cfg(gemma), rows, 42, out, ckpt, None)
    assert metrics["steps"] == 4
    resumed = load_file(out / "adapter_model.safetensors")
    straight = load_file(trained[0] / "adapter_model.safetensors")
    assert resumed.keys() == straight.keys()
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], atol=1e-5, rtol=1e-4)


def test_checkpoints_restart_when_params_change(gemma: Path, tmp_path: Path) -> None:
    from seedtune.training.checkpoints import prepare_checkpoints

    data = tmp_path / "data.jsonl"
    data.write_text("{}\n")
    root = prepare_checkpoints(tmp_path / "ckpt", make_cfg(gemma), 42, data)
    (root / "checkpoint-2").mkdir()
    prepare_checkpoints(root, make_cfg(gemma), 42, data)
    assert (root / "checkpoint-2").is_dir()  # same run: keep, to resume
    prepare_checkpoints(root, make_cfg(gemma, lora__r=8), 42, data)
    assert not (root / "checkpoint-2").exists()  # r=4 checkpoints cannot continue as r=8


def test_model_card_lists_base_params_data_version_metrics(
    trained, gemma: Path, tmp_path: Path
) -> None:
    from seedtune.core.records import data_version
    from seedtune.training.model_card import write_model_card

    data = tmp_path / "instructions.jsonl"
    data.write_text('{"question": "q", "answer": "a"}\n', encoding="utf-8")
    _, metrics, _ = trained
    write_model_card(tmp_path, make_cfg(gemma), 42, data, metrics)
    card = (tmp_path / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(card.split("---")[1])
    assert front["base_model"] == str(gemma) and front["library_name"] == "peft"
    assert data_version(data) in card and len(data_version(data)) == 32
    assert f"{metrics['eval_loss']:.4g}" in card and "r: 4" in card
