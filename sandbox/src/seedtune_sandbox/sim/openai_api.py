"""OpenAI Chat Completions emulation (``POST /v1/chat/completions``, ``GET /v1/models``).

Pure functions from a parsed request body to ``(status, payload)``; transport, auth and fault
injection live in ``seedtune_sandbox.sim.server``.  Answers are deterministic: the generator is
seeded
from a hash of model + messages + response_format.  Run the simulator with
``python -m seedtune_sandbox.sim --port 8000`` and point ``openai.OpenAI(base_url=".../v1")`` at it.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import time
import uuid
from typing import Any

from seedtune_sandbox.sim import korean, titles
from seedtune_sandbox.sim.judge import judge as reference_judge
from seedtune_sandbox.sim.schema_fill import fill_schema, make_context, text_for

MODELS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "gpt-4.1",
    "gpt-5-mini",
    "gpt-5",
)
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_JSON_KEY_RE = re.compile(r'"([A-Za-z_][A-Za-z0-9_]{0,40})"\s*:')
_NUMERIC_KEY_RE = re.compile(r"score|rating|grade|points|rank", re.I)
_BOOL_KEY_RE = re.compile(r"^(is|has|can|should)_|_ok$|^ok$|correct|valid", re.I)


class ChatError(Exception):
    """A request error that maps to an OpenAI error response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.payload = error_body(message, type_=type_, param=param, code=code)


