"""Base and tuned answers from an OpenAI-compatible inference server (``generate.*``).

With ``generate.base_url`` set (a machine setting, :mod:`seedtune.core.machine`), evaluate
and ``seedtune ask`` request their answers from a server that serves the base model and
the adapter by name, e.g. vLLM started as ``seedtune serve`` prints: ``vllm serve BASE
--enable-lora --lora-modules tuned=models/adapter``. The request is what in-process
generation does (:mod:`seedtune.evaluation.generation`): the question as one user turn
(the server renders it with the model's own chat template), greedy (temperature 0),
``max_tokens`` = ``evaluate.max_new_tokens``, stopping at the template's end of turn.

Calls go through :class:`~seedtune.llm.client.LLMClient` (concurrency, retries with
backoff on 429/5xx/timeouts, one-line errors for a refused key, an unknown model name or
an outage), as plain text instead of structured output. Before any answer the server's
model list (``GET /models``; vLLM names each LoRA's ``parent``) must show the adapter's
base (``adapter_config.json``), else one line refuses: the adapter on another base answers
noise that the judge would score as the tuned model's.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from seedtune.core import paths
from seedtune.core.adapter import adapter_config, weights_md5
from seedtune.core.cache import ResponseCache
from seedtune.core.config import LLMConfig, Section, problems
from seedtune.core.errors import ConfigError, ServiceError
from seedtune.core.machine import load_machine, resolve_model, source_of
from seedtune.evaluation.generation import END_OF_TURN_TOKENS
from seedtune.llm.client import LLMClient, LLMRequest, _Parsed

log = logging.getLogger(__name__)

#: Bumped when what is sent for an answer changes: part of each cached answer's key.
REQUEST_VERSION = "generate-1"


class GenerateConfig(Section):
    """``generate.*``: the inference server (machine settings; unset: in-process)."""

    base_url: str | None = None
    api_key_env: str | None = None
    base_model: str | None = None  # None: train.model.name_or_path
    tuned_model: str = Field("tuned", min_length=1)
    concurrency: int = Field(8, ge=1)
    timeout_s: float = Field(600, gt=0)
    max_retries: int = Field(3, ge=0)

    @field_validator("api_key_env")
    @classmethod
    def _a_name_not_a_key(cls, name: str | None) -> str | None:
        return LLMConfig._a_name_not_a_key(name)  # the same rule as llm.api_key_env


def generate_settings(root: Path = Path(".")) -> GenerateConfig:
    """This machine's ``generate.*`` settings; a bad value is one line naming its source."""
    raw = load_machine(root).get("generate") or {}
    try:
        return GenerateConfig.model_validate(raw)
    except ValidationError as exc:
        lines = problems(exc, lambda key: source_of(key, root), prefix="generate.")
        raise ConfigError(lines[0], lines) from None


class Answer(BaseModel):
    """One generated answer (what the cache holds for it)."""

    text: str


class TextClient(LLMClient):
    """:class:`LLMClient` for free text: no ``response_format``, ``stop`` sent, the
    content taken as it is (an answer cut at ``max_tokens`` is an answer, as in-process).

    Built on the constrained ``json_schema`` mode, whose messages go out unchanged; the
    schema is then left off the wire here."""

    def __init__(
        self, cfg: LLMConfig, cache: ResponseCache, stop: list[str], desc: str = "generate"
    ) -> None:
        super().__init__(cfg, cache, desc)
        self.stop = stop
        self._warned_served = True  # a LoRA answers as its own name: nothing to warn about

    async def _post(self, client: Any, url: str, body: dict[str, Any]) -> tuple[int, Any, str]:
        body = {k: v for k, v in body.items() if k != "response_format"}
        if self.stop:
            body["stop"] = self.stop
        return await super()._post(client, url, body)

    def _key_of(self, model: str) -> str:
        return "generate.base_model" if model == self.cfg.model else "generate.tuned_model"

    def _parse(self, req: LLMRequest, text: str) -> _Parsed:
        choice, got = self._choice(req, text)  # the client's own reading, surrogates mended
        if choice is None:
            return got
        content = str(choice["message"].get("content") or "")
        return _Parsed({"text": cut(content, self.stop)}, got.usage, "", got.served)


