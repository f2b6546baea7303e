"""``seedtune export``: merge the LoRA adapter into its base model, as a standalone model directory.

    seedtune export [--adapter models/adapter] [--out models/merged] [--base ID_OR_PATH]
                    [--dtype auto|bfloat16|float16|float32] [--evaluation metrics/evaluate.json]

The result loads with plain ``AutoModelForCausalLM`` / ``AutoTokenizer`` (no PEFT), carries
the adapter's tokenizer and chat template, and serves with vLLM, TGI or llama.cpp tools.
The base model defaults to the one recorded in the adapter (``base_model_name_or_path``).
Its README.md is the adapter's model card made over for the merged model, with the judge's
win rate and interval from metrics/evaluate.json when that judged this adapter.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from seedtune.core.adapter import adapter_config
from seedtune.core.credentials import hf_token
from seedtune.core.machine import locate_model
from seedtune.core.paths import ADAPTER, MERGED, metrics_file
from seedtune.core.records import atomic_write_text, save_atomically
from seedtune.core.stage import ignore_peft_checkpointing_warning
from seedtune.evaluation.generation import stop_token_ids
from seedtune.training.model_card import evaluation_of, render_merged_card

log = logging.getLogger(__name__)


#: The evaluate stage's metrics: the merged card quotes their verdict when they judged it.
EVALUATION = metrics_file("evaluate")


def adapter_base(adapter: Path) -> tuple[str, str | None]:
    """(base model id or path, revision) recorded in ``adapter/adapter_config.json``."""
    cfg = adapter_config(adapter)
    return cfg["base_model_name_or_path"], cfg.get("revision")


def merge_adapter(
    adapter: Path,
    out: Path,
    base: str | None = None,
    dtype: str = "auto",
    evaluation: Path = EVALUATION,
) -> Path:
    """Load base + adapter, fold the LoRA weights into the base, save to ``out`` atomically
    with a model card (the adapter's, with ``evaluation``'s verdict when it judged this
    adapter)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    ignore_peft_checkpointing_warning()  # PeftModel.from_pretrained below: expected
    recorded, revision = adapter_base(adapter)
    # the adapter records the id; models: maps it; one line when it resolves nowhere
    key = "--base" if base else f"{adapter / 'adapter_config.json'}: base_model_name_or_path"
    base = locate_model(base or recorded, key, revision or "main", hf_token())
    torch_dtype: Any = "auto" if dtype == "auto" else getattr(torch, dtype)
    log.info("merging %s into %s (dtype %s)", adapter, base, dtype)
    model = AutoModelForCausalLM.from_pretrained(
        base, revision=revision or "main", token=hf_token(), dtype=torch_dtype
    )
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    # the adapter directory carries the tokenizer and chat template the model was tuned with
    tokenizer = AutoTokenizer.from_pretrained(str(adapter))
    with save_atomically(out) as tmp:
        merged.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        try:  # the base's generation settings...
            gen = GenerationConfig.from_pretrained(
                base, revision=revision or "main", token=hf_token()
            )
        except OSError:
            log.info("%s has no generation_config.json; starting from the default", base)
            gen = GenerationConfig()
        # ...stopping also on the chat template's end of turn, which the tuned model writes
        gen.eos_token_id = stop_token_ids(tokenizer, merged)
        gen.save_pretrained(str(tmp))
        write_merged_card(tmp, adapter, recorded, evaluation)
    log.info("wrote %s", out)
    return out


def write_merged_card(out: Path, adapter: Path, base_id: str, evaluation: Path) -> None:
    """``out/README.md``: the adapter's card for the merged model, the verdict of
    ``evaluation`` when it judged this adapter (else a line saying it was not evaluated)."""
    card = adapter / "README.md"
    text = (
        card.read_text(encoding="utf-8")
        if card.is_file()
        else f"---\nlicense: unknown\n---\n\n# LoRA adapter for {base_id}\n\n## Params\n"
    )
    atomic_write_text(
        out / "README.md",
        render_merged_card(text, base_id, evaluation_of(adapter, evaluation), str(evaluation)),
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``seedtune export``."""
    ap = argparse.ArgumentParser(prog="seedtune export", description=__doc__.splitlines()[0])
    ap.add_argument("--adapter", default=ADAPTER, help="PEFT adapter directory")
    ap.add_argument("--out", default=MERGED, help="merged model directory (replaced)")
    ap.add_argument(
        "--base",
        default=None,
        help="base model id or path (default: the adapter's base_model_name_or_path)",
    )
    ap.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float16", "float32"])
    ap.add_argument(
        "--evaluation",
        default=EVALUATION.as_posix(),
        help="the evaluate stage's metrics, quoted in the card if they judged this adapter",
    )
    args = ap.parse_args(argv)
    merge_adapter(Path(args.adapter), Path(args.out), args.base, args.dtype, Path(args.evaluation))
    print(f"merged model: {args.out}")
    return 0
