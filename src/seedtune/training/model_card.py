"""The adapter's model card (models/adapter/README.md): base model, params, data version, metrics.

The data version is the DVC-style md5 of data/instructions.jsonl (the value ``dvc.lock``
records for it), so a card can be traced back to the exact data it was trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from seedtune.core.config import TrainConfig
from seedtune.core.records import atomic_write_text, data_version


def render_card(cfg: TrainConfig, seed: int, data_path: str, data_md5: str,
                metrics: dict[str, Any]) -> str:
    """Markdown with Hugging Face front matter (base_model, library_name, tags)."""
    base = cfg.model.name_or_path
    front = {"base_model": base, "library_name": "peft", "pipeline_tag": "text-generation",
             "tags": ["lora", "sft", "trl", "seedtune"], "language": ["ko"]}
    params = {"seed": seed, "train": cfg.model_dump()}
    rows = "\n".join(f"| {k} | {_fmt(v)} |" for k, v in metrics.items())
    return f"""---
{yaml.safe_dump(front, allow_unicode=True, sort_keys=False).strip()}
---

# LoRA adapter for {base}

Trained by the seedtune pipeline (`dvc repro train`): LoRA supervised fine-tuning with TRL on
grounded Korean question/answer pairs, rendered with the base model's own chat template
(which this directory carries), loss on the answer tokens only.

- **Base model:** `{base}` (revision `{cfg.model.revision}`)
- **Data:** `{data_path}`, md5 `{data_md5}` (as in dvc.lock)
- **LoRA:** r={cfg.lora.r}, alpha={_fmt(cfg.lora.alpha)}, dropout={_fmt(cfg.lora.dropout)}, \
targets {", ".join(cfg.lora.target_modules)}
- **Optimizer:** {cfg.optim.name}, lr {cfg.optim.lr:g}, {cfg.optim.scheduler} schedule

## Use

```python
from peft import AutoPeftModelForCausalLM
from transformers import AutoTokenizer

model = AutoPeftModelForCausalLM.from_pretrained("models/adapter")
tokenizer = AutoTokenizer.from_pretrained("models/adapter")
messages = [{{"role": "user", "content": "전세 계약 전에 무엇을 확인해야 하나요?"}}]
inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                       return_tensors="pt", return_dict=True)
print(tokenizer.decode(model.generate(**inputs, max_new_tokens=256)[0]))
```

`seedtune export` merges the adapter into a standalone model directory.

## Final metrics

| metric | value |
|---|---|
{rows}

## Params

```yaml
{yaml.safe_dump(params, allow_unicode=True, sort_keys=False).strip()}
```
"""


def write_model_card(out_dir: Path, cfg: TrainConfig, seed: int, data_path: Path | str,
                     metrics: dict[str, Any]) -> None:
    """Write ``out_dir/README.md`` (replacing PEFT's placeholder card)."""
    text = render_card(cfg, seed, str(data_path), data_version(data_path), metrics)
    atomic_write_text(Path(out_dir) / "README.md", text)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
