"""Structured output by what the server can do (``llm.structured_output``).

Four modes, one per family of OpenAI-compatible servers:

- ``json_schema`` (default): OpenAI's strict ``{"type": "json_schema", "json_schema":
  {name, schema, strict}}`` (OpenAI, vLLM, llama.cpp's ``llama-server``, Ollama);
- ``json_object_schema``: llama-cpp-python's own form ``{"type": "json_object", "schema":
  ...}`` (its server answers the OpenAI form with HTTP 500);
- ``json_object``: JSON mode, ``{"type": "json_object"}``, with the schema in the prompt;
- ``none``: no ``response_format`` at all, the schema in the prompt (servers that refuse or
  ignore the field, e.g. ``transformers serve``).

In the two prompted modes the server does not know the schema, so the system message (or
the first user message) is told to answer one JSON object matching it: a model without
constrained decoding still has a chance, and OpenAI's JSON mode requires the word "JSON" in
the messages. Every answer is validated the same way in every mode (pydantic).

Cache keys: the two constrained modes send the same messages and enforce the same schema,
only spelled differently on the wire, so they share a key (switching a llama-cpp-python
server to ``json_object_schema`` repays nothing). The prompted modes change what the model
sees and how it decodes, so their key names the mode: a different request, a different
answer.
"""

from __future__ import annotations

import json
from typing import Any, Literal

Mode = Literal["json_schema", "json_object_schema", "json_object", "none"]
#: Modes in which the server is asked to enforce the schema (the probe checks they do).
CONSTRAINED: tuple[str, ...] = ("json_schema", "json_object_schema")
#: Bumped when :data:`INSTRUCTION` changes: the prompted modes' answers depend on it.
INSTRUCTION_VERSION = 1
INSTRUCTION = (
    "Answer with exactly one JSON object and nothing else (no code fences, no "
    "prose), matching this JSON schema:\n{schema}"
)


def response_format(name: str, schema: dict[str, Any], mode: str) -> dict[str, Any] | None:
    """The ``response_format`` of ``mode`` for ``schema`` (None: send no such field)."""
    if mode == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": True},
        }
    if mode == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    if mode == "json_object":
        return {"type": "json_object"}
    return None


def instructed(
    messages: list[dict[str, str]], schema: dict[str, Any], mode: str
) -> list[dict[str, str]]:
    """``messages`` as sent in ``mode``: unchanged in the constrained modes; else the
    schema instruction appended to the system message (the first user message when there
    is none), so it reads as part of the task, before the material."""
    if mode in CONSTRAINED:
        return messages
    text = INSTRUCTION.format(schema=json.dumps(schema, ensure_ascii=False, separators=(",", ":")))
    out = [dict(m) for m in messages]
    target = next(
        (m for m in out if m.get("role") == "system"),
        next((m for m in out if m.get("role") == "user"), None),
    )
    if target is None:
        return [{"role": "system", "content": text}, *out]
    target["content"] = f"{target['content']}\n\n{text}"
    return out


def key_part(mode: str) -> dict[str, Any]:
    """What ``mode`` adds to a request's cache key: nothing for the constrained modes (keys
    made before the setting existed stay valid), the mode for the prompted ones."""
    if mode in CONSTRAINED:
        return {}
    return {"structured_output": mode, "instruction": INSTRUCTION_VERSION}


def ignores_schema(parsed: Any, schema: dict[str, Any]) -> bool:
    """Whether an answer shows the server did not apply ``schema``: not JSON (``parsed`` is
    :data:`NOT_JSON`), not an object, missing a required top-level key or carrying one the
    schema does not have. Finer failures (bounds, pydantic validators) can happen to a
    model under a schema too, so they do not count."""
    if parsed is NOT_JSON or not isinstance(parsed, dict):
        return True
    props = schema.get("properties") or {}
    missing = set(schema.get("required") or ()) - set(parsed)
    extra = (
        set(parsed) - set(props) if props and schema.get("additionalProperties") is False else set()
    )
    return bool(missing or extra)


def begins_object(content: str) -> bool:
    """Whether an answer (maybe cut short) begins as a JSON object, a code fence aside: what
    every answer under an applied schema does, however far it got."""
    text = content.lstrip()
    if text.startswith("```"):
        text = text.partition("\n")[2].lstrip()
    return text.startswith("{")


#: Stands for an answer whose content is not JSON at all (for :func:`ignores_schema`).
NOT_JSON = object()
