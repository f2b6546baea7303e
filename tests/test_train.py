"""Training on the tiny Gemma (CPU): validation, masking, template parity, packing without
leaks, a short run that reloads and generates, resume, export, the stage and the launcher."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import Workspace

from seedtune.core.config import TrainConfig
from seedtune.core.errors import ConfigError

N_ROWS = 40


def make_rows(n: int = N_ROWS) -> list[dict[str, Any]]:
    """Instruction rows like synthesize writes: every 10th one held out for eval."""
    from seedtune_sandbox.tiny import corpus_lines

    lines = corpus_lines()
    rows = []
    for i in range(n):
        words = lines[i].split()
        rows.append(
            {
                "question": f"{' '.join(words[:3])}에 대해 알려 주세요?",
                "answer": f"{lines[i]} {lines[i + n]}",
                "split": "eval" if i % 10 == 9 else "train",
            }
        )
    return rows


def make_cfg(model: Path | str, **train: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "model": {"name_or_path": str(model)},
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
        "optim": {"lr": 5e-3, "warmup_ratio": 0.0},
        "max_steps": 4,
        "batch_size": 2,
        "grad_accum": 1,
        "max_length": 256,
        "logging_steps": 1,
        "eval_steps": 2,
        "save_steps": 2,
    }
    for key, value in train.items():
        node, *path = key.split("__")
        if path:
            base[node] = {**base[node], path[0]: value}
        else:
            base[key] = value
    return TrainConfig.model_validate(base)


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return make_rows()


@pytest.fixture(scope="module")
def gemma(tiny_models) -> Path:
    return tiny_models.gemma


# ---------------------------------------------------------------------------- validation


def _no_weights_copy(src: Path, dst: Path) -> Path:
    """The model directory without its weights: validation must never need them."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors"))
    return dst


def test_validate_reads_no_weights(gemma: Path, tmp_path: Path) -> None:
    from seedtune.training.configure import validate

    caps = validate(make_cfg(_no_weights_copy(gemma, tmp_path / "m")))
    assert caps["cuda"] in (True, False)


@pytest.mark.parametrize(
    "key,override",
    [
        ("train.model.name_or_path", {"model__name_or_path": "/nonexistent/gemma-2b-it"}),
        ("train.model.name_or_path", {"model__name_or_path": "NO_CONFIG"}),
        ("train.model.name_or_path", {"model__name_or_path": "NO_TEMPLATE"}),
        ("train.lora.target_modules", {"lora__target_modules": ["q_proj", "query_key_value"]}),
        ("train.optim.name", {"optim__name": "adamw_bogus"}),
        ("train.optim.scheduler", {"optim__scheduler": "zigzag"}),
        ("train.num_processes", {"num_processes": 2}),
        ("train.accelerate_config", {"launcher": "accelerate", "accelerate_config": "nope.yaml"}),
        ("train.model.attn_implementation", {"model__attn_implementation": "flash_attention_2"}),
        ("train.model.load_in_4bit", {"model__load_in_4bit": True}),
        ("train.liger_kernel", {"liger_kernel": True}),
    ],
)
def test_every_validation_error_is_one_line_naming_the_key(
    gemma: Path, tmp_path: Path, key: str, override: dict[str, Any]
) -> None:
    from seedtune.core.device import device_caps
    from seedtune.training.configure import validate

    caps = device_caps()
    if caps["cuda"] and key in (
        "train.model.attn_implementation",
        "train.model.load_in_4bit",
        "train.liger_kernel",
    ):
        pytest.skip("CPU-only errors")
    name = override.get("model__name_or_path")
    if name == "NO_CONFIG":
        (tmp_path / "empty").mkdir()
        override = {"model__name_or_path": str(tmp_path / "empty")}
    elif name == "NO_TEMPLATE":
        model = _no_weights_copy(gemma, tmp_path / "base")
        (model / "chat_template.jinja").unlink()
        tok_cfg = json.loads((model / "tokenizer_config.json").read_text())
        tok_cfg.pop("chat_template", None)
        (model / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
        override = {"model__name_or_path": str(model)}
    cfg = make_cfg(_no_weights_copy(gemma, tmp_path / "m"), **override)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"params.yaml: {key}="), msg


