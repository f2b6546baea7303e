"""Deterministic JSON-from-JSON-schema generator that writes plausible Korean text.

Given a JSON schema (as emitted by pydantic's ``model_json_schema()`` or the OpenAI strict
transformation of it) and the prompt text, :func:`fill_schema` returns a value valid against
the schema.  String fields are filled by name: ``question(s)`` -> Korean questions ending in
"?", ``answer``/``content``/``text`` -> several grounded sentences, ``reason`` -> one sentence,
anything else -> a short phrase.  Try it with::

    python -c "import json, random; from seedtune_sandbox.sim.schema_fill import fill_schema; \
print(json.dumps(fill_schema({'type': 'object', 'properties': {'questions': {'type': 'array', \
'items': {'type': 'string'}}}}, prompt='시드 단어 \"전세\"', rng=random.Random(0)), \
ensure_ascii=False))"
"""

from __future__ import annotations

import math
import random
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from seedtune_sandbox.sim import korean, titles

_WORD_TARGET_RES = (
    re.compile(r"약\s*(\d{1,4})\s*(?:개의\s*)?(?:단어|어절)"),
    re.compile(r"(\d{1,4})\s*(?:개의\s*)?(?:단어|어절)"),
    re.compile(r"(?:about|around|approximately|roughly)\s+(\d{1,4})\s+words", re.I),
    re.compile(r"(\d{1,4})\s+words", re.I),
)
_CHAR_TARGET_RE = re.compile(r"(\d{2,5})\s*자\s*(?:내외|이내|정도|안팎|가량)")
_COUNT_RES = (
    re.compile(r"(\d{1,3})\s*개(?!월)"),
    re.compile(r"(\d{1,3})\s+(?:questions|items|queries|answers)", re.I),
)
_ECHO_RE = re.compile(r"^\s*(?:질문|question)\s*[:：]\s*(\S.{0,300}?)\s*$", re.M | re.I)
_MAX_DEPTH = 8

_QUESTION_NAME = re.compile(r"question|질문|quest", re.I)
_LONG_NAME = re.compile(
    r"answer|content|text|body|response|paragraph|passage|summary|답변|본문", re.I
)
_REASON_NAME = re.compile(
    r"reason|rationale|explanation|justification|feedback|comment|critique|근거|이유", re.I
)


@dataclass
class FillContext:
    """Everything the generator needs besides the schema itself."""

    rng: random.Random
    root: dict[str, Any]
    keywords: list[str]
    main_terms: list[str]
    judge: str = "hash"
    target_words: int | None = None
    target_chars: int | None = None
    target_count: int | None = None
    echo_question: str | None = None
    used: set[str] = field(default_factory=set)
    q_index: int = 0
    q_order: list[int] = field(default_factory=list)
    #: what the prompt's forms sentence asks for (:func:`titles.form_of`): question,
    #: instruction or both ("mixed"/"fitting": every other one an instruction)
    form: str = "question"


def prompt_hints(prompt: str) -> dict[str, int | None]:
    """Extract size hints from a prompt.

    Target words ("약 N 단어"), chars ("N자 내외"), counts ("N개").
    """
    words = None
    for rx in _WORD_TARGET_RES:
        m = rx.search(prompt)
        if m:
            words = int(m.group(1))
            break
    chars_m = _CHAR_TARGET_RE.search(prompt)
    count = None
    for rx in _COUNT_RES:
        m = rx.search(prompt)
        if m and 0 < int(m.group(1)) <= 100:
            count = int(m.group(1))
            break
    return {"words": words, "chars": int(chars_m.group(1)) if chars_m else None, "count": count}


def make_context(
    prompt: str,
    rng: random.Random,
    root: dict[str, Any] | None = None,
    judge: str = "hash",
    hint_text: str = "",
) -> FillContext:
    """Build a :class:`FillContext`: keywords from ``prompt`` (the last user message), size hints
    from ``prompt`` first, then from ``hint_text`` (e.g. the system prompt)."""
    hints = prompt_hints(prompt)
    if hint_text:
        for key, value in prompt_hints(hint_text).items():
            if hints[key] is None:
                hints[key] = value
    quoted = korean.quoted_terms(prompt)
    keywords = korean.top_keywords(prompt, 10)
    main_terms = quoted[:3] or keywords[:2]
    pool = [w for w in dict.fromkeys(main_terms + keywords) if w]
    echo = _ECHO_RE.search(prompt)
    order = list(range(korean.n_question_templates()))
    rng.shuffle(order)
    return FillContext(
        rng=rng,
        root=root or {},
        keywords=pool,
        main_terms=main_terms,
        judge=judge,
        target_words=hints["words"],
        target_chars=hints["chars"],
        target_count=hints["count"],
        echo_question=echo.group(1) if echo else None,
        q_order=order,
        form=titles.form_of(prompt),
    )


