"""LoRA supervised fine-tuning with TRL's SFTTrainer, mapped explicitly from params.

Examples are conversational prompt/completion pairs, rendered by TRL with the base model's
own chat template (the same format ``evaluate`` and ``seedtune ask`` generate with), and the
loss covers only the completion tokens.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from seedtune.config import ConfigError, TrainConfig

log = logging.getLogger(__name__)


def to_conversation(row: dict[str, Any]) -> dict[str, Any]:
    """One instruction row as a conversational prompt/completion example."""
    return {"prompt": [{"role": "user", "content": row["question"]}],
            "completion": [{"role": "assistant", "content": row["answer"]}]}


def device_caps() -> dict[str, bool]:
    """What the machine supports: cuda, bf16, flash-attn."""
    import importlib.util

    import torch

    cuda = torch.cuda.is_available()
    return {
        "cuda": cuda,
        "bf16": cuda and torch.cuda.is_bf16_supported(),
        "flash_attn": cuda and importlib.util.find_spec("flash_attn") is not None,
    }


def resolve_attention(requested: str, caps: dict[str, bool]) -> str:
    """flash_attention_2 when asked for (or auto) and available, else sdpa."""
    if requested == "auto":
        return "flash_attention_2" if caps["flash_attn"] else "sdpa"
    if requested == "flash_attention_2" and not caps["flash_attn"]:
        raise ConfigError("train.model.attn_implementation=flash_attention_2 needs CUDA and "
                          "the flash-attn package (`pip install -e .[gpu]`); use auto or sdpa")
    return requested


def resolve_optim(name: str, caps: dict[str, bool]) -> str:
    """The fused AdamW kernel is CUDA-only in practice: fall back to adamw_torch elsewhere."""
    if name == "adamw_torch_fused" and not caps["cuda"]:
        log.info("train.optim.name=adamw_torch_fused without CUDA: using adamw_torch")
        return "adamw_torch"
    return name


def hf_token() -> str | None:
    """HF_TOKEN for gated models such as google/gemma-2b-it (never logged)."""
    from seedtune.credentials import optional_secret

    return optional_secret("HF_TOKEN")


def check_model(cfg: TrainConfig) -> None:
    """Fail fast, before loading weights: the model must resolve and have the LoRA targets."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    name = cfg.model.name_or_path
    try:
        mcfg = AutoConfig.from_pretrained(name, revision=cfg.model.revision, token=hf_token())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"train.model.name_or_path={name!r}: cannot load its config "
                          f"({str(exc).splitlines()[0][:160]})") from None
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(mcfg)
    leaves = {n.rsplit(".", 1)[-1] for n, _ in skeleton.named_modules()}
    missing = [t for t in cfg.lora.target_modules if t not in leaves]
    if missing:
        raise ConfigError(f"train.lora.target_modules: {missing} not in {name} "
                          f"(has e.g. {sorted(x for x in leaves if 'proj' in x)[:8]})")


def lora_config(cfg: TrainConfig) -> Any:
    """PEFT LoraConfig from ``train.lora``."""
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=list(cfg.lora.target_modules), bias=cfg.lora.bias,
                      task_type="CAUSAL_LM")


def sft_config(cfg: TrainConfig, seed: int, checkpoint_dir: Path, has_eval: bool,
               caps: dict[str, bool]) -> Any:
    """TRL SFTConfig from ``train`` and ``train.optim`` (every field set explicitly)."""
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(checkpoint_dir),
        max_steps=cfg.max_steps,
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.optim.lr,
        lr_scheduler_type=cfg.optim.scheduler,
        warmup_steps=cfg.optim.warmup_ratio,  # a float in [0, 1) is a ratio in transformers 5
        weight_decay=cfg.optim.weight_decay,
        max_grad_norm=cfg.optim.max_grad_norm,
        optim=resolve_optim(cfg.optim.name, caps),
        bf16=cfg.bf16 and caps["bf16"],
        max_length=cfg.max_length,
        packing=cfg.packing,
        packing_strategy="bfd",
        completion_only_loss=True,
        gradient_checkpointing=cfg.gradient_checkpointing,
        logging_steps=cfg.logging_steps,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.eval_steps,
        save_total_limit=2,
        seed=seed,
        data_seed=seed,
        report_to="none",  # our own dvclive callback, which never edits dvc.yaml
        dataset_num_proc=None,
        disable_tqdm=False,
    )