def _train_ws(ws: Workspace, rows: list[dict[str, Any]], train: dict[str, Any]) -> Workspace:
    """params.yaml with ``train`` overrides (dotted keys), the data and conf/accelerate."""
    overrides: dict[str, Any] = {}
    for dotted, value in train.items():
        *parents, leaf = dotted.split(".")
        node = overrides
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = value
    ws.params(train=overrides)
    ws.write("data/instructions.jsonl", rows)
    ws.copy_from_repo("conf/accelerate")
    return ws


@pytest.mark.parametrize(
    "key,value",
    [
        ("lora.r", "abc"),
        ("optim.lr", -1),
        ("model.name_or_path", "/nonexistent/gemma-2b-it"),
        ("eval_steps", 1.5),
    ],
)
def test_train_stage_fails_fast_with_one_line(
    workspace: Workspace, gemma: Path, rows: list[dict[str, Any]], key: str, value: Any
) -> None:
    ws = _train_ws(workspace, rows, {"model.name_or_path": str(gemma), key: value})
    proc = ws.run("train")
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("train: error:"), proc.stderr[-2000:]
    assert f"train.{key}" in errors[0]
    assert "Loading weights" not in proc.stderr  # failed before any weights were read
    assert not (ws.path / "models/adapter").exists()


# ------------------------------------------------------------------ format, masking, packing


@pytest.fixture(scope="module")
def trainer(gemma: Path, rows: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory):
    from seedtune.training.train import build_trainer, split_rows

    train_rows, eval_rows = split_rows(rows)
    return build_trainer(
        make_cfg(gemma), 42, train_rows, eval_rows, tmp_path_factory.mktemp("ckpt")
    )


@pytest.fixture(scope="module")
def batch(trainer) -> dict[str, Any]:
    return next(iter(trainer.get_train_dataloader()))


def _segments(batch: dict[str, Any]) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) of each packed example, cut at the collator's cu_seq_lens."""
    cu = batch["cu_seq_lens_q"].tolist()
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    return [(ids[s:e], labels[s:e]) for s, e in zip(cu, cu[1:], strict=False)]


def _generation_prompt_ids(tokenizer: Any, question: str) -> list[int]:
    """Exactly how seedtune.evaluation.generation encodes a question for the model."""
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_batch_is_packed_padding_free(batch: dict[str, Any], trainer) -> None:
    assert "attention_mask" not in batch  # padding-free: boundaries come from position_ids
    assert batch["input_ids"].shape[0] == 1
    assert len(batch["cu_seq_lens_q"]) - 1 > trainer.args.per_device_train_batch_size
    assert (batch["input_ids"] != trainer.processing_class.pad_token_id).all()


def test_loss_only_on_answer_tokens_and_prompt_matches_generation(
    batch: dict[str, Any], trainer, rows: list[dict[str, Any]]
) -> None:
    tok = trainer.processing_class
    prompts = {tuple(_generation_prompt_ids(tok, r["question"])): r for r in rows}
    segments = _segments(batch)
    assert segments
    for ids, labels in segments:
        n_masked = next(i for i, lab in enumerate(labels) if lab != -100)
        # the prompt is masked, every token after it is a label (a prefix, then the answer)
        assert all(lab == -100 for lab in labels[:n_masked])
        assert labels[n_masked:] == ids[n_masked:]
        # template parity: the masked prompt is token for token what generation feeds
        assert tuple(ids[:n_masked]) in prompts, tok.decode(ids[:n_masked])
        row = prompts[tuple(ids[:n_masked])]
        answer = tok.decode(ids[n_masked:])
        assert answer.endswith("<end_of_turn>\n")  # the model learns to stop
        assert answer.startswith(row["answer"][:10])


