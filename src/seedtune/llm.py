"""One OpenAI-compatible chat client for every LLM call in seedtune.

Works with any endpoint that speaks the chat completions API (OpenAI, vLLM, Ollama, the
``seedtune sim`` simulator) through ``llm.base_url``. Requests run concurrently
(``llm.concurrency``), retry with backoff on 429/5xx/timeouts (the openai client honours
``Retry-After``), ask for structured output (``response_format`` json_schema), parse
tolerantly (code fences, surrounding text) and validate. Every good answer is stored in a
:class:`~seedtune.cache.ResponseCache` the moment it arrives; an answer that stays
unusable after retries becomes a recorded reject, never a crash.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from tqdm.auto import tqdm

from seedtune.cache import ResponseCache, cache_key
from seedtune.config import ConfigError, LLMConfig
from seedtune.credentials import get_secret
from seedtune.schemas import json_schema

log = logging.getLogger(__name__)

# Extra attempts when the answer arrives but cannot be used (truncated, not JSON, invalid).
PARSE_RETRIES = 2


@dataclass(frozen=True)
class LLMRequest:
    """One chat call: ``id`` ties the outcome back to the caller's item."""

    id: str
    messages: list[dict[str, str]]
    schema: type[BaseModel]
    temperature: float = 0.0
    template_version: str = ""
    model: str | None = None  # overrides llm.model (e.g. a judge model)


@dataclass
class LLMOutcome:
    """The parsed answer (``value``) or why there is none (``reject``)."""

    id: str
    value: dict[str, Any] | None = None
    reject: str | None = None
    cached: bool = False
    usage: dict[str, int] = field(default_factory=dict)


@dataclass
class LLMStats:
    """What a batch cost: calls made, cache hits, tokens, rejects."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    rejects: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def extract_json(text: str) -> Any:
    """Parse JSON from an answer that may wrap it in code fences or prose."""
    text = text.strip()
    candidates = [text]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for cand in candidates:
        try:
            return json.loads(cand)
        except json.JSONDecodeError:
            continue
    raise ValueError("answer is not JSON")


def request_key(cfg: LLMConfig, req: LLMRequest) -> str:
    """Cache key: what determines the answer; never the endpoint URL or the API key."""
    return cache_key({
        "model": req.model or cfg.model,
        "messages": req.messages,
        "temperature": req.temperature,
        "max_tokens": cfg.max_tokens,
        "schema": req.schema.model_json_schema(),
        "template": req.template_version,
    })


class LLMClient:
    """Cached, concurrent, retrying structured-output calls to an OpenAI-compatible API."""

    def __init__(self, cfg: LLMConfig, cache: ResponseCache, desc: str = "llm") -> None:
        self.cfg = cfg
        self.cache = cache
        self.desc = desc
        self.stats = LLMStats()

    def run(self, requests: Sequence[LLMRequest]) -> list[LLMOutcome]:
        """Answer every request (cache first), in input order."""
        outcomes: list[LLMOutcome | None] = [None] * len(requests)
        todo: list[tuple[int, LLMRequest, str]] = []
        for i, req in enumerate(requests):
            key = request_key(self.cfg, req)
            hit = self.cache.get(key)
            if hit is not None:
                outcomes[i] = LLMOutcome(req.id, value=hit, cached=True)
                self.stats.cache_hits += 1
            else:
                todo.append((i, req, key))
        log.info("%s: %d requests, %d cached, %d to call", self.desc, len(requests),
                 len(requests) - len(todo), len(todo))
        if todo:
            # Only now is a key needed: a fully cached rerun works without one.
            api_key = get_secret(self.cfg.api_key_env, f"API key for {self.cfg.base_url}")
            for i, outcome in asyncio.run(self._run_async(todo, api_key)):
                outcomes[i] = outcome
        self.stats.rejects = sum(1 for o in outcomes if o is not None and o.reject)
        return [o for o in outcomes if o is not None]

    async def _run_async(
        self, todo: list[tuple[int, LLMRequest, str]], api_key: str
    ) -> list[tuple[int, LLMOutcome]]:
        from openai import AsyncOpenAI

        client = AsyncOpenAI(base_url=self.cfg.base_url, api_key=api_key,
                             timeout=self.cfg.timeout_s, max_retries=self.cfg.max_retries)
        sem = asyncio.Semaphore(self.cfg.concurrency)
        bar = tqdm(total=len(todo), desc=self.desc, unit="call")

        async def one(i: int, req: LLMRequest, key: str) -> tuple[int, LLMOutcome]:
            async with sem:
                outcome = await self._call(client, req, key)
            bar.update(1)
            return i, outcome

        try:
            return await asyncio.gather(*(one(*t) for t in todo))
        finally:
            bar.close()
            await client.close()

    async def _call(self, client: Any, req: LLMRequest, key: str) -> LLMOutcome:
        import openai

        reason = "no answer"
        for _attempt in range(1 + PARSE_RETRIES):
            try:
                resp = await client.chat.completions.create(
                    model=req.model or self.cfg.model,
                    messages=req.messages,
                    temperature=req.temperature,
                    max_tokens=self.cfg.max_tokens,
                    response_format=json_schema(req.schema),
                )
            except openai.AuthenticationError:
                raise ConfigError(
                    f"{self.cfg.base_url} rejected the key in {self.cfg.api_key_env} (401)"
                ) from None
            except (openai.APIResponseValidationError, json.JSONDecodeError) as exc:
                reason = f"malformed response: {type(exc).__name__}"
                continue
            except (openai.APIConnectionError, openai.RateLimitError,
                    openai.InternalServerError) as exc:
                # the client already retried max_retries times with backoff
                reason = f"{type(exc).__name__} after {self.cfg.max_retries} retries"
                break
            except openai.APIStatusError as exc:
                reason = f"HTTP {exc.status_code}"
                break
            self.stats.calls += 1
            if resp.usage is not None:
                self.stats.prompt_tokens += resp.usage.prompt_tokens or 0
                self.stats.completion_tokens += resp.usage.completion_tokens or 0
            choice = resp.choices[0]
            if choice.finish_reason == "length":
                reason = "truncated (finish_reason=length)"
                continue
            try:
                value = req.schema.model_validate(extract_json(choice.message.content or ""))
            except (ValueError, ValidationError) as exc:
                reason = f"invalid answer: {str(exc).splitlines()[0][:200]}"
                continue
            data = value.model_dump()
            self.cache.put(key, data)
            return LLMOutcome(req.id, value=data)
        return LLMOutcome(req.id, reject=reason)


def check_reject_rate(stage: str, n_items: int, n_rejects: int, max_rate: float) -> None:
    """Fail the stage (ConfigError-style one line) when too many items were rejected."""
    if n_items and n_rejects / n_items > max_rate:
        raise RuntimeError(
            f"{stage}: {n_rejects}/{n_items} items rejected (> llm.max_reject_rate={max_rate}); "
            f"see data/rejects/{stage}.jsonl"
        )
