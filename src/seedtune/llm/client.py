"""One OpenAI-compatible chat client for every LLM call in seedtune.

Works with any endpoint that speaks the chat completions API (OpenAI, vLLM, Ollama, the
``seedtune sim`` simulator) through ``llm.base_url``: ``POST {base_url}/chat/completions``
with a Bearer key. It speaks that HTTP API over aiohttp rather than through the openai SDK:
the SDK's per-request overhead (~10 ms at 32 requests in flight on 2 cores) alone would
cost a fifth of the wall time at 100 ms latency (see ``make bench``). Requests run concurrently
(``llm.concurrency``) under optional client-side limits (``llm.rpm``, ``llm.tpm``); 429, 5xx,
timeouts and connection errors are retried with exponential backoff and full jitter,
honouring ``Retry-After`` / ``retry-after-ms``. Error bodies of every common shape are read
by :mod:`seedtune.llm.errors`, so each one-line error quotes the server; a request the server
refuses (a validation error, an unsupported field) and an unknown model stop the stage at
once, neither retried as an outage nor rejected item by item. Answers ask for structured
output in the form the server takes (``llm.structured_output``,
:mod:`seedtune.llm.structured`), are parsed tolerantly (code fences, surrounding text) and
validated; the stage's first answers probe that the server applied the schema. A system
message the model's template refuses is folded into the user turn
(:mod:`seedtune.llm.system_role`); the model each answer was served as is recorded and
compared with the one asked for (:mod:`seedtune.llm.served`). Every good answer is stored in
a :class:`~seedtune.core.cache.ResponseCache` the moment it arrives, so ``kill -9`` loses at
most the calls in flight; an answer that stays
unusable after retries becomes a recorded reject, never a crash.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from pydantic import BaseModel, ValidationError
from tqdm.auto import tqdm

from seedtune.core.cache import ResponseCache, cache_key
from seedtune.core.config import LLMConfig
from seedtune.core.credentials import (
    MAX_REDIRECTS,
    REDIRECT_STATUS,
    get_secret,
    redact,
    same_origin,
)
from seedtune.core.errors import ConfigError, QuotaError, SeedtuneError, ServiceError
from seedtune.core.retry import AsyncTokenBucket, RetryWarnings, backoff_s, retry_after_s
from seedtune.core.text import replace_lone_surrogates
from seedtune.llm import batch, errors, structured
from seedtune.llm.costs import LLMStats, messages_tokens
from seedtune.llm.errors import parse_error
from seedtune.llm.served import identity, reusable, same_model, served_key
from seedtune.llm.system_role import SystemRole, fold, folds_up_front

log = logging.getLogger(__name__)

# Extra attempts when an answer arrives but cannot be used (truncated, not JSON, invalid).
PARSE_RETRIES = 2
#: Requests in flight or waiting for an earlier one, per slot of ``llm.concurrency``.
WINDOW_PER_SLOT = 4
RETRYABLE_STATUS = errors.RETRYABLE_STATUS
#: A stage stops when its first answers, this many before any that parses, show the server
#: ignored the schema it was asked to apply (later failures are rejects, as always).
PROBE_ANSWERS = 3
#: Model ids named in an error line (of ``GET /models``), and how long that call may take.
MODELS_SHOWN = 5
MODELS_TIMEOUT_S = 5.0


class LLMQuotaExceeded(QuotaError):
    """The provider says the account is out of quota (429 insufficient_quota): stop now."""


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
    """The parsed answer (``value``) or why there is none (``reject``); ``model``: the model
    the server answered as (None: it did not say, or the answer predates the record)."""

    id: str
    value: dict[str, Any] | None = None
    reject: str | None = None
    model: str | None = None


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


@functools.cache
def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema, computed once per class (pydantic's is not cheap)."""
    return model.model_json_schema()