def fill_schema(
    schema: dict[str, Any],
    *,
    prompt: str,
    rng: random.Random,
    judge: str = "hash",
    name: str = "",
    hint_text: str = "",
) -> Any:
    """Return a value valid against ``schema``, with Korean strings informed by ``prompt``
    (size hints such as "약 N 단어" / "N개" may also come from ``hint_text``)."""
    ctx = make_context(prompt, rng, schema, judge, hint_text)
    return fill(schema, ctx, name, 0)


def text_for(name: str, ctx: FillContext, min_len: int = 0, max_len: int | None = None) -> str:
    """A Korean string suited to a field called ``name`` (used for plain text answers too)."""
    rng = ctx.rng
    if (
        name.lower() in ("question", "질문")
        and ctx.echo_question
        and ctx.echo_question not in ctx.used
    ):
        text = ctx.echo_question  # e.g. "question" echoed back in a QA answer
        ctx.used.add(text)
    elif _QUESTION_NAME.search(name):
        text = _unique_question(ctx)
        if max_len is not None and len(text) > max_len:
            text = text[: max(max_len - 1, 0)].rstrip() + "?" if max_len > 0 else ""
    elif _REASON_NAME.search(name):
        text = korean.reason(rng, ctx.keywords)
    elif _LONG_NAME.search(name):
        words = ctx.target_words
        if ctx.target_chars and not words:
            words = max(ctx.target_chars // 4, 5)
        text = korean.paragraph(
            rng, ctx.keywords, target_words=words, min_chars=min_len, max_chars=max_len
        )
    else:  # title / name / keyword / anything else: a short phrase
        text = korean.phrase(rng, ctx.keywords)
    while len(text) < min_len:
        extra = korean.sentence(rng, ctx.keywords)
        text = f"{extra} {text}" if text.endswith("?") else f"{text} {extra}"
    if max_len is not None and len(text) > max_len:
        text = text[:max_len]
    return text


def _unique_question(ctx: FillContext) -> str:
    """A question not yet used in this answer; patterns are cycled so questions differ in form."""
    mains = ctx.main_terms or ctx.keywords or list(korean.TOPICS)
    order = ctx.q_order or list(range(korean.n_question_templates()))
    for attempt in range(60):
        main = mains[(ctx.q_index + attempt) % len(mains)]
        q = korean.question(
            ctx.rng, ctx.keywords, main, order[(ctx.q_index + attempt) % len(order)]
        )
        if q not in ctx.used:
            break
    else:  # pragma: no cover - extremely unlikely with the template space
        q = f"{mains[0]}에 대해 {len(ctx.used) + 1}번째로 궁금한 점은 무엇인가요?"
    if ctx.form == "instruction" or (ctx.form in ("mixed", "fitting") and ctx.q_index % 2):
        q = _as_instruction(q, ctx.rng)
    ctx.used.add(q)
    ctx.q_index += 1
    return q


def _as_instruction(question: str, rng: random.Random) -> str:
    """The request form of a question ("...무엇인가요?" -> "...무엇인지 알려 주세요."), as a
    prompt asking for 지시문 wants; the question itself when its ending is not known."""
    clause = titles.to_instruction(question.rstrip("?").rstrip())
    if clause is None:
        return question
    return f"{clause} {rng.choice(('알려 주세요.', '설명해 주세요.'))}"


def _resolve(schema: dict[str, Any], ctx: FillContext) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 32:
        ref = schema["$ref"]
        target: Any = ctx.root
        if not ref.startswith("#"):
            raise ValueError(f"unsupported $ref {ref!r}")
        for part in [p for p in ref[1:].split("/") if p]:
            target = target[part.replace("~1", "/").replace("~0", "~")]
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **rest}
        seen += 1
    return schema


def _pick_enum(values: list[Any], ctx: FillContext) -> Any:
    return values[0] if ctx.judge == "first" else ctx.rng.choice(values)