def test_packed_examples_do_not_attend_to_each_other(batch: dict[str, Any], trainer) -> None:
    """sdpa and flex_attention get a block-diagonal (document) mask from position_ids:
    each packed example's logits equal those of the example run alone."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CPU check of the sdpa path; on CUDA flash-attn uses cu_seq_lens")
    model = trainer.model
    model.eval()
    with torch.no_grad():
        packed = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits[0]
        cu = batch["cu_seq_lens_q"].tolist()
        alone = torch.cat(
            [
                model(input_ids=batch["input_ids"][:, s:e], use_cache=False).logits[0]
                for s, e in zip(cu, cu[1:], strict=False)
            ]
        )
        # what a full attention mask over the packed row would do: attend across examples
        leaky = model(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            attention_mask=torch.ones_like(batch["input_ids"]),
            use_cache=False,
        ).logits[0]
    assert model.config._attn_implementation == "sdpa"
    assert (packed - alone).abs().max().item() < 1e-4
    assert (leaky - alone).abs().max().item() > 1e-3  # the check can tell a leak apart
    # flex_attention (attn_implementation auto on CUDA without flash-attn) builds its block
    # mask from the same position_ids. torch runs flex forward-only on a CPU ("does not
    # support backward on CPU"), and there it returns NaN for a lone sequence shorter than
    # its 128-token block, so the packed flex row is checked against sdpa's examples alone.
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        base.set_attn_implementation("flex_attention")
        with torch.no_grad():
            flex = model(
                input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
            ).logits[0]
    finally:
        base.set_attn_implementation("sdpa")
        model.train()
    assert (flex - alone).abs().max().item() < 1e-4


def _lora_model(gemma: Path, dtype: Any = None) -> Any:
    """The tiny Gemma (bf16 unless ``dtype``) with the project's LoRA adapter as PEFT makes
    it (fp32 weights), lora_B drawn non-zero so that the adapter counts and A gets
    gradients too."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from seedtune.training.configure import lora_config

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(gemma, dtype=dtype or torch.bfloat16)
    model = get_peft_model(base, lora_config(make_cfg(gemma)))  # PEFT's default: fp32 adapter
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    return model


def _lora_step(
    gemma: Path, uncast: bool, autocast: bool = True, fused: bool = False, dtype: Any = None
) -> tuple[Any, Any, dict[str, int]]:
    """One forward and backward of the tiny Gemma with the project's fp32 LoRA adapter:
    (logits, adapter grads, aten op counts), and under the op count ``"bytes"`` the bytes
    its kernels read and wrote besides the frozen weights (bench/traffic.py)."""
    import torch
    from support import bench_module
    from torch.profiler import ProfilerActivity, profile

    from seedtune.training.lora_path import fuse_lora_add, uncast_lora_inputs

    byte_counter = bench_module("traffic").byte_counter

    model = _lora_model(gemma, dtype)
    layers = 7 * model.get_base_model().config.num_hidden_layers
    if uncast:
        assert uncast_lora_inputs(model) == layers
    if fused:
        assert fuse_lora_add(model) == layers
    torch.manual_seed(1)
    ids = torch.randint(4, model.config.vocab_size, (1, 48))
    pos = torch.cat([torch.arange(20), torch.arange(28)]).unsqueeze(0)
    counter = byte_counter(skip=[p for p in model.parameters() if not p.requires_grad])
    with profile(activities=[ProfilerActivity.CPU]) as prof, counter:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=ids, position_ids=pos, use_cache=False).logits
        logits.float().logsumexp(-1).mean().backward()
    ops = {
        e.key.removeprefix("aten::"): e.count
        for e in prof.key_averages()
        if e.key.startswith("aten::")
    }
    ops["bytes"] = counter.total()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if p.requires_grad)
    return logits.detach(), grads, ops