def error_body(
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """An OpenAI-shaped error payload ``{"error": {message, type, param, code}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def approx_tokens(text: str) -> int:
    """Deterministic token estimate: about one token per 1.5 characters."""
    return math.ceil(len(text) / 1.5) if text else 0


def message_text(content: Any) -> str:
    """Flatten a message ``content`` (str, list of parts, or None) to text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    raise ChatError(
        400,
        "Invalid type for 'messages.content': expected a string or an array of content parts.",
        param="messages",
    )


def _validate_messages(messages: Any) -> list[dict[str, Any]]:
    if messages is None:
        raise ChatError(
            400,
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    if not isinstance(messages, list) or not messages:
        raise ChatError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            param="messages",
            code="empty_array",
        )
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise ChatError(
                400,
                f"Invalid type for 'messages[{i}]': expected an object.",
                param=f"messages[{i}]",
            )
        if msg.get("role") not in _ROLES:
            raise ChatError(
                400,
                f"Invalid value: '{msg.get('role')}'. Supported values are: 'system', "
                "'assistant', 'user', 'function', 'tool', and 'developer'.",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
        message_text(msg.get("content"))
    return messages


def strict_schema_problem(schema: Any, path: tuple[str, ...] = ()) -> str | None:
    """Why ``schema`` would be refused by OpenAI strict structured outputs (None when fine)."""
    if not isinstance(schema, dict):
        return None
    ctx = f"In context={path!r}, "
    if schema.get("type") == "object" or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            return ctx + "'additionalProperties' is required to be supplied and to be false."
        props = schema.get("properties") or {}
        required = schema.get("required") or []
        missing = [k for k in props if k not in required]
        if missing:
            return (
                ctx + "'required' is required to be supplied and to be an array including every "
                f"key in properties. Missing '{missing[0]}'."
            )
        for key, sub in props.items():
            problem = strict_schema_problem(sub, (*path, "properties", key))
            if problem:
                return problem
    for key in ("$defs", "definitions"):
        for name, sub in (schema.get(key) or {}).items():
            problem = strict_schema_problem(sub, (*path, key, name))
            if problem:
                return problem
    if isinstance(schema.get("items"), dict):
        problem = strict_schema_problem(schema["items"], (*path, "items"))
        if problem:
            return problem
    for key in ("anyOf", "allOf"):
        for i, sub in enumerate(schema.get(key) or []):
            problem = strict_schema_problem(sub, (*path, key, str(i)))
            if problem:
                return problem
    return None


def _response_format(
    body: dict[str, Any], messages: list[dict[str, Any]]
) -> tuple[str, dict[str, Any] | None]:
    rf = body.get("response_format")
    if rf is None:
        return "text", None
    if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema"):
        raise ChatError(
            400,
            "Invalid value for 'response_format.type': expected one of 'text', "
            "'json_object', 'json_schema'.",
            param="response_format.type",
            code="invalid_value",
        )
    kind = rf["type"]
    if kind == "json_object" and isinstance(rf.get("schema"), dict):
        # llama-cpp-python's form (llm.structured_output: json_object_schema): the schema
        # is enforced as with json_schema
        return "json_schema", rf["schema"]
    if kind == "json_object":
        if not any("json" in message_text(m.get("content")).lower() for m in messages):
            raise ChatError(
                400,
                "'messages' must contain the word 'json' in some form, to use "
                "'response_format' of type 'json_object'.",
                param="messages",
            )
        return kind, None
    if kind == "json_schema":
        js = rf.get("json_schema")
        if not isinstance(js, dict) or not js.get("name"):
            raise ChatError(
                400,
                "Missing required parameter: 'response_format.json_schema.name'.",
                param="response_format.json_schema.name",
                code="missing_required_parameter",
            )
        schema = js.get("schema") or {
            "type": "object",
            "properties": {},
            "additionalProperties": False,
        }
        if not isinstance(schema, dict):
            raise ChatError(
                400,
                "Invalid type for 'response_format.json_schema.schema': expected an object.",
                param="response_format.json_schema.schema",
            )
        if js.get("strict"):
            if schema.get("type") != "object":
                problem = (
                    f"schema must be a JSON Schema of 'type: \"object\"', "
                    f"got 'type: \"{schema.get('type')}\"'."
                )
            else:
                problem = strict_schema_problem(schema)
            if problem:
                raise ChatError(
                    400,
                    f"Invalid schema for response_format '{js['name']}': {problem}",
                    param="response_format",
                    code="invalid_json_schema",
                )
        return kind, schema
    return "text", None


def _schema_in_prompt(prompt: str) -> dict[str, Any] | None:
    """A JSON schema written out in the prompt (a client that puts the schema there, as
    seedtune's ``llm.structured_output: json_object`` does), else None."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r'\{"', prompt):
        try:
            value, _ = decoder.raw_decode(prompt, match.start())
        except json.JSONDecodeError:
            continue
        if (
            isinstance(value, dict)
            and value.get("type") == "object"
            and isinstance(value.get("properties"), dict)
        ):
            return value
    return None


def _json_object_schema(prompt: str) -> dict[str, Any]:
    written = _schema_in_prompt(prompt)
    if written is not None:
        return written
    keys = list(dict.fromkeys(_JSON_KEY_RE.findall(prompt)))[:12] or ["answer"]
    props: dict[str, Any] = {}
    for key in keys:
        if _NUMERIC_KEY_RE.search(key):
            props[key] = {"type": "integer", "minimum": 1, "maximum": 10}
        elif _BOOL_KEY_RE.search(key):
            props[key] = {"type": "boolean"}
        else:
            props[key] = {"type": "string"}
    return {"type": "object", "properties": props}


def request_seed(body: dict[str, Any]) -> int:
    """Stable integer seed from model + messages + response_format of a request body."""
    key = json.dumps(
        [body.get("model"), body.get("messages"), body.get("response_format")],
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")


def _content(
    kind: str, schema: dict[str, Any] | None, prompt: str, full: str, rng: random.Random, judge: str
) -> str:
    if kind == "json_schema" and schema is not None:
        if titles.is_titles_schema(schema):  # the titles prompt: a verdict per title
            return json.dumps(titles.answer(schema, prompt, rng), ensure_ascii=False)
        value = fill_schema(schema, prompt=prompt, rng=rng, judge=judge, hint_text=full)
        if judge == "reference" and isinstance(value, dict):
            value = reference_judge(prompt, value)
        return json.dumps(value, ensure_ascii=False)
    if kind == "json_object":
        value = fill_schema(
            _json_object_schema(full), prompt=prompt, rng=rng, judge=judge, hint_text=full
        )
        return json.dumps(value, ensure_ascii=False)
    ctx = make_context(prompt, rng, judge=judge, hint_text=full)
    if ctx.target_words is None and ctx.target_chars is None:
        ctx.target_words = 45
    return text_for("answer", ctx)


#: Reasoning models (o-series, GPT-5), fine-tuned ones too ("ft:o4-mini:...").
REASONING_MODEL = re.compile(r"^(ft:)?(o\d|gpt-5)")
#: JSON schema keywords OpenAI's strict structured outputs refuse for fine-tuned models.
FT_UNSUPPORTED = (
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "pattern",
)


def _check_model_params(model: str, body: dict[str, Any]) -> None:
    """What the real API refuses per model family (OpenAI's reasoning guide and structured
    outputs docs): reasoning models take ``max_completion_tokens``, not ``max_tokens``, and
    only the default temperature; fine-tuned models take no size or range bounds in a strict
    schema."""
    if REASONING_MODEL.match(model):
        if "max_tokens" in body:
            raise ChatError(
                400,
                "Unsupported parameter: 'max_tokens' is not supported with this "
                "model. Use 'max_completion_tokens' instead.",
                param="max_tokens",
                code="unsupported_parameter",
            )
        temperature = body.get("temperature")
        if temperature is not None and temperature != 1:
            raise ChatError(
                400,
                f"Unsupported value: 'temperature' does not support "
                f"{temperature} with this model. Only the default (1) value is "
                "supported.",
                param="temperature",
                code="unsupported_value",
            )
    if model.startswith("ft:"):
        schema = json.dumps(
            ((body.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}
        )
        bad = [k for k in FT_UNSUPPORTED if f'"{k}"' in schema]
        if bad:
            raise ChatError(
                400,
                f"Invalid schema for response_format: '{bad[0]}' is not "
                "permitted for fine-tuned models.",
                param="response_format",
                code="invalid_json_schema",
            )


def chat_completion(body: Any, *, judge: str = "hash") -> dict[str, Any]:
    """Build a ``chat.completion`` object for a request body.

    Raises :class:`ChatError` if the request is invalid.
    """
    if not isinstance(body, dict):
        raise ChatError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)",
        )
    model = body.get("model")
    if not model or not isinstance(model, str):
        raise ChatError(400, "you must provide a model parameter")
    messages = _validate_messages(body.get("messages"))
    if body.get("stream"):
        raise ChatError(
            400,
            "stream=true is not supported by the seedtune simulator.",
            param="stream",
            code="unsupported_value",
        )
    n = body.get("n") or 1
    if not isinstance(n, int) or not 1 <= n <= 8:
        raise ChatError(400, f"Invalid 'n': {n!r}. The simulator supports 1..8.", param="n")
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ChatError(
            400,
            f"Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, "
            f"but got {limit!r} instead.",
            param="max_tokens",
            code="integer_below_min_value",
        )
    _check_model_params(model, body)
    kind, schema = _response_format(body, messages)

    users = [m for m in messages if m.get("role") == "user"]
    last_user = (
        message_text(users[-1].get("content"))
        if users
        else message_text(messages[-1].get("content"))
    )
    system = " ".join(
        message_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")
    )
    full = f"{system}\n{last_user}"
    prompt = last_user if korean.HANGUL_RE.search(last_user) or not system else full

    seed = request_seed(body)
    choices = []
    completion_tokens = 0
    for index in range(n):
        rng = random.Random(seed + index)
        content = _content(kind, schema, prompt, full, rng, judge)
        finish = "stop"
        tokens = approx_tokens(content)
        if limit is not None and tokens > limit:
            content = content[: int(limit * 1.5)]
            tokens = limit
            finish = "length"
        completion_tokens += tokens
        choices.append(
            {
                "index": index,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "refusal": None,
                    "annotations": [],
                },
                "finish_reason": finish,
                "logprobs": None,
            }
        )
    prompt_tokens = sum(approx_tokens(message_text(m.get("content"))) + 3 for m in messages) + 3
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "service_tier": "default",
        "system_fingerprint": "fp_seedtune_sim",
    }


def fence(completion: dict[str, Any]) -> bool:
    """Wrap JSON message contents in ```json fences with chatter around it.

    Returns True if anything changed.
    """
    changed = False
    for choice in completion.get("choices", []):
        msg = choice.get("message", {})
        content = msg.get("content") or ""
        if choice.get("finish_reason") == "stop" and content.lstrip().startswith(("{", "[")):
            msg["content"] = (
                f"다음은 결과입니다:\n```json\n{content}\n```\n필요하면 더 알려 주세요."
            )
            changed = True
    return changed


def models_list() -> dict[str, Any]:
    """The ``GET /v1/models`` payload."""
    return {"object": "list", "data": [model_object(m) for m in MODELS]}


def model_object(model: str) -> dict[str, Any]:
    """One ``model`` object."""
    return {"id": model, "object": "model", "created": 1715367049, "owned_by": "system"}


def rate_limit_body(model: str, retry_after_s: float) -> dict[str, Any]:
    """The 429 ``rate_limit_exceeded`` payload."""
    return error_body(
        f"Rate limit reached for {model} in organization org-seedtune-sim on requests per min "
        "(RPM): "
        f"Limit 3, Used 3, Requested 1. Please try again in {retry_after_s:g}s. "
        "Visit https://platform.openai.com/account/rate-limits to learn more.",
        type_="requests",
        code="rate_limit_exceeded",
    )


def quota_body() -> dict[str, Any]:
    """The 429 ``insufficient_quota`` payload."""
    return error_body(
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors.",
        type_="insufficient_quota",
        code="insufficient_quota",
    )


def server_error_body(status: int) -> dict[str, Any]:
    """A 5xx payload."""
    if status == 503:
        return error_body(
            "The engine is currently overloaded, please try again later.", type_="server_error"
        )
    return error_body(
        "The server had an error while processing your request. Sorry about that!",
        type_="server_error",
    )