def fill(schema: Any, ctx: FillContext, name: str, depth: int) -> Any:
    """Generate a value for ``schema`` (a sub-schema of ``ctx.root``) for a field named ``name``."""
    if schema is True or schema == {}:
        return text_for(name, ctx)
    if schema is False or not isinstance(schema, dict):
        return None
    schema = _resolve(schema, ctx)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema and schema["enum"]:
        return _pick_enum(list(schema["enum"]), ctx)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [_resolve(o, ctx) if isinstance(o, dict) else o for o in schema[key]]
            non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            if not non_null or (depth >= _MAX_DEPTH and len(non_null) < len(options)):
                return None
            base = {k: v for k, v in schema.items() if k != key}
            return fill(
                {**base, **non_null[0]} if isinstance(non_null[0], dict) else non_null[0],
                ctx,
                name,
                depth,
            )
    if "allOf" in schema:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            merged = {**merged, **_resolve(part, ctx)}
        return fill(merged, ctx, name, depth)
    typ = schema.get("type")
    if isinstance(typ, list):
        non_null_types = [t for t in typ if t != "null"]
        typ = non_null_types[0] if non_null_types else "null"
    if typ is None:
        typ = "object" if "properties" in schema else "array" if "items" in schema else "string"
    return _FILLERS.get(typ, _fill_string)(schema, ctx, name, depth)


def _fill_object(schema: dict[str, Any], ctx: FillContext, name: str, depth: int) -> dict[str, Any]:
    props: dict[str, Any] = schema.get("properties") or {}
    out: dict[str, Any] = {}
    for key, sub in props.items():
        out[key] = fill(sub, ctx, key, depth + 1)
    extra = schema.get("additionalProperties")
    if not props and isinstance(extra, dict) and depth < _MAX_DEPTH:
        n = max(int(schema.get("minProperties", 0)), 2)
        keys = (ctx.keywords + list(korean.TOPICS))[:n]
        for key in keys:
            out[key] = fill(extra, ctx, key, depth + 1)
    return out


def _fill_array(schema: dict[str, Any], ctx: FillContext, name: str, depth: int) -> list[Any]:
    lo = int(schema.get("minItems", 0))
    hi = schema.get("maxItems")
    prefix = schema.get("prefixItems")
    if isinstance(prefix, list):
        out = [fill(s, ctx, name, depth + 1) for s in prefix]
        return out
    want = ctx.target_count if ctx.target_count is not None else 3
    if depth >= _MAX_DEPTH:
        want = lo
    n = max(lo, want)
    if hi is not None:
        n = min(n, int(hi))
    n = min(n, 100)
    items = schema.get("items", {})
    out: list[Any] = []
    for _ in range(n):
        value = fill(items, ctx, name, depth + 1)
        tries = 0
        while schema.get("uniqueItems") and value in out and tries < 20:
            value = fill(items, ctx, name, depth + 1)
            tries += 1
        out.append(value)
    return out


def _fill_string(schema: dict[str, Any], ctx: FillContext, name: str, depth: int) -> str:
    fmt = schema.get("format")
    rng = ctx.rng
    if fmt == "date-time":
        return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:00:00+09:00"
    if fmt == "date":
        return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if fmt == "time":
        return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00"
    if fmt in ("uri", "url", "iri"):
        return f"https://example.com/seedtune/{rng.randrange(10**8)}"
    if fmt == "email":
        return f"user{rng.randrange(10**4)}@example.com"
    if fmt == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    lo = int(schema.get("minLength", 0))
    hi = schema.get("maxLength")
    return text_for(name, ctx, lo, int(hi) if hi is not None else None)


def _fill_integer(schema: dict[str, Any], ctx: FillContext, name: str, depth: int) -> int:
    lo, hi = _bounds(schema, integer=True)
    return ctx.rng.randint(lo, hi)


def _fill_number(schema: dict[str, Any], ctx: FillContext, name: str, depth: int) -> float:
    lo, hi = _bounds(schema, integer=False)
    value = round(ctx.rng.uniform(lo, hi), 2)
    return min(max(value, lo), hi)


def _bounds(schema: dict[str, Any], *, integer: bool) -> tuple[Any, Any]:
    step = 1 if integer else 0.01
    lo = schema.get("minimum")
    hi = schema.get("maximum")
    if schema.get("exclusiveMinimum") is not None:
        lo = schema["exclusiveMinimum"] + step
    if schema.get("exclusiveMaximum") is not None:
        hi = schema["exclusiveMaximum"] - step
    if lo is None and hi is None:
        lo, hi = 1, 10
    elif lo is None:
        lo = hi - 9
    elif hi is None:
        hi = lo + 9
    if integer:
        lo, hi = math.ceil(lo), math.floor(hi)
    return lo, max(lo, hi)


def _fill_boolean(schema: dict[str, Any], ctx: FillContext, name: str, depth: int) -> bool:
    return ctx.rng.random() < 0.5


def _fill_null(schema: dict[str, Any], ctx: FillContext, name: str, depth: int) -> None:
    return None


_FILLERS = {
    "object": _fill_object,
    "array": _fill_array,
    "string": _fill_string,
    "integer": _fill_integer,
    "number": _fill_number,
    "boolean": _fill_boolean,
    "null": _fill_null,
}
