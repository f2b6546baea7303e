"""Batched greedy generation with a base model and, optionally, a LoRA adapter on top.

Prompts are rendered with the tokenizer's chat template (the base model's, which the adapter
directory carries too), exactly as in training.
"""

from __future__ import annotations

import logging
from typing import Any

from tqdm.auto import tqdm

from seedtune.core.credentials import hf_token
from seedtune.core.device import device_caps, pick_device
from seedtune.core.machine import locate_model

log = logging.getLogger(__name__)


def load_model(
    name_or_path: str, adapter: str | None = None, revision: str = "main"
) -> tuple[Any, Any]:
    """(model, tokenizer): the base model, with ``adapter`` applied when given."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # through the models: map; an id that resolves nowhere is one line, not a loader's trace
    name_or_path = locate_model(
        name_or_path, "params.yaml: train.model.name_or_path", revision, hf_token()
    )
    caps = device_caps()
    dtype = torch.bfloat16 if caps["bf16"] else torch.float32
    tok = AutoTokenizer.from_pretrained(name_or_path, revision=revision, token=hf_token())
    model = AutoModelForCausalLM.from_pretrained(
        name_or_path, revision=revision, token=hf_token(), dtype=dtype
    )
    model.to(pick_device("auto", caps=caps)).eval()
    return attach_adapter(model, adapter) if adapter else (model, tok)


def attach_adapter(model: Any, adapter: str, merge: bool = True) -> tuple[Any, Any]:
    """(model with the LoRA ``adapter`` on top, the adapter directory's tokenizer).

    With ``merge``, a float32 model gets the adapter merged into its weights
    (``merge_and_unload``, in place: the base model is gone): the same greedy answers
    without the adapter's extra kernels at every decoded token (``bench/bench_generate.py``:
    1.1-3.6x the tokens/s on a shared 2-core CPU, every answer equal). A bf16 model keeps
    it unmerged: rounding the merged weights to bf16 would lose part of the adapter's small
    update."""
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(adapter)
    device = model.device
    model = PeftModel.from_pretrained(model, adapter)
    model.to(device).eval()  # the adapter's weights may load elsewhere than the base's
    if merge and all(p.dtype == torch.float32 for p in model.parameters()):
        model = model.merge_and_unload().eval()
    return model, tok


def is_merged(model: Any) -> bool:
    """Whether ``model`` carries no unmerged adapter (merged, or never had one)."""
    return not hasattr(model, "peft_config")


#: Tokens chat templates end a turn with. google/gemma-2b-it's generation config stops on
#: <eos> alone, yet a model tuned on its template learns to end answers with <end_of_turn>:
#: without it, generation would run on to max_new_tokens, writing the next turns itself.
END_OF_TURN_TOKENS = ("<end_of_turn>", "<|eot_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>")


def stop_token_ids(tokenizer: Any, model: Any = None) -> list[int]:
    """Every token generation must stop on: the generation config's eos (one or several),
    the tokenizer's eos, and each end-of-turn token the chat template writes."""
    ids: list[int] = []
    config = getattr(model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None)
    ids += eos if isinstance(eos, list) else [eos] if eos is not None else []
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    template = tokenizer.chat_template or ""
    vocab = tokenizer.get_vocab()
    ids += [vocab[t] for t in END_OF_TURN_TOKENS if t in template and t in vocab]
    return list(dict.fromkeys(ids))


def generate_answers(
    model: Any,
    tokenizer: Any,
    questions: list[str],
    max_new_tokens: int,
    batch_size: int = 8,
    desc: str = "generate",
) -> list[str]:
    """Greedy answers to ``questions`` (one user turn each), in order."""
    import torch

    tokenizer.padding_side = "left"  # decoder-only: pad on the left so generation continues
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    answers: list[str] = []
    for i in tqdm(range(0, len(questions), batch_size), desc=desc, unit="batch"):
        chunk = questions[i : i + batch_size]
        prompts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
            )
            for q in chunk
        ]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        with torch.no_grad():
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=stop_token_ids(tokenizer, model),
            )
        new = out[:, enc["input_ids"].shape[1] :]
        answers += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return answers