#: Reasoning models (o-series, GPT-5, fine-tuned ones too): ``max_completion_tokens`` and
#: no sampling parameters (OpenAI's reasoning guide; the API answers 400 otherwise).
REASONING_MODEL = re.compile(r"^(ft:)?(o\d|gpt-5)")
#: Strict-schema keywords OpenAI refuses for fine-tuned models; pydantic still checks them.
CLIENT_SIDE_BOUNDS = (
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


def _without_bounds(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_bounds(v) for k, v in schema.items() if k not in CLIENT_SIDE_BOUNDS}
    if isinstance(schema, list):
        return [_without_bounds(v) for v in schema]
    return schema


@functools.cache
def response_format(
    model: type[BaseModel], fine_tuned: bool = False, mode: str = "json_schema"
) -> dict[str, Any] | None:
    """``response_format`` for ``model`` in ``mode`` (default OpenAI's strict json_schema;
    None: none is sent); for a fine-tuned model without the bounds it refuses (they are
    still validated here, by pydantic)."""
    schema = _without_bounds(schema_of(model)) if fine_tuned else schema_of(model)
    return structured.response_format(model.__name__, schema, mode)


def request_body(cfg: LLMConfig, req: LLMRequest, folded: bool | None = None) -> dict[str, Any]:
    """The chat completions body, in the parameters the model's family takes and the
    structured output the server takes; ``folded``: the system message put into the user
    turn (None: as ``llm.system_role`` says before any refusal)."""
    model = req.model or cfg.model
    reasoning = bool(REASONING_MODEL.match(model))
    mode = cfg.structured_output
    messages = structured.instructed(req.messages, schema_of(req.schema), mode)
    if folded is None:
        folded = cfg.system_role == "fold" or (cfg.system_role == "auto" and folds_up_front(model))
    body: dict[str, Any] = {"model": model, "messages": fold(messages) if folded else messages}
    rf = response_format(req.schema, model.startswith("ft:"), mode)
    if rf is not None:
        body["response_format"] = rf
    if cfg.service_tier:
        body["service_tier"] = cfg.service_tier
    # OpenAI deprecated max_tokens for max_completion_tokens (reasoning models refuse it);
    # other servers (vLLM, Ollama) know max_tokens best
    openai = "api.openai.com" in cfg.base_url
    body["max_completion_tokens" if openai or reasoning else "max_tokens"] = cfg.max_tokens
    if not reasoning:
        body["temperature"] = req.temperature
    return body


def request_key(cfg: LLMConfig, req: LLMRequest) -> str:
    """Cache key: what determines the answer; never the endpoint URL or the API key.

    The logical request: the system message apart however this server takes it, the
    schema however it is spelled on the wire (constrained modes), the service tier not at
    all (the same model answers); a prompted ``llm.structured_output`` mode is part of it
    (see :mod:`seedtune.llm.structured`). Which backend answered is not in the key but in
    the entry (see :mod:`seedtune.llm.served`).
    """
    return cache_key(
        {
            "model": req.model or cfg.model,
            "messages": req.messages,
            "temperature": req.temperature,
            "max_tokens": cfg.max_tokens,
            "schema": schema_of(req.schema),
            "template": req.template_version,
            **structured.key_part(cfg.structured_output),
        }
    )


class LLMClient:
    """Cached, concurrent, rate-limited, retrying structured-output calls."""

    def __init__(self, cfg: LLMConfig, cache: ResponseCache, desc: str = "llm") -> None:
        self.cfg = cfg
        self.cache = cache
        self.desc = desc
        self.stats = LLMStats(service_tier=cfg.service_tier, batch=cfg.mode == "batch")
        self._secret = ""
        self._session: Any = None
        self._system = SystemRole(cfg.system_role, cfg.model, desc)
        #: per requested model, what this endpoint serves (from the first live answer)
        self._current: dict[str, str] = {}
        self._live: dict[str, int] = {}  # live calls in flight per requested model
        #: per requested model, whether GET /models lists its name (None: cannot tell)
        self._named: dict[str, bool | None] = {}
        self._asked = False  # a live call of this stream is on its way
        self._warned_served = False
        self._probe_open = cfg.structured_output in structured.CONSTRAINED
        self._probe_misses = 0

    #: extra attempts for an answer that arrives unusable (the batch path reads it here)
    parse_retries = PARSE_RETRIES

    def key_of(self, req: LLMRequest) -> str:
        """The request's cache key (:func:`request_key`)."""
        return request_key(self.cfg, req)

    def body_of(self, req: LLMRequest) -> dict[str, Any]:
        """The chat completions body sent for ``req`` now (:func:`request_body`)."""
        return request_body(self.cfg, req, self._system.folding or None)

    @staticmethod
    def outcome(
        id: str,
        value: dict[str, Any] | None = None,
        reject: str | None = None,
        model: str | None = None,
    ) -> LLMOutcome:
        """An :class:`LLMOutcome` (for :mod:`seedtune.llm.batch`)."""
        return LLMOutcome(id, value=value, reject=reject, model=model)

    def pending(self, requests: Sequence[LLMRequest]) -> list[LLMRequest]:
        """The requests that are not answered in the cache yet (what a run would pay for)."""
        return [r for r in requests if self.cache.get(request_key(self.cfg, r)) is None]

    def run(self, requests: Sequence[LLMRequest]) -> list[LLMOutcome]:
        """Every outcome of :meth:`stream`, as a list (for request sets that fit memory)."""
        return list(self.stream(requests, total=len(requests)))

    def stream(
        self, requests: Iterable[LLMRequest], total: int | None = None
    ) -> Iterator[LLMOutcome]:
        """Answer each request (cache first), yielding outcomes in input order.

        Requests are read lazily and at most ``WINDOW_PER_SLOT x llm.concurrency`` are in
        flight or waiting for an earlier one, so memory holds a window, not the run.
        Content failures (invalid, truncated, refused, a 4xx about the request) become
        rejects. A transport failure that outlasts the retries, a rejected key, a spent
        quota or an unknown model raise a :class:`~seedtune.core.errors.SeedtuneError` once
        the calls in flight have landed in the cache: nothing paid for is lost. The key is
        read only when the first request is not cached: a cached rerun needs none.
        With ``llm.mode: batch`` the uncached requests go through the Batch API instead
        (:mod:`seedtune.llm.batch`; the same bodies, cache keys and validation).
        """
        if self.cfg.mode == "batch":
            yield from batch.stream(self, requests, total)
            return
        loop = asyncio.new_event_loop()
        ahead: deque[LLMOutcome | asyncio.Task[LLMOutcome | None]] = deque()
        todo = iter(requests)
        window = WINDOW_PER_SLOT * self.cfg.concurrency
        self._fatal: list[SeedtuneError] = []
        self._bar = tqdm(total=total, desc=self.desc, unit="request")
        self.stats.rejects = 0
        seen, hits = 0, self.stats.cache_hits
        self._asked = False
        try:
            while True:
                while len(ahead) < window and (req := next(todo, None)) is not None:
                    seen += 1
                    key = request_key(self.cfg, req)
                    hit, held = self._usable(key, req)
                    model = req.model or self.cfg.model
                    if (
                        hit is not None
                        and model not in self._current
                        and model not in self._named
                        and _snapshot_of(hit, model)
                    ):
                        # a snapshot of the name trusted by the name alone: does this
                        # endpoint's list have the name? (only then can the answer differ)
                        self._named[model] = loop.run_until_complete(self._lists(model))
                        hit, held = self._usable(key, req)
                    if hit is not None:
                        ahead.append(self._from_cache(req, hit))
                        continue
                    if self._session is None:
                        # only now is a key needed: a fully cached rerun works without one
                        loop.run_until_complete(self._open(self._api_key()))
                    self._asked = True
                    ahead.append(loop.create_task(self._one(req, key, held)))
                if not ahead:
                    break
                head = ahead.popleft()
                outcome = loop.run_until_complete(head) if isinstance(head, asyncio.Task) else head
                if outcome is None:  # a fatal error stopped the run
                    break
                self._bar.update(1)
                self.stats.rejects += bool(outcome.reject)
                yield outcome
        finally:
            self._stop_set()
            # the calls in flight land in the cache before anything is raised
            pending = [t for t in ahead if isinstance(t, asyncio.Task)]
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(self._close())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            self._bar.close()
            hits = self.stats.cache_hits - hits
            log.info("%s: %d requests, %d cached, %d called", self.desc, seen, hits, seen - hits)
        if self._fatal:
            # every answer that arrived is cached: a rerun resumes without paying again
            kept = (
                (
                    f"; {self.stats.calls} answers of this run are cached in {self.cache.root}, "
                    "a rerun resumes from them"
                )
                if self.stats.calls
                else ""
            )
            raise type(self._fatal[0])(f"{self._fatal[0]}{kept}")

    def _from_cache(self, req: LLMRequest, hit: dict[str, Any]) -> LLMOutcome:
        usage = hit.get("usage") or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        served = hit.get("served") if isinstance(hit.get("served"), str) else None
        self.stats.cache_hits += 1
        self.stats.cached_prompt_tokens += prompt
        self.stats.cached_completion_tokens += completion
        self.stats.add_tokens(req.model or self.cfg.model, served, prompt, completion, cached=True)
        return LLMOutcome(req.id, value=hit["answer"], model=served)

    def _usable(
        self, key: str, req: LLMRequest
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """``(entry to answer from, None)``, or ``(None, entry)`` when the entry may be
        another backend's (decided once this endpoint's served model is known, by
        :meth:`_decide`), or ``(None, None)``: ask."""
        hit = self._cached(key, req)
        if hit is None:
            return None, None
        model = req.model or self.cfg.model
        current = self._current.get(model)
        if current is None:
            # once a call is on its way, every entry waits for what this endpoint answers as
            return (hit, None) if self._by_name(hit, model) and not self._asked else (None, hit)
        if reusable(hit.get("served"), current, model):
            return hit, None
        alt = self._cached(served_key(key, current), req)  # this backend's, kept aside
        return (alt, None) if alt is not None else (None, hit)

    def _by_name(self, hit: dict[str, Any], model: str) -> bool:
        """Whether ``hit`` is used before this endpoint has said what it serves: its served
        model is the configured name (or unrecorded), and not a snapshot of it that an
        endpoint whose model list lacks the name is unlikely to serve."""
        if not reusable(hit.get("served"), None, model):
            return False
        return not (self._named.get(model) is False and _snapshot_of(hit, model))

    def _cached(self, key: str, req: LLMRequest) -> dict[str, Any] | None:
        """A cache entry whose answer still satisfies the request's schema, else None."""
        hit = self.cache.get(key)
        if hit is None:
            return None
        try:
            req.schema.model_validate(hit["answer"])
        except (TypeError, KeyError, ValidationError):
            log.warning(
                "%s: ignoring cache entry %s (not a valid %s answer); asking again",
                self.desc,
                self.cache.where(key),
                req.schema.__name__,
            )
            return None
        return hit

    async def _lists(self, model: str) -> bool | None:
        """Whether ``GET {base_url}/models`` lists ``model`` (or a dated variant); None when
        it cannot tell (no key at hand, no such route, unreachable: a cached rerun offline
        trusts its entries). Free: no tokens, and a rerun's chat calls stay none."""
        if self._session is None:
            try:
                await self._open(self._api_key())
            except SeedtuneError:
                return None
        ids = await self._model_list(self._session)
        return any(same_model(i, model) for i in ids) if ids else None

    def _api_key(self) -> str:
        """The key named by llm.api_key_env; "" when it is null (local servers need none)."""
        if self.cfg.api_key_env is None:
            return ""
        self._secret = get_secret(self.cfg.api_key_env, f"API key for {self.cfg.base_url}")
        return self._secret

    async def _open(self, api_key: str) -> None:
        """The HTTP session, the concurrency gate and the rate buckets of one stream."""
        import aiohttp

        headers = {"User-Agent": "seedtune"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s),
            connector=aiohttp.TCPConnector(limit=self.cfg.concurrency * 2),
            trust_env=True,
        )  # honour HTTPS_PROXY / NO_PROXY like other clients
        self._sem = asyncio.Semaphore(self.cfg.concurrency)
        self._rpm, self._tpm = AsyncTokenBucket(self.cfg.rpm), AsyncTokenBucket(self.cfg.tpm)
        self._stop = asyncio.Event()  # set by the first fatal error: no new call starts
        self._warnings = RetryWarnings(log, self.desc)
        self._learning = asyncio.Condition()  # a served model learned, or a live call ended

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _stop_set(self) -> None:
        if self._session is not None:
            self._stop.set()

    async def _one(
        self, req: LLMRequest, key: str, held: dict[str, Any] | None = None
    ) -> LLMOutcome | None:
        """One request's outcome; None when a fatal error (this one's or another's) stopped
        the run, noted in ``_fatal``. ``held``: a cache entry that may be another backend's,
        used if this endpoint turns out to serve its model."""
        model = req.model or self.cfg.model
        if held is not None:
            hit = await self._decide(req, key, held)
            if hit is not None:
                return self._from_cache(req, hit)
        self._live[model] = self._live.get(model, 0) + 1
        try:
            async with self._sem:
                if self._stop.is_set():
                    return None
                try:
                    return await self._answer(self._session, req, key, self._rpm, self._tpm, held)
                except SeedtuneError as exc:
                    self._fatal.append(exc)
                    self._stop.set()
                    return None
        finally:
            self._live[model] -= 1
            async with self._learning:
                self._learning.notify_all()

    async def _decide(
        self, req: LLMRequest, key: str, held: dict[str, Any]
    ) -> dict[str, Any] | None:
        """``held`` (or this backend's entry kept aside) once the endpoint's served model is
        known, waiting for a live call in flight to tell; None: ask (this call then tells,
        when no other is in flight)."""
        model = req.model or self.cfg.model
        async with self._learning:
            while model not in self._current and self._live.get(model, 0) > 0:
                await self._learning.wait()
        current = self._current.get(model)
        if current is None:  # no answer tells (else this call will)
            return held if self._by_name(held, model) else None
        if reusable(held.get("served"), current, model):
            return held
        return self._cached(served_key(key, current), req)

    async def _learn(self, model: str, served: str | None) -> None:
        """Note the model this endpoint answers ``model``'s requests as (its first answer
        says); warn once per stage when that is not ``model``."""
        if model in self._current:
            return
        self._current[model] = served or model
        if not same_model(served, model) and not self._warned_served:
            self._warned_served = True
            key = "llm.model" if model == self.cfg.model else "evaluate.judge_model"
            log.warning(
                "%s: %s=%r, but %s answers as %r: rows record %r, and the run is "
                "unpriced unless conf/prices names %r",
                self.desc,
                key,
                model,
                self.cfg.base_url,
                served,
                served,
                served,
            )
        async with self._learning:
            self._learning.notify_all()

    def _retrying(self, reason: str) -> None:
        """Count a retry: a warning at the start of each burst, the count on the bar."""
        self.stats.retries += 1
        self._bar.set_postfix(retries=self.stats.retries, refresh=False)
        self._warnings.note(f"{reason} from {self.cfg.base_url}", self.stats.retries)

    async def _answer(
        self,
        client: Any,
        req: LLMRequest,
        key: str,
        rpm: AsyncTokenBucket,
        tpm: AsyncTokenBucket,
        displaced: dict[str, Any] | None = None,
    ) -> LLMOutcome | None:
        """Call until a valid answer or a content reject; None when another call's fatal
        error stopped the run first. Raises :class:`SeedtuneError` on a fatal error.
        ``displaced``: another backend's entry under ``key``, kept aside when replaced."""
        import aiohttp

        url = f"{self.cfg.base_url.rstrip('/')}/chat/completions"
        model = req.model or self.cfg.model
        # folded once this server refused a system turn; else as llm.system_role says
        body = request_body(self.cfg, req, self._system.folding or None)
        # providers count prompt + max_tokens against the TPM limit when the call starts
        tokens = messages_tokens(req.messages) + self.cfg.max_tokens if self.cfg.tpm else 0
        reason, transport_tries, parse_tries = "no answer", 0, 0
        last: _Retryable | None = None
        while True:
            await rpm.acquire(1)
            await tpm.acquire(tokens)
            if self._stop.is_set():
                return None
            wait: float | None = None
            try:
                status, headers, text = await self._post(client, url, body)
                if status != 200 and self._system.refused(
                    status, text, body["messages"], self.cfg.base_url
                ):
                    body = request_body(self.cfg, req, folded=True)  # the same, once more
                    continue
                if status != 200:
                    err = parse_error(text, [self._secret])
                    await self._raise_fatal(client, status, err, req.model or self.cfg.model)
                    if status not in RETRYABLE_STATUS or (
                        status == 500
                        and self._about_request(status, err, req.model or self.cfg.model)
                    ):
                        # the same request would fail again: this item's reject, not an outage
                        return LLMOutcome(
                            req.id, reject=f"HTTP {status}: {err.message or 'no message'}"
                        )
                    raise _Retryable(f"HTTP {status}", retry_after_s(headers), status, err)
            except _Retryable as exc:
                reason, wait, last = exc.reason, exc.wait, exc
            except (TimeoutError, aiohttp.ClientError) as exc:
                reason, last = type(exc).__name__, None
            else:
                self.stats.calls += 1
                got = self._parse(req, text)
                value, reason = got.value, got.reason
                await self._learn(model, got.served)
                self._probe(got)
                if value is not None:
                    # file creation can take ~1 ms: keep it off the event loop
                    await asyncio.to_thread(
                        self._store,
                        key,
                        displaced,
                        {"answer": value, "usage": got.usage, "model": model, "served": got.served},
                    )
                    return LLMOutcome(req.id, value=value, model=got.served)
                parse_tries += 1
                if parse_tries > PARSE_RETRIES or reason.startswith("refusal"):
                    # a refusal is its answer
                    return LLMOutcome(req.id, reject=reason, model=got.served)
                continue
            transport_tries += 1
            if transport_tries > self.cfg.max_retries:
                raise ServiceError(
                    await self._outage(client, url, reason, last, req.model or self.cfg.model)
                )
            self._retrying(
                f"{reason} ({last.error.message})" if last and last.error.message else reason
            )
            await asyncio.sleep(backoff_s(transport_tries, wait))

    async def _post(self, client: Any, url: str, body: dict[str, Any]) -> tuple[int, Any, str]:
        """POST ``body`` to ``url``: (status, headers, text), following redirects only within
        the endpoint's origin (scheme, host, port), the same request again (as for 307/308).

        A redirect to another origin is refused before anything is sent there, naming its
        target: the key goes only where ``llm.base_url`` points (OpenAI-style endpoints do
        not redirect; a trailing-slash redirect from a local server stays within the origin).
        """
        target = url
        for _ in range(MAX_REDIRECTS + 1):
            async with client.post(target, json=body, allow_redirects=False) as resp:
                status, headers = resp.status, resp.headers
                text = await resp.text(encoding="utf-8", errors="replace")
            if status not in REDIRECT_STATUS or "Location" not in headers:
                return status, headers, text
            where = urljoin(target, headers["Location"])
            if not same_origin(url, where):
                raise ServiceError(
                    f"{target} redirected to {redact(where, [self._secret])}, another origin: "
                    "the API key is not sent there; set llm.base_url to the endpoint itself"
                )
            target = where
        raise ServiceError(f"{url}: more than {MAX_REDIRECTS} redirects; check llm.base_url")

    def _key_of(self, model: str) -> str:
        """The setting that names ``model``: llm.model, or the judge's own."""
        return "llm.model" if model == self.cfg.model else "evaluate.judge_model"

    def _about_request(self, status: int, err: errors.ServerError, model: str) -> bool:
        """Whether the body blames the request (its shape or this item's content)."""
        return (
            errors.item_error(err)
            or errors.refusal_hint(err, status, self._key_of(model), model, self.cfg.max_tokens)
            is not None
        )

    async def _raise_fatal(
        self, client: Any, status: int, err: errors.ServerError, model: str
    ) -> None:
        """Errors no retry can fix stop the whole stage (answers so far stay cached): a key
        refused or missing, a spent quota, an unknown model, a wrong endpoint, a request
        shape the server refuses. Each is one line with the server's own message."""
        key, said = self._key_of(model), f": {err.message}" if err.message else ""
        if status in (400, 403, 404, 422, 500) and errors.unknown_model(err):
            raise ConfigError(
                f"{key}={model!r}: {self.cfg.base_url} does not serve this model "
                f"(HTTP {status}{said}); {await self._served(client, model)}"
            )
        if status in (401, 403):
            raise errors.key_refused(self.cfg.base_url, self.cfg.api_key_env, status, said)
        if status == 429 and err.code == "insufficient_quota":
            raise LLMQuotaExceeded(
                f"{self.cfg.base_url}: account quota exhausted (insufficient_quota); "
                "answers so far are cached, rerun after topping up"
            )
        if status in (404, 405):
            raise ConfigError(
                f"{self.cfg.base_url}/chat/completions: HTTP {status}{said}: no "
                "chat completions endpoint there; check llm.base_url "
                "(OpenAI-compatible servers usually serve under /v1)"
            )
        if status == 400 and (
            err.code in ("unsupported_parameter", "unsupported_value", "invalid_json_schema")
            or "not supported with this model" in err.message
        ):
            # a request this model can never take: the same for every item, so not a reject
            raise ConfigError(
                f"{key}={model!r}: the endpoint refuses the request for this "
                f"model ({err.message}); choose another model"
            )
        hint = (
            errors.refusal_hint(err, status, key, model, self.cfg.max_tokens)
            if status in (400, 413, 422, 500, 501)
            else None
        )
        # once an answer came back, the request's shape is fine: this item is the problem
        if hint and not self.stats.calls:
            raise ConfigError(
                f"{self.cfg.base_url}/chat/completions: the server refuses the "
                f"request (HTTP {status}, not retried){said}; {hint}"
            )

    async def _outage(
        self, client: Any, url: str, reason: str, last: _Retryable | None, model: str
    ) -> str:
        """The one line for retries run out: the last answer's message and what to check."""
        n = self.cfg.max_retries
        line = (
            f"{url}: {reason} after llm.max_retries={n} retries ({n + 1} attempt{'s' if n else ''})"
        )
        if last is None:
            return (
                f"{line}; check that the endpoint is up (llm.base_url) or raise "
                "llm.timeout_s / llm.max_retries"
            )
        if last.error.message:
            line += f", the last said: {last.error.message}"
        if last.status == 429:
            return f"{line}; lower llm.concurrency, set llm.rpm / llm.tpm, or raise llm.max_retries"
        served = await self._served(client, model, unless_listed=True)
        served = f"; {served}" if served else ""
        if last.status == 500 and not last.error.message:
            return (
                f"{line}{served}; the server may be down, or refuse the request itself: "
                f"the chat template of {self._key_of(model)}={model!r} (e.g. no system "
                "role), the model name, or the schema (llm.structured_output); its log "
                "says which"
            )
        return (
            f"{line}{served}; check that the endpoint is up (llm.base_url) or raise llm.max_retries"
        )

    async def _served(self, client: Any, model: str, unless_listed: bool = False) -> str:
        """What ``GET {base_url}/models`` says the server serves, as a clause of a line ("" if
        it has no such list, or, with ``unless_listed``, when ``model`` is on it)."""
        ids = await self._model_list(client)
        key = self._key_of(model)
        if not ids:
            return "" if unless_listed else f"set {key} to a model it serves"
        if unless_listed and (model in ids or f"{model}:latest" in ids):
            return ""
        shown = ", ".join(ids[:MODELS_SHOWN]) + (
            f" and {len(ids) - MODELS_SHOWN} more" if len(ids) > MODELS_SHOWN else ""
        )
        what = f"{key}={model!r} is not among them" if unless_listed else f"set {key} to one"
        return f"it serves {shown} (GET {self.cfg.base_url.rstrip('/')}/models): {what}"

    async def _model_list(self, client: Any) -> list[str]:
        """The model ids of ``GET {base_url}/models``; [] when the server has no such list
        or does not answer within a few seconds (it only helps word an error)."""
        import aiohttp

        url = f"{self.cfg.base_url.rstrip('/')}/models"
        try:
            async with client.get(
                url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=MODELS_TIMEOUT_S)
            ) as resp:
                if resp.status != 200:
                    return []
                return errors.model_ids(await resp.json(content_type=None), limit=100)
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return []

    def _store(self, key: str, displaced: dict[str, Any] | None, entry: dict[str, Any]) -> None:
        """``entry`` under ``key``; the other backend's entry it replaces kept aside under
        its served model (see :mod:`seedtune.llm.served`), so switching back hits again."""
        if displaced is not None and isinstance(displaced.get("served"), str):
            self.cache.put(served_key(key, displaced["served"]), displaced)
        self.cache.put(key, entry)

    def _probe(self, got: _Parsed) -> None:
        """The stage's first answers tell whether the server applies the schema: until one
        parses, :data:`PROBE_ANSWERS` that show it ignored stop the stage (one line)."""
        if not self._probe_open:
            return
        if got.value is not None:
            self._probe_open = False
            return
        if not got.ignored:
            return
        self._probe_misses += 1
        if self._probe_misses >= PROBE_ANSWERS:
            self._probe_open = False
            shown = " ".join(got.content.split())[:80]
            raise ConfigError(
                f"{self.cfg.base_url} answered without applying the JSON schema "
                f"(llm.structured_output={self.cfg.structured_output}; its first "
                f"{PROBE_ANSWERS} answers do not match it, e.g. {shown!r}); set "
                "llm.structured_output: json_object or none for this server"
            )

    def _choice(self, req: LLMRequest, text: str) -> tuple[dict[str, Any] | None, _Parsed]:
        """``choices[0]`` of one completion body (None when it has none) and a
        :class:`_Parsed` carrying its usage and served model, with the failure when there
        is no choice; the tokens are counted in :attr:`stats`."""
        usage: dict[str, int] = {}
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            # a body cut off mid-way: the call happened, the answer is unusable
            return None, _Parsed(None, usage, "malformed response body")
        # JSON may carry a lone surrogate (an emoji cut in half), which cannot be written as
        # UTF-8: made safe here, where the text enters (and again for the JSON inside the
        # content, below), so a paid answer can always be cached
        data, _ = replace_lone_surrogates(data)
        served = data.get("model") if isinstance(data, dict) else None
        served = served if isinstance(served, str) and served else None
        try:
            raw_usage = data.get("usage") or {}
            usage = {
                "prompt_tokens": int(raw_usage.get("prompt_tokens") or 0),
                "completion_tokens": int(raw_usage.get("completion_tokens") or 0),
            }
            self.stats.prompt_tokens += usage["prompt_tokens"]
            self.stats.completion_tokens += usage["completion_tokens"]
            self.stats.add_tokens(
                req.model or self.cfg.model,
                served,
                usage["prompt_tokens"],
                usage["completion_tokens"],
            )
            choice = data["choices"][0]
            choice["message"].get("content")
        except (AttributeError, KeyError, IndexError, TypeError, ValueError):
            return None, _Parsed(None, usage, "response without choices[0].message", served)
        return choice, _Parsed(None, usage, "", served)

    def _parse(self, req: LLMRequest, text: str) -> _Parsed:
        """The validated answer or why there is none, usage and served model of one
        completion body."""
        choice, got = self._choice(req, text)
        if choice is None:
            return got
        usage, served = got.usage, got.served
        content = choice["message"].get("content") or ""
        refusal = choice["message"].get("refusal")
        if refusal:
            return _Parsed(None, usage, f"refusal: {str(refusal)[:200]}", served)
        if choice.get("finish_reason") == "length":
            # cut short, but under a schema it would have begun as a JSON object: one that
            # does not (transformers serve's noise up to max_tokens) shows the schema ignored
            return _Parsed(
                None,
                usage,
                "truncated (finish_reason=length)",
                served,
                not structured.begins_object(content),
                str(content),
            )
        parsed: Any = structured.NOT_JSON
        try:
            parsed, replaced = replace_lone_surrogates(extract_json(content))
            if replaced:
                log.warning(
                    "%s: replaced %d invalid character(s) in an answer with U+FFFD",
                    self.desc,
                    replaced,
                )
            value = req.schema.model_validate(parsed)
        except (ValueError, ValidationError) as exc:
            return _Parsed(
                None,
                usage,
                f"invalid answer: {str(exc).splitlines()[0][:200]}",
                served,
                structured.ignores_schema(parsed, schema_of(req.schema)),
                str(content),
            )
        return _Parsed(value.model_dump(), usage, "", served)


def _snapshot_of(hit: dict[str, Any], model: str) -> bool:
    """Whether a cache entry was served as another name than ``model`` (a dated snapshot of
    it): the one case in which the endpoint's model list decides its reuse."""
    served = hit.get("served")
    return isinstance(served, str) and identity(served) != identity(model)


@dataclass
class _Parsed:
    """What :meth:`LLMClient._parse` read from a completion body; ``ignored``: the content
    shows the server did not apply the schema (for the probe)."""

    value: dict[str, Any] | None
    usage: dict[str, int]
    reason: str
    served: str | None = None
    ignored: bool = False
    content: str = ""


class _Retryable(Exception):
    """A failure worth another try: why, how long the server asked to wait, its status and
    what its body said (for the line when the retries run out)."""

    def __init__(
        self,
        reason: str,
        wait: float | None,
        status: int = 0,
        error: errors.ServerError | None = None,
    ) -> None:
        self.reason, self.wait, self.status = reason, wait, status
        self.error = error or errors.ServerError()