def cut(text: str, stop: list[str]) -> str:
    """``text`` up to the first stop string (a server may echo it), stripped as in-process."""
    for s in stop:
        text = text.split(s, 1)[0]
    return text.strip()


def template_text(directory: Path) -> str:
    """The chat template a tokenizer directory carries ("" without one)."""
    jinja = directory / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    config = directory / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        return template if isinstance(template, str) else ""
    return ""


def stop_strings(directory: Path) -> list[str]:
    """The end-of-turn tokens the chat template writes (what in-process generation stops
    on besides eos): a server stops on its model's eos alone, which for Gemma is not the
    end of a turn."""
    template = template_text(directory)
    return [t for t in END_OF_TURN_TOKENS if t in template]


# --------------------------------------------------------------------------- the base check


def adapter_base(adapter: Path) -> str:
    """``base_model_name_or_path`` of the adapter's ``adapter_config.json``."""
    base = adapter_config(adapter).get("base_model_name_or_path")
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{adapter}/adapter_config.json: no base_model_name_or_path")
    return base


def _names(*names: str | None) -> set[str]:
    """Each name as given, and as a resolved path when it is a directory here."""
    out: set[str] = set()
    for name in names:
        if not name:
            continue
        out.add(name.rstrip("/"))
        if Path(name).expanduser().is_dir():
            out.add(str(Path(name).expanduser().resolve()))
    return out


def model_entries(gen: GenerateConfig, secret: str) -> list[dict[str, Any]] | None:
    """The entries of ``GET {base_url}/models`` (None: the server has no such list)."""
    import requests

    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    url = f"{gen.base_url.rstrip('/')}/models"
    try:
        resp = requests.get(url, headers=headers, timeout=min(gen.timeout_s, 30))
    except requests.RequestException as exc:
        raise ServiceError(
            f"{url}: {type(exc).__name__}; is the server up (generate.base_url)?"
        ) from None
    if resp.status_code in (401, 403):
        raise ConfigError(
            f"{url} answered HTTP {resp.status_code}: set generate.api_key_env to the NAME "
            "of the variable holding its key"
        )
    try:
        data = resp.json().get("data") if resp.status_code == 200 else None
    except (ValueError, AttributeError):
        data = None
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else None


def served_base(entries: list[dict[str, Any]], base: str, tuned: str) -> set[str] | None:
    """What the server says the tuned model runs on: the tuned entry's ``parent`` (vLLM;
    with that entry's ``id`` and ``root`` when listed), else the base entry's ``id`` and
    ``root``; None when its list tells neither."""
    by_id = {e.get("id"): e for e in entries}
    parent = (by_id.get(tuned) or {}).get("parent")
    if isinstance(parent, str) and parent:
        entry = by_id.get(parent) or {}
        return _names(parent, entry.get("root"))
    entry = by_id.get(base)
    return _names(entry.get("id"), entry.get("root")) if entry else None


def check_base(
    gen: GenerateConfig, entries: list[dict[str, Any]] | None, adapter: Path, base_id: str
) -> bool:
    """Refuse (one line) when the server's base model is not the adapter's; True when its
    model list showed the base, False when it could not tell (logged)."""
    trained_on = adapter_base(adapter)
    base, tuned = gen.base_model or base_id, gen.tuned_model
    said = served_base(entries or [], base, tuned)
    if said is None:
        log.warning(
            "generate: %s/models does not say which base model %r and %r run on: the "
            "adapter's base (%s) is not checked",
            gen.base_url.rstrip("/"),
            base,
            tuned,
            trained_on,
        )
        return False
    if said & _names(trained_on, base_id, resolve_model(base_id)):
        return True
    raise ConfigError(
        f"generate.base_url={gen.base_url}: serves {sorted(said)[0]!r} as the base model, but "
        f"{adapter}/adapter_config.json was trained on {trained_on!r}; serve the adapter on "
        "its own base (`seedtune serve` prints the command)"
    )


# --------------------------------------------------------------------------- answers


@dataclass
class Generated:
    """Both models' answers and how they were made (for evaluate's metrics and report)."""

    answers: dict[str, list[str]]
    info: dict[str, Any] = field(default_factory=dict)


