"""Training on the tiny Gemma (CPU): validation, the conversation format and masking,
template parity, packing without leaks, LoRA folding, the SFT config."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from support import Workspace
from train_support import make_cfg, train_ws

from seedtune.core.errors import ConfigError

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
    ws = train_ws(workspace, rows, {"model.name_or_path": str(gemma), key: value})
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