def test_lora_layers_take_autocast_inputs_as_they_are(gemma: Path) -> None:
    """Under bf16 autocast (accelerate's, for every training forward) PEFT's cast of each LoRA
    input to the fp32 adapter dtype is a round trip: without it the logits and every adapter
    gradient are bit-identical, with two fewer full-size copies per LoRA layer and pass."""
    import torch

    logits, grads, ops = _lora_step(gemma, uncast=False)
    logits_u, grads_u, ops_u = _lora_step(gemma, uncast=True)
    assert torch.equal(logits, logits_u)
    assert grads.keys() == grads_u.keys() and grads
    assert all(torch.equal(grads[n], grads_u[n]) for n in grads)
    assert any(g.abs().sum() > 0 for n, g in grads.items() if "lora_A" in n)
    layers = 7 * 2  # the tiny Gemma has two decoder layers
    assert ops["_to_copy"] - ops_u["_to_copy"] >= 2 * layers, (ops["_to_copy"], ops_u["_to_copy"])
    # the switch is for autocast only: without it a bf16 input meets fp32 weights, loudly
    with pytest.raises(RuntimeError, match="dtype"):
        _lora_step(gemma, uncast=True, autocast=False)


def _close(a: Any, b: Any, tol: float) -> bool:
    """Relative L2 distance of two tensors within ``tol``."""
    return float((a.float() - b.float()).norm() / b.float().norm().clamp(min=1e-12)) < tol


def test_lora_scale_and_add_fold_into_the_matmul(gemma: Path) -> None:
    """``scaling * lora_B(h)`` added into the base output by one in-place addmm gives PEFT's
    logits and adapter gradients (fp32: to rounding; bf16 autocast: within bf16 rounding,
    the sum now rounded once instead of twice), and moves fewer bytes: at least PEFT's scale
    pass over each LoRA output (read and write) forward and backward, counted kernel by
    kernel."""
    import torch

    # bf16: 8 mantissa bits, so a sum rounded once instead of twice differs by a few parts in a
    # hundred in the smallest adapter gradients of the (pre-trained) tiny Gemma: 3.6% seen
    for dtype, autocast, tol in ((torch.float32, False, 1e-5), (torch.bfloat16, True, 6e-2)):
        uncast = autocast
        logits, grads, ops = _lora_step(gemma, uncast, autocast, fused=False, dtype=dtype)
        logits_f, grads_f, ops_f = _lora_step(gemma, uncast, autocast, fused=True, dtype=dtype)
        assert logits_f.dtype == logits.dtype and _close(logits_f, logits, tol), dtype
        assert grads.keys() == grads_f.keys()
        assert all(_close(grads_f[n], grads[n], tol) for n in grads), dtype
        assert ops_f.get("addmm_", 0) >= 7 * 2 and not ops.get("addmm_")
        # tiny Gemma, per layer: q, o, down 64 wide; k, v 16; gate, up 128 (48 tokens)
        out_width = 2 * (64 + 16 + 16 + 64 + 128 + 128 + 64)
        scale_passes = 2 * 2 * out_width * 48 * logits.element_size()
        assert ops["bytes"] - ops_f["bytes"] >= scale_passes, (dtype, ops["bytes"], ops_f["bytes"])


def test_folded_lora_falls_back_to_peft_and_saves_a_plain_adapter(
    gemma: Path, tmp_path: Path
) -> None:
    """Outside the plain case the fused layer is PEFT's own forward: adapters disabled or
    merged, two adapters at once. The saved adapter is PEFT's format, loaded by plain PEFT to
    the same logits, and ``fused=False`` puts PEFT's class back."""
    import torch
    from peft import PeftModel
    from peft.tuners.lora.layer import Linear
    from transformers import AutoModelForCausalLM

    from seedtune.training.configure import lora_config
    from seedtune.training.lora_path import fuse_lora_add

    ids = torch.randint(4, 500, (1, 24))
    model = _lora_model(gemma, torch.float32).eval()

    def logits(m: Any) -> Any:
        with torch.no_grad():
            return m(input_ids=ids, use_cache=False).logits

    peft_out = logits(model)
    with model.disable_adapter():
        peft_base = logits(model)
    assert fuse_lora_add(model) == 14
    assert not any(type(m) is Linear for m in model.modules())
    fused_out = logits(model)
    assert _close(fused_out, peft_out, 1e-5)
    with model.disable_adapter():
        assert torch.equal(logits(model), peft_base)
    model.save_pretrained(tmp_path / "adapter")
    plain = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(gemma, dtype=torch.float32), tmp_path / "adapter"
    )
    assert _close(logits(plain.eval()), fused_out, 1e-5)
    assert not any(type(m).__name__ == "FusedAddLinear" for m in plain.modules())

    def fused_vs_peft() -> tuple[Any, Any]:
        """Logits through the fused layers, then through PEFT's own, then fused again."""
        fused = logits(model)
        assert fuse_lora_add(model, fused=False) == 14
        peft = logits(model)
        assert fuse_lora_add(model) == 14
        return fused, peft

    model.merge_adapter()  # the adapter's delta in the base weights
    fused, peft = fused_vs_peft()
    assert torch.equal(fused, peft) and not torch.equal(fused, peft_base)
    model.unmerge_adapter()
    # a second adapter, both active: PEFT's loop over the active adapters
    model.add_adapter("other", lora_config(make_cfg(gemma)))
    model.base_model.set_adapter(["default", "other"])
    fused, peft = fused_vs_peft()
    assert torch.equal(fused, peft)


