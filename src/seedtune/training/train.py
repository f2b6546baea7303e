"""LoRA supervised fine-tuning with TRL's SFTTrainer, mapped explicitly from params.

Examples are conversational prompt/completion pairs, rendered by TRL with the base model's
own chat template (the same format ``evaluate`` generates with), the loss covers only the
completion tokens, and examples are packed padding-free. The mapping from params onto
PEFT/TRL lives in :mod:`seedtune.training.configure`; metrics go to dvclive through
:mod:`seedtune.training.live`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from seedtune.core.config import TrainConfig
from seedtune.core.credentials import hf_token
from seedtune.core.device import device_caps, matmul_flops
from seedtune.core.errors import InputError, one_line
from seedtune.core.machine import resolve_model
from seedtune.core.paths import INSTRUCTIONS
from seedtune.core.records import atomic_write_text
from seedtune.tasks.ask_rag import rag_prompt
from seedtune.training.checkpoints import latest_complete
from seedtune.training.configure import lora_config, model_kwargs, sft_config
from seedtune.training.lora_path import fuse_lora_add, uncast_lora_inputs

__all__ = [
    "build_trainer",
    "final_metrics",
    "live_or_none",
    "load_base",
    "sft_trainer",
    "split_rows",
    "to_conversation",
    "train",
]

log = logging.getLogger(__name__)


def to_conversation(row: dict[str, Any], with_passages: bool = False) -> dict[str, Any]:
    """One instruction row as a conversational prompt/completion example; with passages, the
    user turn carries the passages the answer was grounded on, exactly as ``seedtune ask
    --rag`` will show them (:func:`seedtune.tasks.ask_rag.rag_prompt`)."""
    question = row["question"]
    if with_passages:
        passages = [{"passage": p} for p in row.get("passages") or []]
        question = rag_prompt(question, passages, len(passages))
    return {
        "prompt": [{"role": "user", "content": question}],
        "completion": [{"role": "assistant", "content": row["answer"]}],
    }


def split_rows(
    rows: Sequence[dict[str, Any]], with_passages: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, eval) conversations by each row's ``split`` (synthesize's hash split)."""
    train_rows = [to_conversation(r, with_passages) for r in rows if r.get("split") != "eval"]
    eval_rows = [to_conversation(r, with_passages) for r in rows if r.get("split") == "eval"]
    if not train_rows:
        raise InputError(f"{INSTRUCTIONS} has no training examples")
    return train_rows, eval_rows