def client_config(gen: GenerateConfig, model: str, max_tokens: int) -> LLMConfig:
    """The LLM client's settings for answers from ``gen``'s server."""
    return LLMConfig(
        base_url=gen.base_url,
        model=model,
        api_key_env=gen.api_key_env,
        timeout_s=gen.timeout_s,
        max_retries=gen.max_retries,
        concurrency=gen.concurrency,
        max_tokens=max_tokens,
        structured_output="json_schema",  # messages unchanged (TextClient sends no schema)
        system_role="keep",
    )


def ask_server(
    client: TextClient,
    model: str,
    prompts: list[str],
    temperature: float = 0.0,
    version: str = "",
) -> list[str]:
    """``model``'s answer to each prompt (one user turn), in order; raises one line when
    an answer could not be had (an answer is never silently left out of a comparison)."""
    requests = [
        LLMRequest(
            id=str(i),
            messages=[{"role": "user", "content": q}],
            schema=Answer,
            temperature=temperature,
            template_version=f"{REQUEST_VERSION}:{version}:{client.stop}",
            model=model,
        )
        for i, q in enumerate(prompts)
    ]
    outcomes = client.run(requests)
    failed = [o for o in outcomes if o.value is None]
    if failed:
        raise ServiceError(
            f"{client.cfg.base_url}: no answer from {model!r} for {len(failed)} of "
            f"{len(prompts)} questions (the first: {failed[0].reject}); check the server's log"
        )
    return [o.value["text"] for o in outcomes]


def answer_via_server(
    gen: GenerateConfig,
    base_id: str,
    revision: str,
    questions: list[str],
    adapter: Path,
    max_new_tokens: int,
    cache_dir: Path | None = None,
) -> Generated:
    """Greedy answers of the base model, then of the adapter, from ``gen``'s server.

    Answers are cached under ``cache_dir`` (a temporary directory when None) by model
    name, question, settings, the base revision and the adapter's weights: a rerun after a
    failure resumes, and another adapter asks again."""

    base = gen.base_model or base_id
    stop = stop_strings(adapter)
    versions = {"base": f"{base_id}@{revision}", "tuned": weights_md5(adapter) or ""}
    with tempfile.TemporaryDirectory(prefix="seedtune-generate-") as tmp:
        cache = ResponseCache(cache_dir or Path(tmp))
        try:
            client = TextClient(client_config(gen, base, max_new_tokens), cache, stop)
            checked = check_base(gen, model_entries(gen, client._api_key()), adapter, base_id)
            answers: dict[str, list[str]] = {}
            for label, model in (("base", base), ("tuned", gen.tuned_model)):
                client.desc = f"answers ({label}, {gen.base_url})"
                answers[label] = ask_server(client, model, questions, 0.0, versions[label])
        finally:
            cache.close()
    info = {
        "generator": "server",
        "generator_base": base,
        "generator_tuned": gen.tuned_model,
        "generator_base_checked": checked,
    }
    return Generated(answers, info)


def answer_one(
    gen: GenerateConfig,
    base_id: str,
    adapter: Path | None,
    prompt: str,
    max_new_tokens: int,
    temperature: float = 0.0,
) -> str:
    """One answer to ``prompt`` from ``gen``'s server: the adapter's (``tuned_model``), or
    the base model's when ``adapter`` is None (``seedtune ask --adapter none``; it stops at
    the end of turn of models/adapter's template, the base's own, when there is one)."""
    base = gen.base_model or base_id
    dirs = (adapter, Path(paths.ADAPTER), Path(resolve_model(base_id)))
    template_dir = next((d for d in dirs if d is not None and d.is_dir()), Path("."))
    with tempfile.TemporaryDirectory(prefix="seedtune-ask-") as tmp:
        cache = ResponseCache(Path(tmp))  # nothing kept: a sampled answer differs each time
        try:
            client = TextClient(
                client_config(gen, base, max_new_tokens), cache, stop_strings(template_dir), "ask"
            )
            if adapter is not None:
                check_base(gen, model_entries(gen, client._api_key()), adapter, base_id)
            model = gen.tuned_model if adapter is not None else base
            return ask_server(client, model, [prompt], temperature)[0]
        finally:
            cache.close()
