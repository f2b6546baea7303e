"""``train`` params -> PEFT ``LoraConfig`` and TRL ``SFTConfig``, validated before any weights load.

Everything the trainer does is set here, field by field, from ``train``, ``train.model``,
``train.lora`` and ``train.optim``: no TRL or transformers default decides anything that
matters (TRL's own defaults differ from transformers', e.g. gradient checkpointing on).
:func:`validate` checks what pydantic cannot (the model, its chat template, the LoRA
targets, the device) and raises :class:`~seedtune.core.config.ConfigError` with one line that
names the key; it reads only config and tokenizer files, never weights.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from seedtune.core.config import FIX, TrainConfig
from seedtune.core.credentials import hf_token
from seedtune.core.device import device_caps
from seedtune.core.errors import ConfigError
from seedtune.core.machine import locate_model
from seedtune.core.versions import unmet

log = logging.getLogger(__name__)


def bad(key: str, value: Any, why: str) -> ConfigError:
    """A one-line error naming the params.yaml key, its value and what is wrong."""
    return ConfigError(f"params.yaml: {key}={value!r}: {why}; {FIX}")


#: What each attention kernel needs, as device_caps() names it, and how to get it.
ATTENTION_NEEDS = {
    "flash_attention_3": ("flash_attn3", "CUDA (Hopper) and flash-attn 3 (flash_attn_interface)"),
    "flash_attention_2": (
        "flash_attn",
        "CUDA and the flash-attn package (`pip install -e .[gpu]`)",
    ),
    "flex_attention": ("flex", "CUDA and torch.nn.attention.flex_attention (torch >= 2.5)"),
}


def resolve_attention(requested: str, caps: dict[str, Any]) -> str:
    """The attention kernel: for ``auto`` on CUDA, flash-attn 3, then 2, when installed,
    else flex_attention, else sdpa; sdpa without CUDA.

    Every kernel keeps packed examples apart: flash-attn through the collator's
    ``cu_seq_lens``; flex_attention, sdpa and eager through the document mask transformers
    builds from ``position_ids`` when no attention mask is passed, which flex turns into a
    block mask that skips the blocks between examples instead of computing and masking them
    (tests/test_train.py checks sdpa, and flex where torch runs it).
    """
    if requested == "auto":
        return next((name for name, (cap, _) in ATTENTION_NEEDS.items() if caps.get(cap)), "sdpa")
    if requested in ATTENTION_NEEDS and not caps.get(ATTENTION_NEEDS[requested][0]):
        raise bad(
            "train.model.attn_implementation",
            requested,
            f"needs {ATTENTION_NEEDS[requested][1]}; use auto or sdpa",
        )
    return requested


def resolve_optim(name: str, caps: dict[str, Any]) -> str:
    """The fused AdamW kernel is meant for CUDA: fall back to adamw_torch elsewhere."""
    if name == "adamw_torch_fused" and not caps["cuda"]:
        log.info("train.optim.name=adamw_torch_fused without CUDA: using adamw_torch")
        return "adamw_torch"
    return name


def resolve_liger(requested: str | bool, caps: dict[str, Any]) -> bool:
    """Liger kernels (Triton, CUDA only): auto turns them on when installed."""
    if requested == "auto":
        return bool(caps["liger"])
    if requested and not caps["liger"]:
        raise bad(
            "train.liger_kernel",
            requested,
            "needs CUDA and the liger-kernel package (`pip install liger-kernel`); use auto",
        )
    return bool(requested)


def use_bf16(cfg: TrainConfig, caps: dict[str, Any]) -> bool:
    """bf16 when asked for and the GPU supports it; fp32 otherwise (CPU, older GPUs)."""
    return cfg.bf16 and bool(caps["bf16"])


def check_launch(cfg: TrainConfig, caps: dict[str, Any]) -> None:
    """train.launcher / num_processes / accelerate_config / load_in_4bit fit this machine."""
    if cfg.launcher == "python" and cfg.num_processes != 1:
        raise bad(
            "train.num_processes",
            cfg.num_processes,
            "more than one process needs train.launcher=accelerate",
        )
    if cfg.launcher == "accelerate" and not Path(cfg.accelerate_config).is_file():
        raise bad(
            "train.accelerate_config",
            cfg.accelerate_config,
            "no such file (see conf/accelerate/ddp.yaml, fsdp.yaml)",
        )
    if cfg.launcher == "accelerate" and caps["cuda"] and cfg.num_processes > caps["gpus"]:
        raise bad("train.num_processes", cfg.num_processes, f"only {caps['gpus']} GPU(s) here")
    if cfg.launcher == "python" and caps["gpus"] > 1:
        # one process seeing several GPUs would make Trainer use nn.DataParallel, which TRL refuses
        raise bad(
            "train.launcher",
            cfg.launcher,
            f"{caps['gpus']} GPUs are visible; use "
            f"train.launcher=accelerate train.num_processes={caps['gpus']}, or "
            "CUDA_VISIBLE_DEVICES=0 for one",
        )
    if cfg.model.load_in_4bit and not caps["cuda"]:
        raise bad(
            "train.model.load_in_4bit",
            True,
            "QLoRA (4-bit bitsandbytes) needs CUDA; set it to false on this machine",
        )
    if cfg.model.load_in_4bit and not caps["bnb"]:
        raise bad(
            "train.model.load_in_4bit",
            True,
            "needs the bitsandbytes package (`pip install bitsandbytes`)",
        )


def check_optim(cfg: TrainConfig) -> None:
    """train.optim.name and train.optim.scheduler are names transformers knows."""
    from transformers.trainer_utils import SchedulerType
    from transformers.training_args import OptimizerNames

    optims = {o.value for o in OptimizerNames}
    if cfg.optim.name not in optims:
        raise bad(
            "train.optim.name",
            cfg.optim.name,
            "not a transformers optimizer (e.g. adamw_torch_fused, adamw_torch, adafactor)",
        )
    scheds = {s.value for s in SchedulerType}
    if cfg.optim.scheduler not in scheds:
        raise bad(
            "train.optim.scheduler",
            cfg.optim.scheduler,
            f"not a transformers schedule (one of {', '.join(sorted(scheds)[:6])}, ...)",
        )


def check_model(cfg: TrainConfig) -> None:
    """The model resolves, has a chat template, and has every LoRA target module.

    Reads config.json and the tokenizer only; the module names come from a skeleton built
    on the meta device, so no weights are read or allocated.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    key = "train.model.name_or_path"
    # the one check every loader shares: a directory with config.json, or the cache/hub
    name = locate_model(
        cfg.model.name_or_path, f"params.yaml: {key}", cfg.model.revision, hf_token()
    )
    via = f" (models: maps it to {name})" if name != cfg.model.name_or_path else ""
    opts = {"revision": cfg.model.revision, "token": hf_token()}
    try:
        mcfg = AutoConfig.from_pretrained(name, **opts)
        tokenizer = AutoTokenizer.from_pretrained(name, **opts)
    except (OSError, ValueError) as exc:
        why = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise bad(
            key,
            cfg.model.name_or_path,
            f"cannot load it locally or from the hub ({why})"
            f"{via}; map it to a directory under models: in conf/local/default.yaml; "
            "gated models need HF_TOKEN",
        ) from None
    if not tokenizer.chat_template:
        raise bad(
            key,
            name,
            "its tokenizer has no chat template; training renders examples "
            "with the model's own template, so use an instruction-tuned model",
        )
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(mcfg)
    leaves = {n.rsplit(".", 1)[-1] for n, _ in skeleton.named_modules()}
    missing = [t for t in cfg.lora.target_modules if t not in leaves]
    if missing:
        raise bad(
            "train.lora.target_modules",
            list(cfg.lora.target_modules),
            f"{missing} not in {name} (it has e.g. {sorted(x for x in leaves if 'proj' in x)[:8]})",
        )
    if "lm_head" in cfg.lora.target_modules:
        raise bad(
            "train.lora.target_modules",
            list(cfg.lora.target_modules),
            "lm_head cannot be a LoRA target with TRL's fused LM head",
        )