def load_base(cfg: TrainConfig, caps: dict[str, Any]) -> tuple[Any, Any]:
    """(model, tokenizer) of ``train.model``: bf16 where supported, chosen attention, 4-bit."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = model_kwargs(cfg, caps)
    name = resolve_model(cfg.model.name_or_path)  # the id stays in params and outputs
    log.info(
        "loading %s (attention=%s, dtype=%s%s)",
        name,
        kwargs["attn_implementation"],
        kwargs["dtype"],
        ", 4-bit" if cfg.model.load_in_4bit else "",
    )
    tokenizer = AutoTokenizer.from_pretrained(name, revision=cfg.model.revision, token=hf_token())
    model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
    return model, tokenizer


def build_trainer(
    cfg: TrainConfig,
    seed: int,
    train_rows: list[dict[str, Any]],
    eval_rows: list[dict[str, Any]],
    checkpoint_dir: Path,
    callbacks: Sequence[Any] = (),
    caps: dict[str, Any] | None = None,
) -> Any:
    """An SFTTrainer with the LoRA adapter attached and the datasets tokenized and packed."""
    from datasets import Dataset
    from transformers import set_seed

    set_seed(seed)  # before the adapter is initialised, so its init is reproducible
    caps = caps or device_caps()
    model, tokenizer = load_base(cfg, caps)
    args = sft_config(cfg, seed, checkpoint_dir, bool(eval_rows), caps)
    return sft_trainer(
        cfg,
        model,
        tokenizer,
        args,
        Dataset.from_list(train_rows),
        Dataset.from_list(eval_rows) if eval_rows else None,
        callbacks,
    )


def sft_trainer(
    cfg: TrainConfig,
    model: Any,
    tokenizer: Any,
    args: Any,
    train_dataset: Any,
    eval_dataset: Any = None,
    callbacks: Sequence[Any] = (),
) -> Any:
    """TRL's SFTTrainer over ``model`` with ``train.lora``'s adapter attached, its LoRA layers
    adding their scaled output into the base output within the matmul
    (:func:`~seedtune.training.lora_path.fuse_lora_add`) and, under mixed precision, reading
    their inputs in the autocast dtype (:func:`~seedtune.training.lora_path.uncast_lora_inputs`).
    The one place a trainer is made: the train stage and ``bench/gpu_train.py`` both come
    through here."""
    from trl import SFTTrainer

    trainer = SFTTrainer(
        model=model,
        args=args,
        processing_class=tokenizer,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        peft_config=lora_config(cfg),
        callbacks=list(callbacks),
    )
    fuse_lora_add(trainer.model)
    if trainer.accelerator.native_amp:  # accelerate runs every forward under autocast
        uncast_lora_inputs(trainer.model)
    if args.torch_compile:
        # accelerate's regional compilation: one decoder layer's code is compiled once and
        # serves all of them (gemma-2b: 18), and the LM head and TRL's chunked loss stay
        # outside the compiled regions, where a whole-model compile breaks the graph
        trainer.accelerator.state.dynamo_plugin.use_regional_compilation = True
    return trainer


def final_metrics(log_history: list[dict[str, Any]]) -> dict[str, Any]:
    """Last logged train and eval loss, steps, epochs and tokens, from the trainer's history.

    The history survives resuming (it is in every checkpoint), unlike the average loss
    ``Trainer.train`` returns, which covers only the steps of its own call.
    """
    out: dict[str, Any] = {}
    for entry in log_history:
        if "loss" in entry:
            out["train_loss"] = float(entry["loss"])
            out["train_tokens"] = int(float(entry.get("num_tokens", 0)))
        if "eval_loss" in entry:
            out["eval_loss"] = float(entry["eval_loss"])
        if "step" in entry:
            out["steps"] = int(entry["step"])
        if "epoch" in entry:
            out["epochs"] = round(float(entry["epoch"]), 4)
    return out


def train(
    cfg: TrainConfig,
    rows: list[dict[str, Any]],
    seed: int,
    out_dir: Path,
    checkpoint_dir: Path,
    live: Any = None,
    callbacks: Sequence[Any] = (),
    caps: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train a LoRA adapter on ``rows`` and save it with the tokenizer into ``out_dir``.

    Resumes from the newest complete checkpoint in ``checkpoint_dir`` when one exists. Logs to
    ``live`` (a dvclive ``Live``) when given. ``caps`` are the device caps that
    :func:`seedtune.training.configure.validate` returned (probed again when None). Every process
    of a distributed run calls this; only the main one writes files.
    """
    from seedtune.training.live import LiveCallback, Throughput

    train_rows, eval_rows = split_rows(rows, cfg.with_passages)
    throughput = Throughput()
    cbs = [throughput, *([LiveCallback(live)] if live is not None else [])]
    trainer = build_trainer(
        cfg, seed, train_rows, eval_rows, checkpoint_dir, [*cbs, *callbacks], caps
    )
    if trainer.is_world_process_zero():
        log.info(
            "training on %d examples (%d eval), %s, %d process(es)",
            len(train_rows),
            len(eval_rows),
            trainer.args.device.type,
            trainer.args.world_size,
        )
    last = latest_complete(checkpoint_dir)
    if last:
        log.info("resuming from %s", last)
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    # the trainer evaluates at the last step itself; only a run without any eval log needs one
    if eval_rows and not any("eval_loss" in h for h in trainer.state.log_history):
        trainer.evaluate()
    # save_model writes the adapter and the tokenizer (with its chat template) on the main
    # process only; under FSDP every process must call it to gather the weights
    trainer.save_model(str(out_dir))
    if trainer.is_world_process_zero():
        # a pickle of the TrainingArguments: not needed to load the adapter, and unsafe to load
        (out_dir / "training_args.bin").unlink(missing_ok=True)
        record_base_id(out_dir, cfg.model.name_or_path)
    tokens_per_s = throughput.tokens_per_s()
    peak = measured_peak() if trainer.args.device.type == "cuda" else None
    return {
        **final_metrics(trainer.state.log_history),
        "tokens_per_s": tokens_per_s,
        "mfu": mfu(tokens_per_s, trainer.model, trainer.args.world_size, peak),
        "bf16_tflops": round(peak / 1e12, 1) if peak else None,
        "train_examples": len(train_rows),
        "eval_examples": len(eval_rows),
        # what ran, which configure may have resolved (adamw_torch_fused needs CUDA)
        "optimizer": str(getattr(trainer.args.optim, "value", trainer.args.optim)),
    }


def measured_peak() -> float | None:
    """The GPU's bf16 matrix rate for MFU, measured after the adapter is saved; a metric
    never costs a finished run, so a failure (a GPU too full for three 8192^2 matrices) is
    a warning and no MFU."""
    try:
        return matmul_flops()
    except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is one
        log.warning("MFU not measured: %s", one_line(exc)[:160])
        return None


def mfu(
    tokens_per_s: float | None, model: Any, world_size: int, peak_flops: float | None
) -> float | None:
    """Model FLOP utilisation: 4 FLOPs per parameter per token (a frozen base under LoRA
    needs the forward pass and the input gradients, not weight gradients) against
    ``peak_flops`` per GPU, the card's measured bf16 matrix rate
    (:func:`seedtune.core.device.matmul_flops`). None off CUDA."""
    if not (peak_flops and tokens_per_s):
        return None
    # PEFT's count holds for a 4-bit base too, whose packed weights numel() counts by halves
    count = getattr(model, "get_nb_trainable_parameters", None)
    n_params = count()[1] if count else sum(p.numel() for p in model.parameters())
    return round(tokens_per_s * 4 * n_params / (peak_flops * max(1, world_size)), 4)


def record_base_id(out_dir: Path, model_id: str) -> None:
    """Record the params' model id, not this machine's path to its weights, as the adapter's
    base: PEFT writes the path the weights were loaded from, which means nothing on a
    teammate's machine (``models:`` maps the id to their own path)."""
    config_path = out_dir / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("base_model_name_or_path") != model_id:
        config["base_model_name_or_path"] = model_id
        atomic_write_text(config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def live_or_none(directory: Path, enabled: bool) -> Iterator[Any]:
    """A dvclive ``Live`` on ``directory`` (metrics and plots declared in dvc.yaml), or None."""
    if not enabled:
        yield None
        return
    from dvclive import Live

    # dvcyaml=False: dvc.yaml declares the metrics and plots; dvclive must not edit it
    with Live(dir=str(directory), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        yield live
