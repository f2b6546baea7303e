"""What an OpenAI-compatible server's error body says, and what it means for the client.

Servers word their errors in several shapes, all read by :func:`parse_error`:

- OpenAI (and vLLM, Ollama): ``{"error": {"message", "type", "param", "code"}}``, or the same
  fields at the top level (vLLM's ``{"object": "error", "message", ...}``);
- llama.cpp's ``llama-server``: ``{"error": {"code": 500, "message", "type": "server_error"}}``;
- llama-cpp-python: OpenAI's shape, whose message for a request it cannot validate is
  pydantic's repr (``[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'),
  'msg': "Input should be 'text' or 'json_object'", ...}]``) under an HTTP 500;
- litellm: OpenAI's shape with string codes (``"code": "400"``) and a message that may wrap
  the backend's own error (``litellm.BadRequestError: ... - {'error': {...}}``);
- FastAPI (``transformers serve`` among them): ``{"detail": "..."}`` or, for a 422, a list
  ``[{"loc", "msg", "type"}]``; ``{"error": "..."}`` for its 503s;
- plain text or an HTML page from a proxy (its title is the message).

:func:`unknown_model` and :func:`refusal_hint` say whether the body is about the request
itself, which no retry fixes; :func:`model_ids` reads ``GET /models``. Messages are scrubbed
of the key (and of anything shaped like a key or a Bearer token) before they are truncated,
so a cut never leaves part of a key behind.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from seedtune.core.credentials import redact
from seedtune.core.errors import ConfigError

#: Characters of a server's message kept in a one-line error.
MAX_MESSAGE = 300
#: Bodies longer than this are not parsed for nested structures (only their start is read).
_MAX_PARSE = 20_000
#: What the message of a bare proxy/ASGI error page says: nothing about the cause.
_GENERIC = re.compile(
    r"^(?:\d{3}\s*)?(?:internal server error|bad gateway|service unavailable|"
    r"gateway time-?out|not found|error|unknown error)\.?$",
    re.I,
)
_LITELLM_TAIL = re.compile(r"\n\s*(?:Received Model Group|Available Model Group|LiteLLM Retried)")
_KEYLIKE = [
    (re.compile(r"(?i)\bbearer\s+[^\s'\",;]{8,}"), "Bearer ***"),
    (re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_*\-]{6,}"), r"\1-***"),
    (re.compile(r"(?i)(api[_-]?key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"), r"\1***"),
]


@dataclass(frozen=True)
class ServerError:
    """A server's error body, read: its message (one line, scrubbed, truncated; "" when the
    body says nothing beyond its status), its code ("model_not_found", "400"; "" when none),
    and the request fields it names (pydantic's ``loc``, OpenAI's ``param``)."""

    message: str = ""
    code: str = ""
    fields: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """Message, code and fields together: what the classifiers match against."""
        return " ".join((self.message, self.code, *self.fields))


def scrub(text: str, secrets: Sequence[str | None] = ()) -> str:
    """``text`` without ``secrets`` and without anything shaped like a key or Bearer token."""
    text = redact(text, list(secrets))
    for pattern, repl in _KEYLIKE:
        text = pattern.sub(repl, text)
    return text


#: Statuses a call is tried again on (the sync client's retries, the batch path's
#: resubmissions and its file and batch calls).
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


def key_refused(base_url: str, api_key_env: str | None, status: int, said: str) -> ConfigError:
    """The one line for a 401/403: the key in ``api_key_env`` refused, or none sent."""
    if api_key_env is None:
        return ConfigError(
            f"{base_url} answered HTTP {status}{said or ' (unauthorized)'} "
            "and no key was sent (llm.api_key_env is null): this server needs one; set "
            "llm.api_key_env to the NAME of the environment variable that holds it"
        )
    return ConfigError(
        f"{base_url} rejected the key in {api_key_env} (HTTP {status}{said}); check the "
        "key, llm.api_key_env and llm.base_url"
    )


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line (whitespace collapsed), cut to ``limit`` characters with "…"."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def parse_error(text: str, secrets: Sequence[str | None] = ()) -> ServerError:
    """Read an error body of any common shape (see the module docstring)."""
    head = (text or "")[:_MAX_PARSE]
    try:
        body: Any = json.loads(head)
    except (json.JSONDecodeError, ValueError):
        body = None
    fields: list[str] = []
    code = ""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            message = _first_str(err, "message", "msg", "detail", "error")
            code = _code(err.get("code")) or _code(err.get("type"))
            if isinstance(err.get("param"), str) and err["param"] != "None":
                fields.append(err["param"])
            if not message and isinstance(err.get("detail"), list):
                message = _validation_items(err["detail"], fields)
        elif isinstance(err, str):
            message = err
        else:
            message = ""
        if not message and isinstance(body.get("detail"), list):  # FastAPI's 422
            message = _validation_items(body["detail"], fields)
        if not message:
            message = json.dumps(body, ensure_ascii=False)
    elif isinstance(body, list):
        message = _validation_items(body, fields) or head
    elif body is not None:
        message = str(body)
    else:
        message = _html_title(head) or head
    # litellm appends its routing details on lines of their own: not the cause
    message = _LITELLM_TAIL.split(message, maxsplit=1)[0]
    message = _unwrap(message, fields)
    message = one_line(scrub(message, secrets))
    if _GENERIC.match(message):
        message = ""
    return ServerError(message, code, tuple(dict.fromkeys(f for f in fields if f)))


def _first_str(obj: dict[str, Any], *names: str) -> str:
    for name in names:
        value = obj.get(name)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def _code(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    value = str(value)
    return "" if value in ("None", "null") else value


def _validation_items(items: Any, fields: list[str]) -> str:
    """``"response_format.type: Input should be 'text' or 'json_object'"`` from pydantic's
    (and FastAPI's) list of ``{"loc", "msg", "type"}``; "" when ``items`` is not one."""
    if not isinstance(items, (list, tuple)):
        return ""
    parts = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("msg"), str):
            continue
        loc = [str(p) for p in item.get("loc") or () if p != "body" and not isinstance(p, int)]
        fields.extend(loc)
        if isinstance(item.get("type"), str):
            fields.append(item["type"])
        parts.append(f"{'.'.join(loc)}: {item['msg']}" if loc else item["msg"])
    return "; ".join(parts)