def validate(cfg: TrainConfig) -> dict[str, Any]:
    """Every check that needs no weights, cheapest first; returns the device caps.

    Raises :class:`ConfigError` (one line naming the key) on the first problem.
    """
    problems = unmet(("torch", "transformers", "trl", "peft", "datasets", "accelerate"))
    if problems:
        raise ConfigError(problems[0], problems)
    caps = device_caps()
    check_launch(cfg, caps)
    resolve_attention(cfg.model.attn_implementation, caps)
    resolve_liger(cfg.liger_kernel, caps)
    check_optim(cfg)
    check_model(cfg)
    return caps


def lora_config(cfg: TrainConfig) -> Any:
    """PEFT LoraConfig from ``train.lora`` (and the base model's revision)."""
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules),
        bias=cfg.lora.bias,
        task_type="CAUSAL_LM",
        revision=cfg.model.revision,
    )


def model_kwargs(cfg: TrainConfig, caps: dict[str, Any]) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments for the base model: dtype, attention, 4-bit."""
    import torch

    dtype = torch.bfloat16 if use_bf16(cfg, caps) else torch.float32
    kwargs: dict[str, Any] = {
        "revision": cfg.model.revision,
        "token": hf_token(),
        "dtype": dtype,
        "attn_implementation": resolve_attention(cfg.model.attn_implementation, caps),
    }
    if cfg.model.load_in_4bit:
        from transformers import BitsAndBytesConfig

        # QLoRA as in the paper: NF4 weights, double quantization, bf16 compute
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        # a quantized model cannot be moved after loading: put it on this process's GPU now
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return kwargs


def sft_config(
    cfg: TrainConfig, seed: int, checkpoint_dir: Path, has_eval: bool, caps: dict[str, Any]
) -> Any:
    """TRL SFTConfig from ``train`` and ``train.optim``, every field that matters set here."""
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(checkpoint_dir),
        # schedule
        max_steps=cfg.max_steps,
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        # optimizer
        optim=resolve_optim(cfg.optim.name, caps),
        learning_rate=cfg.optim.lr,
        lr_scheduler_type=cfg.optim.scheduler,
        warmup_steps=cfg.optim.warmup_ratio,  # a float below 1 is a ratio in transformers 5
        weight_decay=cfg.optim.weight_decay,
        max_grad_norm=cfg.optim.max_grad_norm,
        # data: conversational prompt/completion rendered with the model's chat template,
        # loss on the completion only; bfd packing is padding-free (no pad tokens at all)
        max_length=cfg.max_length,
        packing=cfg.packing,
        packing_strategy="bfd",  # keeps every example whole (no cross-example splits)
        eval_packing=cfg.packing,
        completion_only_loss=True,
        assistant_only_loss=False,  # prompt/completion masking is what we want
        shuffle_dataset=False,  # the sampler shuffles; packing stays deterministic
        dataset_num_proc=None,
        # device and kernels
        use_cpu=not caps["cuda"],  # also makes a multi-process CPU run use gloo
        bf16=use_bf16(cfg, caps),
        fp16=False,
        activation_checkpointing=cfg.gradient_checkpointing,  # TRL's default would be on
        torch_compile=cfg.compile and bool(caps["cuda"]),
        use_liger_kernel=resolve_liger(cfg.liger_kernel, caps),
        dataloader_pin_memory=bool(caps["cuda"]),
        ddp_find_unused_parameters=False,  # LoRA: every adapter weight gets a gradient
        # evaluation, checkpoints (resume points), logging
        eval_strategy="steps" if has_eval else "no",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        save_only_model=False,  # optimizer + scheduler + RNG state, so resuming is exact
        logging_strategy="steps",
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        report_to="none",  # our dvclive callback (seedtune.training.live) never edits dvc.yaml
        disable_tqdm=False,
        seed=seed,
        data_seed=seed,
    )
