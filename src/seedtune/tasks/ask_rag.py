"""The ask_rag task: the user turn that carries ranked passages. ``seedtune ask --rag`` asks
it of the tuned model, and training with ``train.with_passages`` teaches it, in exactly
this format (a module of its own, so that only they depend on the ask_rag template).

In: the question and its passages, numbered and fenced as the synthesize task shows them
(:func:`~seedtune.llm.prompts.format_passages`). Out: the tuned model's own text, not
parsed: no schema.
"""

from __future__ import annotations

from typing import Any

from seedtune.llm.prompts import format_passages
from seedtune.tasks.base import load_template


def rag_prompt(question: str, documents: list[dict[str, Any]], top_k: int) -> str:
    """The user turn that carries passages: ``seedtune ask --rag`` asks it, and training with
    ``train.with_passages`` teaches it, in exactly this format."""
    return load_template("ask_rag").render(
        question=question, passages=format_passages(documents, top_k)
    )[-1]["content"]