_SEP = " -:\t\r\n"


def _unwrap(message: str, fields: list[str], depth: int = 3) -> str:
    """A message that wraps another error (litellm's ``...: {'error': {...}}``, pydantic's
    repr of a validation error list) with the inner one's text in place of its structure."""
    if depth == 0:
        return message
    start = min((i for i in (message.find("{"), message.find("[")) if i >= 0), default=-1)
    if start < 0:
        return message
    closer = "}" if message[start] == "{" else "]"
    end = message.rfind(closer)
    if end <= start:
        return message
    inner = _literal(message[start : end + 1])
    if inner is None:
        # several reprs side by side (FastAPI's "2 validation errors:\n  {...}\n  {...}")
        found = _repr_items(message, fields)
        return f"{message[:start].rstrip(_SEP)}: {found}" if found else message
    found = _validation_items(inner, fields) if isinstance(inner, (list, tuple)) else ""
    if not found and isinstance(inner, dict):
        err = inner.get("error", inner)
        if isinstance(err, dict):
            found = _first_str(err, "message", "msg", "detail", "error")
            if isinstance(err.get("param"), str):
                fields.append(err["param"])
        elif isinstance(err, str):
            found = err
    if not found:
        return message
    prefix = message[:start].rstrip(_SEP)
    rest = message[end + 1 :].strip()
    out = (
        f"{prefix}: {_unwrap(found, fields, depth - 1)}"
        if prefix
        else _unwrap(found, fields, depth - 1)
    )
    return f"{out} {rest}" if rest else out


