"""Model cards: the adapter's (models/adapter/README.md, written by train) and the merged
model's (written by ``seedtune export``): base model and its licence, params, data version,
the optimizer that ran, metrics.

The data version is the DVC-style md5 of data/instructions.jsonl (the value ``dvc.lock``
records for it), so a card can be traced back to the exact data it was trained on.

The judge's verdict is not in the adapter's card: train writes the card inside its output,
before evaluate has judged the adapter, and no later stage may rewrite another stage's
output (``dvc status`` would call train changed). The merged model's card, written after the
pipeline, carries the win rate with its interval when metrics/evaluate.json judged this very
adapter (its weights' md5, which evaluate records).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from seedtune.core.adapter import weights_md5
from seedtune.core.config import TrainConfig
from seedtune.core.records import atomic_write_text, data_version, read_json

#: Licences of base-model families whose own card is not on this machine (the tiny demo
#: stand-ins, an offline clone): the id's prefix -> front-matter fields of its model card.
KNOWN_LICENCES = {
    "google/gemma": {"license": "gemma", "license_link": "https://ai.google.dev/gemma/terms"},
    "google/codegemma": {"license": "gemma", "license_link": "https://ai.google.dev/gemma/terms"},
}
LICENCE_KEYS = ("license", "license_name", "license_link")


def front_matter(text: str) -> dict[str, Any]:
    """The YAML front matter of a model card ({} without one, or when it does not parse)."""
    if not text.startswith("---"):
        return {}
    try:
        data = yaml.safe_load(text.split("---", 2)[1])
    except (yaml.YAMLError, IndexError):
        return {}
    return data if isinstance(data, dict) else {}


def base_licence(
    model_id: str, local_dir: str | None = None, revision: str = "main"
) -> dict[str, str]:
    """The base model's licence fields, from its own card (the local directory's README.md,
    else the Hugging Face cache's copy), else :data:`KNOWN_LICENCES` by id, else
    ``{"license": "unknown"}``: never guessed."""
    cards = [Path(local_dir) / "README.md"] if local_dir else []
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model_id, "README.md", revision=revision)
        if isinstance(cached, str):
            cards.append(Path(cached))
    except Exception:  # noqa: BLE001 - not a hub id: no cached card to read
        pass
    for card in cards:
        if card.is_file():
            front = front_matter(card.read_text(encoding="utf-8", errors="replace"))
            if front.get("license"):
                return {k: str(front[k]) for k in LICENCE_KEYS if front.get(k)}
    for prefix, fields in KNOWN_LICENCES.items():
        if model_id.lower().startswith(prefix):
            return dict(fields)
    return {"license": "unknown"}


def render_card(
    cfg: TrainConfig,
    seed: int,
    data_path: str,
    data_md5: str,
    metrics: dict[str, Any],
    licence: dict[str, str] | None = None,
) -> str:
    """Markdown with Hugging Face front matter (base_model, licence, library_name, tags)."""
    base = cfg.model.name_or_path
    front = {
        "base_model": base,
        "base_model_relation": "adapter",
        **(licence or {"license": "unknown"}),
        "library_name": "peft",
        "pipeline_tag": "text-generation",
        "tags": ["lora", "sft", "trl", "seedtune"],
        "language": ["ko"],
    }
    params = {"seed": seed, "train": cfg.model_dump()}
    metrics = dict(metrics)
    ran = metrics.pop("optimizer", None) or cfg.optim.name
    optim = (
        ran
        if ran == cfg.optim.name
        else f"{ran} (train.optim.name is {cfg.optim.name}; {ran} is what this machine could run)"
    )
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
- **Licence:** {_licence_text(front)} (the base model's)
- **Optimizer:** {optim}, lr {cfg.optim.lr:g}, {cfg.optim.scheduler} schedule

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

## Evaluation

Not in this card: the evaluate stage judges this adapter after train has written it. See
`metrics/summary.json` (win rate with its 95% interval, both models' scores) and
`reports/evaluation.md`; the card `seedtune export` writes for the merged model carries them.

## Final metrics

| metric | value |
|---|---|
{rows}

## Params

```yaml
{yaml.safe_dump(params, allow_unicode=True, sort_keys=False).strip()}
```
"""


def write_model_card(
    out_dir: Path, cfg: TrainConfig, seed: int, data_path: Path | str, metrics: dict[str, Any]
) -> None:
    """Write ``out_dir/README.md`` (replacing PEFT's placeholder card)."""
    from seedtune.core.machine import resolve_model

    local = resolve_model(cfg.model.name_or_path)
    licence = base_licence(
        cfg.model.name_or_path, local if Path(local).is_dir() else None, cfg.model.revision
    )
    text = render_card(cfg, seed, str(data_path), data_version(data_path), metrics, licence)
    atomic_write_text(Path(out_dir) / "README.md", text)