def test_bf16_training_takes_lora_inputs_uncast(
    gemma: Path, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The trainer the stage builds under bf16 mixed precision (here CPU autocast) has every
    LoRA layer reading its input as is, and trains; in fp32 nothing is switched."""
    import torch

    from seedtune.core.device import device_caps
    from seedtune.training.train import build_trainer, split_rows

    train_rows, _ = split_rows(rows)
    cfg = make_cfg(gemma, max_steps=2, eval_steps=100, save_steps=100)
    caps = {**device_caps(), "bf16": True}  # what a bf16 GPU reports
    trainer = build_trainer(cfg, 42, train_rows, [], tmp_path / "ckpt", caps=caps)
    assert trainer.args.bf16 and trainer.accelerator.native_amp
    layers = [m for m in trainer.model.modules() if hasattr(m, "cast_input_dtype_enabled")]
    assert len(layers) == 14 and not any(m.cast_input_dtype_enabled for m in layers)
    assert all(type(m).__name__ == "FusedAddLinear" for m in layers)
    trainer.train()
    assert math.isfinite(trainer.state.log_history[-1]["train_loss"])
    assert next(trainer.model.parameters()).dtype == torch.bfloat16
    fp32 = build_trainer(
        cfg, 42, train_rows, [], tmp_path / "ckpt32", caps={**device_caps(), "bf16": False}
    )
    assert all(
        m.cast_input_dtype_enabled
        for m in fp32.model.modules()
        if hasattr(m, "cast_input_dtype_enabled")
    )


@pytest.mark.slow
def test_compile_is_regional_and_trains_like_eager(
    gemma: Path, rows: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train.compile (CUDA only in the stage; forced here, where inductor compiles for the
    CPU): accelerate compiles each decoder layer, not the whole model, with no graph break
    (TRL's chunked LM-head loss, which breaks a whole-model graph, stays outside); the losses
    follow eager's within bf16 rounding and the adapter is saved under PEFT's own names."""
    import dataclasses

    import torch._dynamo.utils
    from safetensors import safe_open

    import seedtune.training.train as train_mod
    from seedtune.core.device import device_caps

    train_rows, _ = train_mod.split_rows(rows)
    cfg = make_cfg(gemma, max_steps=3, eval_steps=100, save_steps=100)
    caps = {**device_caps(), "bf16": True}
    eager = train_mod.build_trainer(cfg, 42, train_rows, [], tmp_path / "eager", caps=caps)
    eager.train()
    config = train_mod.sft_config
    monkeypatch.setattr(
        train_mod,
        "sft_config",
        lambda *a, **k: dataclasses.replace(config(*a, **k), torch_compile=True),
    )
    torch._dynamo.utils.counters.clear()
    compiled = train_mod.build_trainer(cfg, 42, train_rows, [], tmp_path / "compiled", caps=caps)
    compiled.train()
    layers = compiled.model_wrapped.base_model.model.model.layers
    assert [type(layer).__name__ for layer in layers] == ["OptimizedModule"] * 2
    assert type(compiled.model_wrapped).__name__ != "OptimizedModule"  # not the whole model
    assert not torch._dynamo.utils.counters["graph_break"]

    def losses(trainer: Any) -> list[float]:
        return [h["loss"] for h in trainer.state.log_history if "loss" in h]

    assert len(losses(compiled)) == 3
    assert losses(compiled) == pytest.approx(losses(eager), rel=1e-3)
    compiled.save_model(str(tmp_path / "adapter"))
    with safe_open(str(tmp_path / "adapter" / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    eager.save_model(str(tmp_path / "adapter_eager"))
    with safe_open(str(tmp_path / "adapter_eager" / "adapter_model.safetensors"), "pt") as f:
        assert keys == list(f.keys()) and all("_orig_mod" not in k for k in keys)


def test_eval_steps_below_one_is_a_share_of_the_run(
    gemma: Path, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    """train.eval_steps 0.25 evaluates four times whatever the run's length (transformers'
    ratio form): at steps 2, 4, 6, 8 of 8. A whole number stays a number of steps."""
    from seedtune.training.train import build_trainer, split_rows

    train_rows, eval_rows = split_rows(rows)
    cfg = make_cfg(gemma, max_steps=8, eval_steps=0.25, save_steps=100, batch_size=1)
    trainer = build_trainer(cfg, 42, train_rows, eval_rows, tmp_path / "ckpt")
    trainer.train()
    assert [h["step"] for h in trainer.state.log_history if "eval_loss" in h] == [2, 4, 6, 8]
    assert make_cfg(gemma, eval_steps=50.0).eval_steps == 50
    assert isinstance(make_cfg(gemma, eval_steps=50.0).eval_steps, int)


def test_sft_config_maps_params_explicitly(trainer) -> None:
    from seedtune.core.device import device_caps

    args = trainer.args
    assert (args.learning_rate, args.lr_scheduler_type.value, args.max_steps) == (5e-3, "cosine", 4)
    assert args.packing and args.packing_strategy == "bfd" and args.completion_only_loss
    assert args.activation_checkpointing is False  # TRL's default would be True
    assert args.optim.value == ("adamw_torch_fused" if device_caps()["cuda"] else "adamw_torch")
    assert args.seed == 42 and args.eval_strategy.value == "steps"
    lora = trainer.model.peft_config["default"]
    assert (lora.r, lora.lora_alpha) == (4, 32)


# ------------------------------------------------------------------------ a short run


@pytest.fixture(scope="module")
def trained(gemma: Path, rows: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory):
    from seedtune.training.train import live_or_none, train

    tmp = tmp_path_factory.mktemp("run")
    out = tmp / "adapter"
    out.mkdir()
    with live_or_none(tmp / "metrics", True) as live:
        metrics = train(make_cfg(gemma), rows, 42, out, tmp / "ckpt", live)
    return out, metrics, tmp / "metrics"


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


def test_export_merges_into_a_standalone_model(trained, tmp_path: Path) -> None:
    import torch
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from seedtune.cli import main

    out, _, _ = trained
    merged = tmp_path / "merged"
    assert main(["export", "--adapter", str(out), "--out", str(merged)]) == 0
    assert not (merged / "adapter_config.json").exists()
    assert AutoTokenizer.from_pretrained(merged).chat_template
    ids = torch.tensor([[2, 5, 100, 200, 300]])
    with torch.no_grad():
        want = AutoPeftModelForCausalLM.from_pretrained(out)(input_ids=ids).logits
        got = AutoModelForCausalLM.from_pretrained(merged)(input_ids=ids).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_export_without_adapter_is_one_line(tmp_path: Path) -> None:
    from seedtune.cli import main

    assert main(["export", "--adapter", str(tmp_path / "none")]) == 2


# ------------------------------------------------------------------------ launching


def test_accelerate_launch_command(root: Path, gemma: Path) -> None:
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    from seedtune.training.launch import launch_command

    cfg = make_cfg(
        gemma,
        launcher="accelerate",
        num_processes=4,
        accelerate_config=str(root / "conf/accelerate/fsdp.yaml"),
    )
    cmd = launch_command(cfg, "stages/train.py")
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    args = launch_command_parser().parse_args(cmd[3:])
    assert (args.num_processes, args.config_file, args.training_script) == (
        4,
        str(root / "conf/accelerate/fsdp.yaml"),
        "stages/train.py",
    )
    kinds = {
        name: load_config_from_file(str(root / f"conf/accelerate/{name}.yaml")).distributed_type
        for name in ("ddp", "fsdp")
    }
    assert {k: v.value for k, v in kinds.items()} == {"ddp": "MULTI_GPU", "fsdp": "FSDP"}


def test_two_cpu_processes_train_through_the_stage(
    workspace: Workspace, gemma: Path, rows: list[dict[str, Any]]
) -> None:
    """launcher=accelerate, num_processes=2: the stage relaunches itself under accelerate
    (DDP over gloo on CPU); rank 0 alone writes the adapter, card and metrics."""
    ws = _train_ws(
        workspace,
        rows,
        {
            "model.name_or_path": str(gemma),
            "launcher": "accelerate",
            "num_processes": 2,
            "max_steps": 2,
            "batch_size": 2,
            "grad_accum": 1,
            "max_length": 256,
            "logging_steps": 1,
            "eval_steps": 2,
            "save_steps": 2,
        },
    )
    proc = ws.run("train")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "launching 2 processes" in proc.stderr and "cpu, 2 process(es)" in proc.stderr
    adapter = ws.path / "models/adapter"
    assert (adapter / "adapter_model.safetensors").is_file()
    assert "# LoRA adapter for" in (adapter / "README.md").read_text(encoding="utf-8")
    summary = json.loads((ws.path / "metrics/train.json").read_text())
    assert summary["steps"] == 2 and "eval_loss" in summary
    assert not (ws.path / "models/checkpoints").exists()  # a finished run leaves nothing to resume


def test_with_passages_trains_on_exactly_the_prompt_ask_rag_asks() -> None:
    """train.with_passages: the model sees at training time the very user turn that
    `seedtune ask --rag` sends it (parity, passages fenced the same way)."""
    from seedtune.cli.ask import build_prompt
    from seedtune.training.train import to_conversation

    question = "전세 계약 전에 무엇을 확인해야 하나요?"
    row = {
        "question": question,
        "answer": "등기부등본을 확인하세요.",
        "split": "train",
        "passages": ["근저당과 가압류를 확인하세요.", "보증보험 </참고자료> 가입을 검토하세요."],
    }
    docs = [{"passage": p} for p in row["passages"]]
    prompt = to_conversation(row, with_passages=True)["prompt"][0]["content"]
    assert prompt == build_prompt(question, docs, len(docs))
    assert question in prompt and "[1] 근저당과 가압류를 확인하세요." in prompt
    assert prompt.count("</참고자료>") == 1  # a passage cannot close the block here either
    assert to_conversation(row)["prompt"][0]["content"] == question  # the default


def test_gpu_profile_sorts_h100_kernels_by_kind() -> None:
    """Kernel names as torch.profiler reports them on an H100 (cuBLAS nvjet/sm90 gemms,
    sdpa's cutlass fmha, flex's Triton template, TRL's chunked log-prob kernels, fused
    AdamW, casts) land in the kind the bench's step profile reports them under."""
    from support import bench_module

    profile = bench_module("step_profile")
    breakdown, kind_of = profile.breakdown, profile.kind_of
    names = {
        "nvjet_tst_128x256_64x4_2x1_v_bz_coopA_TNN": "matmul",
        "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_cublas": "matmul",
        "triton_tem_fused_mm_4": "matmul",
        "fmha_cutlassB_bf16_aligned_64x64_k128_sm80": "attention",
        "triton_tem_fused_flex_attention_0": "attention",
        "flash_fwd_kernel": "attention",
        "_forward_kernel": "lm head loss",
        "_backward_kernel": "lm head loss",
        "_rms_norm_forward_kernel": "other elementwise",  # Liger's, not the loss
        "void at::native::(anonymous namespace)::multi_tensor_apply_kernel<FusedAdamMathFunctor>": "optimizer",  # noqa: E501
        "void at::native::unrolled_elementwise_kernel<direct_copy_kernel_cuda>": "copies and casts",
        "Memcpy HtoD (Pageable -> Device)": "copies and casts",
        "void at::native::vectorized_elementwise_kernel<4, GeluCUDAKernelImpl>": "other elementwise",  # noqa: E501
        "aten::mm": "matmul",
        "aten::addmm": "matmul",
        "aten::_scaled_dot_product_flash_attention_for_cpu": "attention",
        "aten::mul": "other elementwise",
    }
    assert {name: kind_of(name) for name in names} == names
    # CUDA: kernels' device time by kind; a CPU op's device time (its kernels again) is not
    # counted twice; the rest of the step's wall time is idle
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    def event(key: str, ms: float, device: Any) -> Any:
        return SimpleNamespace(
            key=key, self_device_time_total=ms * 1e3, device_type=device, self_cpu_time_total=0.0
        )

    parts = breakdown(
        [
            event("nvjet_tst_128x256", 60.0, DeviceType.CUDA),
            event("flash_fwd_kernel", 10.0, DeviceType.CUDA),
            event("aten::mm", 60.0, DeviceType.CPU),
        ],
        wall_ms=100.0,
        cuda=True,
    )
    assert parts == {"matmul": 60.0, "attention": 10.0, "idle": 30.0, "wall": 100.0}


@pytest.mark.slow
def test_gpu_bench_tiny_mode_prints_every_setting(tmp_path: Path) -> None:
    """bench/gpu_train.py --tiny (issue 15's CPU smoke test): every setting's code path runs
    and the table carries tokens/s, MFU, tokens per micro-batch, peak memory and both ratios;
    without --tiny on a machine with no CUDA it is one line and status 2."""
    import subprocess

    from support import ROOT

    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")}
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/gpu_train.py"),
            "--tiny",
            "--steps",
            "2",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    head = next(line for line in proc.stdout.splitlines() if line.startswith("setting")).split()
    for column in ("tokens/s", "MFU", "tok/µb", "peak", "tutorial"):
        assert column in head
    results = json.loads(out.read_text())["results"]
    assert [r["setting"] for r in results] == [
        "tutorial",
        "defaults",
        "defaults_unfused",
        "defaults_peft",
        "defaults_b8",
        "defaults_eq",
        "compile",
    ]
    assert all(r["tokens_per_s"] > 0 and r["steps"] == 2 for r in results)
    assert [r["setting"] for r in results if r["peft_casts"]] == ["tutorial", "defaults_peft"]
    assert [r["setting"] for r in results if r["peft_add"]] == [
        "tutorial",
        "defaults_unfused",
        "defaults_peft",
    ]
    # the defaults' extra, untimed step under the profiler: time by kind, the idle rest
    profile = next(r for r in results if r["setting"] == "defaults")["profile"]
    assert profile["matmul"] > 0 and profile["attention"] > 0 and profile["idle"] >= 0
    kinds = sum(v for k, v in profile.items() if k != "wall")
    assert kinds == pytest.approx(max(profile["wall"], kinds - profile["idle"]))
    assert "one optimizer step of `defaults` under torch.profiler" in proc.stdout
    assert all("profile" not in r for r in results if r["setting"] != "defaults")
    # defaults_eq: one packed row as long as the tutorial's real tokens per micro-batch
    by = {r["setting"]: r for r in results}
    assert by["defaults_eq"]["max_length"] == round(by["tutorial"]["tokens_per_microbatch"])
    assert by["defaults_eq"]["tokens_per_microbatch"] <= by["defaults_eq"]["max_length"]
    assert by["defaults_b8"]["batch"] == "8x1"
    budget = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/gpu_train.py"),
            "--tiny",
            "--steps",
            "1",
            "--budget-s",
            "0",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert budget.returncode == 1 and budget.stdout.count("skipped: --budget-s 0") == 7
    import torch

    if not torch.cuda.is_available():
        nocuda = subprocess.run(
            [sys.executable, str(ROOT / "bench/gpu_train.py")],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert nocuda.returncode == 2
        assert nocuda.stderr.strip().splitlines() == [
            "gpu_train: error: needs a CUDA GPU (torch.cuda.is_available() is False); "
            "run it on a GPU machine"
        ]