_REPR_ITEM = re.compile(r"""'loc': \(([^)]*)\),\s*'msg': ("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")


def _repr_items(message: str, fields: list[str]) -> str:
    """The ``loc: msg`` of each pydantic error repr in ``message`` ("" when none)."""
    items = []
    for loc, msg in _REPR_ITEM.findall(message):
        parts = _literal(f"({loc})") or ()
        items.append(
            {
                "loc": list(parts) if isinstance(parts, tuple) else [parts],
                "msg": _literal(msg) or msg,
            }
        )
    return _validation_items(items, fields)


def _literal(text: str) -> Any:
    """JSON or a Python literal (pydantic's and litellm's reprs); None when neither."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


_TITLE = re.compile(r"<title>(.*?)</title>|<h1>(.*?)</h1>", re.I | re.S)


def _html_title(text: str) -> str:
    if not text.lstrip().startswith("<"):
        return ""
    m = _TITLE.search(text)
    return re.sub(r"<[^>]+>", "", m.group(1) or m.group(2)).strip() if m else ""


# ----------------------------------------------------------------------------- what it means

_UNKNOWN_MODEL = re.compile(
    r"model_not_found|invalid model name|unknown model|no such model|"
    r"not a valid model identifier|server is pinned to|"
    r"\bmodel\b[^.;]{0,120}?\b(?:not found|does not exist|doesn't exist|is not served|"
    r"not served|is not loaded|not loaded|not available on this server)\b|"
    r"\bmodel[^.;]{0,20}\b(?:does not exist|not found)",
    re.I,
)

#: An error about one item's content, the same request shape otherwise fine: a reject.
_ITEM = re.compile(
    r"content[_ ]?(?:filter|policy|management)|flagged|safety system|"
    r"usage polic|maximum context length|context[_ ]length|context window|"
    r"exceeds? the (?:available )?context",
    re.I,
)

#: (pattern, hint) for a body that says the request itself is refused; the first match
#: names the setting. ``{key}``, ``{model}``, ``{max_tokens}`` are filled in.
_REFUSALS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"response_format|json_schema|json_object|'text'|grammar|\bschema\b", re.I),
        "the server does not take this structured output: set llm.structured_output to a form "
        "it takes (json_object_schema, json_object or none)",
    ),
    (
        re.compile(r"max_(?:completion_|new_)?tokens|completion tokens", re.I),
        "lower llm.max_tokens (now {max_tokens}) to what the server allows for {key}={model!r}",
    ),
    (
        re.compile(
            r"system (?:role|message|prompt)|role 'system'|\"system\"|"
            r"roles must alternate",
            re.I,
        ),
        "the chat template of {key}={model!r} refuses a system message; set "
        "llm.system_role: fold (the system message goes into the first user turn)",
    ),
    (
        re.compile(r"temperature|top_p|sampling", re.I),
        "{key}={model!r} refuses the sampling parameters sent; choose another model",
    ),
    (
        re.compile(
            r"validation error|input should be|literal_error|extra inputs are not "
            r"permitted|extra_forbidden|unsupported|not supported|field required|"
            r"\bmissing\b|invalid (?:value|param|type|schema|argument|field)|"
            r"invalid '|is not a valid|must be (?:a|an|one of|less|greater|at)",
            re.I,
        ),
        "the server refuses the request for {key}={model!r}: check that it speaks OpenAI's chat "
        "completions API (llm.base_url) and takes this model",
    ),
]


def unknown_model(err: ServerError) -> bool:
    """Whether the body says the requested model is unknown to the server."""
    return bool(_UNKNOWN_MODEL.search(err.text))


def item_error(err: ServerError) -> bool:
    """Whether the body is about one item's content (a prompt over the context, a safety
    filter), the request's shape otherwise fine: that item is a reject, the others go on."""
    return bool(_ITEM.search(err.text)) and not _MAX_TOKENS.search(err.text)


_MAX_TOKENS = re.compile(r"max_(?:completion_)?tokens")


def refusal_hint(
    err: ServerError, status: int, key: str, model: str, max_tokens: int
) -> str | None:
    """The setting to change when the body says the request itself is invalid (the same
    for every item, so neither a retry nor a reject is right); None when it does not say so
    or is about one item's content (:func:`item_error`). A 422 is a validation error by
    definition: the generic hint when nothing more precise matches."""
    if item_error(err):
        return None
    for pattern, hint in _REFUSALS:
        if pattern.search(err.text):
            return hint.format(key=key, model=model, max_tokens=max_tokens)
    if status == 422:
        return _REFUSALS[-1][1].format(key=key, model=model, max_tokens=max_tokens)
    return None


def model_ids(body: Any, limit: int = 8) -> list[str]:
    """The model names of a ``GET /models`` answer (OpenAI's ``{"data": [{"id"}]}``, or a
    ``models`` list of names), at most ``limit``; [] for anything else."""
    items: Any = body.get("data") or body.get("models") if isinstance(body, dict) else body
    ids: list[str] = []
    for item in items if isinstance(items, list) else ():
        name = (
            item.get("id") or item.get("name") or item.get("model")
            if isinstance(item, dict)
            else item
        )
        if isinstance(name, str) and name.strip():
            ids.append(one_line(name, 80))  # a name is quoted in a one-line error
    return ids[:limit]