class LiveCallback:
    """Logs train/eval loss, learning rate and tokens/s to dvclive against the global step."""

    def __new__(cls, live: Any) -> Any:
        from transformers import TrainerCallback

        class _Cb(TrainerCallback):
            def __init__(self) -> None:
                self.live = live
                self._t0 = time.perf_counter()
                self._tokens0 = 0

            def on_log(self, args: Any, state: Any, control: Any, logs: Any = None,
                       **kw: Any) -> None:
                logs = logs or {}
                self.live.step = state.global_step
                names = {"loss": "train/loss", "eval_loss": "eval/loss",
                         "learning_rate": "train/learning_rate"}
                for key, name in names.items():
                    if key in logs:
                        self.live.log_metric(name, float(logs[key]))
                # TRL logs the running count of training tokens as `num_tokens`
                tokens = int(float(logs.get("num_tokens", 0)))
                now = time.perf_counter()
                if "loss" in logs and tokens > self._tokens0 and now > self._t0:
                    self.live.log_metric("train/tokens_per_s",
                                         (tokens - self._tokens0) / (now - self._t0))
                    self._t0, self._tokens0 = now, tokens

        return _Cb()


def train(cfg: TrainConfig, rows: list[dict[str, Any]], seed: int, out_dir: Path,
          checkpoint_dir: Path, live: Any) -> dict[str, Any]:
    """Train a LoRA adapter on ``rows`` (split train/eval) and save it with the tokenizer.

    Resumes from the last checkpoint in ``checkpoint_dir`` when one exists.
    """
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTTrainer

    set_seed(seed)
    caps = device_caps()
    attn = resolve_attention(cfg.model.attn_implementation, caps)
    dtype = torch.bfloat16 if (cfg.bf16 and caps["bf16"]) else torch.float32
    train_rows = [to_conversation(r) for r in rows if r.get("split") != "eval"]
    eval_rows = [to_conversation(r) for r in rows if r.get("split") == "eval"]
    if not train_rows:
        raise ConfigError("data/instructions.jsonl has no training examples")
    name = cfg.model.name_or_path
    log.info("loading %s (attention=%s, dtype=%s)", name, attn, dtype)
    tokenizer = AutoTokenizer.from_pretrained(name, revision=cfg.model.revision, token=hf_token())
    model = AutoModelForCausalLM.from_pretrained(name, revision=cfg.model.revision,
                                                 token=hf_token(), dtype=dtype,
                                                 attn_implementation=attn)
    args = sft_config(cfg, seed, checkpoint_dir, bool(eval_rows), caps)
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer,
                         train_dataset=Dataset.from_list(train_rows),
                         eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
                         peft_config=lora_config(cfg), callbacks=[LiveCallback(live)])
    last = get_last_checkpoint(str(checkpoint_dir)) if checkpoint_dir.is_dir() else None
    if last:
        log.info("resuming from %s", last)
    result = trainer.train(resume_from_checkpoint=last)
    metrics: dict[str, Any] = {"train_loss": float(result.training_loss),
                               "steps": int(trainer.state.global_step),
                               "train_examples": len(train_rows),
                               "eval_examples": len(eval_rows)}
    if eval_rows:
        metrics["eval_loss"] = float(trainer.evaluate()["eval_loss"])
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer.model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return metrics


def prepare_checkpoints(root: Path, cfg: TrainConfig, seed: int, data: Path) -> Path:
    """The checkpoint directory, emptied when params or data differ from its last run.

    Resuming is only sound for the same run: a checkpoint of r=4 cannot continue as r=8.
    """
    import hashlib
    import json
    import shutil

    fingerprint = hashlib.sha256(json.dumps(
        {"train": cfg.model_dump(), "seed": seed,
         "data": hashlib.sha256(data.read_bytes()).hexdigest()},
        sort_keys=True).encode()).hexdigest()
    stamp = root / "fingerprint.txt"
    if root.exists() and (not stamp.is_file() or stamp.read_text().strip() != fingerprint):
        log.info("params or data changed since the checkpoints in %s: starting fresh", root)
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint + "\n")
    return root


class save_atomically:  # noqa: N801 - used as a context manager
    """Yield a temp dir beside ``target``; on success it replaces ``target`` in one rename."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.tmp = target.with_name(f".{target.name}.tmp")

    def __enter__(self) -> Path:
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        return self.tmp

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        import shutil

        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        old = self.target.with_name(f".{self.target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if self.target.exists():
            self.target.rename(old)
        self.tmp.rename(self.target)
        shutil.rmtree(old, ignore_errors=True)