def evaluation_of(adapter: Path, metrics_path: Path) -> dict[str, Any] | None:
    """metrics/evaluate.json when it judged this adapter (the md5 of its weights matches
    what evaluate recorded), else None."""
    judged = weights_md5(adapter)
    if not metrics_path.is_file() or judged is None:
        return None
    got = read_json(metrics_path)
    if not isinstance(got, dict) or got.get("adapter_md5") != judged:
        return None
    return got


def render_merged_card(
    adapter_card: str, base: str, evaluation: dict[str, Any] | None, evaluation_path: str
) -> str:
    """The merged model's card: the adapter's (base, licence, data, LoRA, optimizer, params),
    as a plain transformers model, with the judge's verdict when ``evaluation`` has one."""
    front = front_matter(adapter_card)
    body = adapter_card.split("---", 2)[2] if front else adapter_card
    front = {
        **front,
        "base_model": base,
        "base_model_relation": "finetune",
        "library_name": "transformers",
    }
    head, _, rest = body.partition("## Use")
    _, _, rest = rest.partition("## Evaluation")
    _, _, rest = rest.partition("\n## ")
    head = head.replace("# LoRA adapter for", "# Merged LoRA fine-tune of", 1)
    return f"""---
{yaml.safe_dump(front, allow_unicode=True, sort_keys=False).strip()}
---

{head.strip()}

Merged by `seedtune export`: the LoRA weights are folded into the base model, so it loads and
serves without PEFT.

## Use

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("models/merged")
tokenizer = AutoTokenizer.from_pretrained("models/merged")
```

## Evaluation

{_evaluation_text(evaluation, evaluation_path)}

## {rest.lstrip()}"""


def _evaluation_text(evaluation: dict[str, Any] | None, path: str) -> str:
    if not evaluation or evaluation.get("win_rate") is None:
        return (
            f"Not evaluated: {path} is missing, or judged another adapter "
            "(`dvc repro evaluate`, then export again)."
        )
    lo, hi = evaluation.get("win_rate_ci_low"), evaluation.get("win_rate_ci_high")
    ci = f" (95% bootstrap interval {_fmt(lo)}–{_fmt(hi)})" if lo is not None else ""
    lines = [
        f"An LLM judge compared this model's answers with the base model's on "
        f"{evaluation.get('n', '?')} held-out questions, each pair in both orders (a "
        "verdict that flips with the order counts as a tie).",
        "",
        "| metric | value |",
        "|---|---|",
        f"| win rate vs base | {_fmt(evaluation['win_rate'])}{ci} |",
    ]
    lines += [
        f"| {label} | {_fmt(evaluation[k])} |"
        for k, label in (
            ("wins", "wins"),
            ("ties", "ties"),
            ("losses", "losses"),
            ("score_tuned", "judge score (1-10), this model"),
            ("score_base", "judge score (1-10), base"),
        )
        if evaluation.get(k) is not None
    ]
    return "\n".join(lines)


def _licence_text(front: dict[str, Any]) -> str:
    name = front.get("license_name") or front.get("license", "unknown")
    return f"[{name}]({front['license_link']})" if front.get("license_link") else f"`{name}`"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


#: The intended use a published adapter's card states (what seedtune makes it for).
INTENDED_USE = """\
A Korean question-answering assistant for the domain of the seed words it was tuned on,
for research, prototyping and evaluation. Its training answers were written by an LLM from
web pages and search results (personal data masked), so it can be wrong, out of date or
echo its sources: check what it says before relying on it, and do not use it for legal,
medical or financial advice, for decisions about people, or outside Korean. The base
model's licence and use policy apply to it as well."""


def render_published_card(
    adapter_card: str,
    evaluation: dict[str, Any] | None,
    evaluation_path: str,
    dataset_repo: str | None = None,
) -> str:
    """The adapter's card as ``seedtune publish`` pushes it: the train stage's card with
    the judge's verdict (win rate with its interval) in place of the note that evaluate
    comes later, an intended-use section, and the dataset repository it was tuned on."""
    front = front_matter(adapter_card)
    body = adapter_card.split("---", 2)[2] if front else adapter_card
    if dataset_repo:
        front = {**front, "datasets": [dataset_repo]}
    head, _, rest = body.partition("## Evaluation")
    _, _, rest = rest.partition("\n## ")
    rest = f"\n## {rest.lstrip()}" if rest else ""
    return f"""---
{yaml.safe_dump(front, allow_unicode=True, sort_keys=False).strip()}
---

{head.strip()}

## Intended use

{INTENDED_USE}

## Evaluation

{_evaluation_text(evaluation, evaluation_path)}
{rest}"""
