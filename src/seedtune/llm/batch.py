"""``llm.mode: batch``: an LLM stage's uncached requests through the OpenAI Batch API.

The same requests as the sync path (:func:`seedtune.llm.client.request_body`, model-family
rules included), written as JSON Lines input files (``custom_id`` = the cache key; one model
per file, split at :data:`MAX_REQUESTS` requests and :data:`MAX_BYTES` bytes, the API's
limits), uploaded through ``POST {base_url}/files`` and started through ``POST
{base_url}/batches``. Memory holds a key and an id per request, not its prompt: the input
lines are spooled to disk as the requests are read (:mod:`seedtune.llm.batch_spool`), the
input files cut from the spool and uploaded from disk, and the result files downloaded to
disk and read a line at a time. Each batch is recorded with its requests in
:mod:`seedtune.llm.batch_state` before it is created, so a killed or stopped run polls the
same batches again and never submits a request twice. The open batches are looked at every
``llm.batch_poll_s`` (a progress bar counts the answers); when ``llm.batch_wait_s`` runs out
the stage stops with one line (:class:`BatchPending`) and writes nothing that looks complete.

A finished batch's output and error files are read line by line: every answer goes through
the sync path's own validation (:meth:`LLMClient._parse`) and is cached the moment it is
read. A per-request error becomes a reject, or for a transport-like code (429, 5xx) waits
for a later batch, as an unusable answer does; each request's such failures are counted in
the batch state, across runs, and once they pass ``llm.max_retries`` (or the parse budget)
the request is a reject, in this run and the next ones. The requests an expired, failed or
cancelled batch left unanswered are resubmitted, and only those (at most
``llm.max_retries`` times each in a run; then the stage stops). A server whose chat template
refuses the system turn (:mod:`seedtune.llm.system_role`) is learnt from the error lines as
the sync path learns it from its answers: the refused requests go again in the next batch,
and every later one, with the system turn folded into the user turn (same cache keys).
Tokens are priced at the Batch API columns of the price table (:mod:`seedtune.llm.costs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from tqdm.auto import tqdm

from seedtune.core.errors import ConfigError, SeedtuneError, ServiceError
from seedtune.core.retry import backoff_s, retry_after_s
from seedtune.llm.batch_spool import Spool
from seedtune.llm.batch_state import PENDING, TERMINAL, BatchState, Tries, state_path
from seedtune.llm.errors import RETRYABLE_STATUS, key_refused, parse_error
from seedtune.llm.system_role import fold

log = logging.getLogger(__name__)

#: Per input file (OpenAI's documented limits for /v1/batches).
MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1024 * 1024
ENDPOINT = "/v1/chat/completions"
#: Per-request status codes worth another batch (the rest are the item's reject).
TRANSPORT_STATUS = RETRYABLE_STATUS
#: ``llm.batch_wait_s: null``: the API's completion window, and an hour to spare.
WINDOW_S = 25 * 3600
LISTED = 100  # batches read per page of GET /batches when adopting a pending record
#: What a server answers for a route it does not have.
NO_SUCH_ROUTE = (404, 405, 501)
#: Why a result line goes into another batch (see :meth:`_Run._collect`).
LOST, RESENT, UNUSABLE, FOLD = "lost", "resent", "unusable", "fold"
SPOOL_DIR = "batch-spool"  # beside the batch records (see seedtune.llm.batch_spool)


class BatchPending(SeedtuneError):
    """``llm.batch_wait_s`` ran out with batches still open: rerun later."""


def stream(client: Any, requests: Iterable[Any], total: int | None = None) -> Iterator[Any]:
    """Every request's outcome (``LLMOutcome``) in input order, the uncached ones fetched in
    batches first. ``client``: the :class:`~seedtune.llm.client.LLMClient` (which imports
    this module, so it is not named here), whose cache, stats and validation are used.

    One pass reads the requests: each one's key and id stay in memory, the uncached ones'
    input lines go to a :class:`~seedtune.llm.batch_spool.Spool` on disk (memory does not
    grow with the size of the prompts). Nothing is yielded until every batch is done: a
    stopped run leaves no partial output.
    """
    order: list[tuple[str, _Item]] = []
    todo: dict[str, _Item] = {}
    displaced: dict[str, dict[str, Any]] = {}
    spooled_folded: set[str] = set()  # spooled with the system turn already folded
    with Spool(state_path().parent / SPOOL_DIR) as spool:
        for req in requests:
            key = client.key_of(req)
            item = _Item(req.id, req.schema, req.model)
            order.append((key, item))
            if key in todo:
                continue
            hit, held = client._usable(key, req)
            if hit is None:
                todo[key] = item
                if held is not None:
                    displaced[key] = held
                spool.add(key, _input_line(key, client.body_of(req)))
                if client._system.folding:
                    spooled_folded.add(key)
        run = _Run(client, todo, displaced, spool)
        run.sent_folded |= spooled_folded
        client.stats.rejects = 0
        if todo:
            asyncio.run(run.fetch())
    for key, item in order:
        if key in run.rejects:
            client.stats.rejects += 1
            yield client.outcome(item.id, reject=run.rejects[key])
            continue
        entry = client.cache.get(key) if key in run.live else None
        if entry is not None:
            yield client.outcome(item.id, value=entry["answer"], model=entry.get("served"))
            continue
        hit = client._cached(key, item)
        if hit is None:  # damaged since it was read: asked again next run
            client.stats.rejects += 1
            yield client.outcome(item.id, reject="cache entry unreadable after the batch")
            continue
        yield client._from_cache(item, hit)


class _Item(NamedTuple):
    """What a request's outcome needs once its line is spooled: the fields of an
    ``LLMRequest`` that the client's cache and validation read (its messages are on disk)."""

    id: str
    schema: Any
    model: str | None


def _input_line(key: str, body: dict[str, Any]) -> bytes:
    """One line of a batch input file."""
    line = {"custom_id": key, "method": "POST", "url": ENDPOINT, "body": body}
    return (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")


class _Run:
    """One stage's batches: submit, poll, collect."""

    def __init__(
        self, client: Any, todo: dict[str, _Item], displaced: dict[str, Any], spool: Spool
    ) -> None:
        self.client, self.cfg, self.todo, self.displaced = client, client.cfg, todo, displaced
        self.spool = spool
        self.base = self.cfg.base_url.rstrip("/")
        self.live: set[str] = set()  # answered in this run
        self.rejects: dict[str, str] = {}
        self.tries: Counter[str] = Counter()  # batches of this run that lost a request
        self.sent_folded: set[str] = set()  # submitted with the system turn folded
        self.session: Any = None

    # --- the loop ---------------------------------------------------------------------------
    async def fetch(self) -> None:
        """Submit what no open batch holds, then poll until every request is settled."""
        import aiohttp

        key = self.client._api_key()
        headers = {"User-Agent": "seedtune"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        timeout = aiohttp.ClientTimeout(total=max(self.cfg.timeout_s, 120))
        state = BatchState()
        async with aiohttp.ClientSession(headers=headers, timeout=timeout, trust_env=True) as s:
            self.session = s
            try:
                await self._loop(state)
            finally:
                state.close()

    async def _loop(self, state: BatchState) -> None:
        waiting = await self._resume(state)
        held = set().union(*waiting.values()) if waiting else set()
        unsent = [k for k in self.todo if k not in held]
        # failures counted in earlier runs: a request past its bound is not sent again
        for key, tries in state.tries(self.cfg.base_url, unsent).items():
            spent = self._spent(tries)
            if spent is not None:
                self.rejects[key] = spent
        unsent = [k for k in unsent if k not in self.rejects]
        wait_s = WINDOW_S if self.cfg.batch_wait_s is None else self.cfg.batch_wait_s
        started = time.monotonic()
        desc = f"{self.client.desc} (batch)"
        with tqdm(total=len(self.todo), desc=desc, unit="request") as bar:
            while True:
                if unsent:
                    waiting.update(await self._submit(state, unsent))
                    unsent = []
                if not waiting:
                    return
                statuses: Counter[str] = Counter()
                for batch_id in list(waiting):
                    batch = await self._json("GET", f"/batches/{batch_id}")
                    state.seen(batch)
                    status = str(batch.get("status"))
                    statuses[status] += 1
                    if status in TERMINAL:
                        unsent += await self._collect(state, batch, waiting.pop(batch_id))
                        state.collect(batch_id)
                settled = len(self.live) + len(self.rejects)
                bar.update(settled - bar.n)
                bar.set_postfix(dict(sorted(statuses.items())), refresh=True)
                if unsent or not waiting:
                    continue
                if time.monotonic() - started >= wait_s:
                    raise BatchPending(self._pending_line(waiting))
                left = wait_s - (time.monotonic() - started)
                await asyncio.sleep(max(0.0, min(self.cfg.batch_poll_s, left)))

    def _pending_line(self, waiting: dict[str, set[str]]) -> str:
        first, more = next(iter(waiting)), len(waiting) - 1
        which = f"batch {first}" + (f" and {more} more" if more else "")
        return (
            f"{self.client.desc}: {which} in progress ({len(self.live)} of {len(self.todo)} "
            f"requests answered, the rest on their way; llm.batch_wait_s="
            f"{self.cfg.batch_wait_s:g}): rerun `dvc repro` later, nothing is submitted twice"
        )

    async def _resume(self, state: BatchState) -> dict[str, set[str]]:
        """The open batches of this endpoint holding requests of ours: their keys."""
        waiting: dict[str, set[str]] = {}
        for rec in state.records(self.cfg.base_url, open_only=True):
            keys = state.keys(rec.id) & self.todo.keys()
            if not keys:
                continue
            rid = rec.id
            if rid.startswith(PENDING):  # killed between upload and the API's answer
                batch = await self._find(rec.input_file_id)
                if batch is None:
                    state.drop(rid)  # never created: its requests are sent again
                    continue
                state.created(rid, batch)
                rid = batch["id"]
            waiting[rid] = keys
        if waiting:
            log.info(
                "%s: resuming %d batch(es) holding %d requests",
                self.client.desc,
                len(waiting),
                sum(len(k) for k in waiting.values()),
            )
        return waiting

    async def _find(self, input_file_id: str) -> dict[str, Any] | None:
        """The batch created from ``input_file_id`` (newest pages of the list), if any."""
        after: str | None = None
        for _ in range(10):
            query = f"/batches?limit={LISTED}" + (f"&after={after}" if after else "")
            status, text = await self._raw("GET", query)
            if status in NO_SUCH_ROUTE:  # no list to look in: the record cannot be checked
                log.warning(
                    "%s: GET %s/batches: HTTP %d: cannot tell whether the batch of %s was "
                    "created before the last run stopped; its requests are sent again",
                    self.client.desc,
                    self.base,
                    status,
                    input_file_id,
                )
                return None
            self._check(status, text, "/batches")
            try:
                page = json.loads(text)
            except ValueError:
                raise ServiceError(f"{self.base}/batches: not JSON (HTTP {status})") from None
            for batch in page.get("data") or []:
                if batch.get("input_file_id") == input_file_id:
                    return batch
            if not page.get("has_more") or not page.get("data"):
                return None
            after = page["data"][-1]["id"]
        return None

    # --- submit -----------------------------------------------------------------------------
    async def _submit(self, state: BatchState, keys: list[str]) -> dict[str, set[str]]:
        """Input files for ``keys`` (one model each, within the limits, cut from the spool
        and uploaded from disk), each recorded before its batch is created."""
        by_model: dict[str, list[str]] = {}
        for key in keys:
            by_model.setdefault(self.todo[key].model or self.cfg.model, []).append(key)
        created: dict[str, set[str]] = {}
        for model_keys in by_model.values():
            lines = self._folded(self.spool.lines(model_keys))
            for path, chunk_keys in self.spool.chunks(lines, MAX_REQUESTS, MAX_BYTES):
                file = await self._upload(path)
                pending = state.intend(file["id"], self.client.desc, self.cfg.base_url, chunk_keys)
                try:
                    batch = await self._json(
                        "POST",
                        "/batches",
                        {
                            "input_file_id": file["id"],
                            "endpoint": ENDPOINT,
                            "completion_window": "24h",
                            "metadata": {"seedtune_stage": self.client.desc},
                        },
                    )
                except SeedtuneError:
                    state.drop(pending)  # refused: no batch exists, nothing to resume
                    raise
                state.created(pending, batch)
                self.client.stats.batches += 1
                self.client.stats.batch_requests += len(chunk_keys)
                created[batch["id"]] = set(chunk_keys)
                n = len(chunk_keys)
                log.info("%s: batch %s: %d requests", self.client.desc, batch["id"], n)
        return created

    def _folded(self, lines: Iterator[tuple[str, bytes]]) -> Iterator[tuple[str, bytes]]:
        """``lines`` as sent now: once this server refused a system turn (or
        ``llm.system_role`` folds up front), with it folded into the user turn, as the sync
        path sends it (:func:`~seedtune.llm.system_role.fold`; the cache key is the same)."""
        for key, raw in lines:
            # only lines spooled before a refusal taught folding need it (re-encoded)
            if self.client._system.folding and key not in self.sent_folded:
                line = json.loads(raw)
                line["body"]["messages"] = fold(line["body"]["messages"])
                raw = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
                self.sent_folded.add(key)
            yield key, raw

    async def _upload(self, path: Path) -> dict[str, Any]:
        name = f"seedtune-{self.client.desc}.jsonl"
        return await self._json("POST", "/files", form=(path, name))

    # --- collect ----------------------------------------------------------------------------
    async def _collect(self, state: BatchState, batch: dict[str, Any], keys: set[str]) -> list[str]:
        """Cache the answers of a finished batch; the keys to send again.

        A request the batch lost (expired, cancelled, failed: no answer of its own) goes
        again, at most ``llm.max_retries`` times in a run, then the stage stops (the
        endpoint's trouble, not the item's). A request answered with a transport-like
        error or an unusable answer goes again until its counts in ``state`` (kept across
        runs) pass ``llm.max_retries`` or the parse budget: then it is a reject.
        """
        seen: set[str] = set()
        lost: list[str] = []
        failed: dict[str, tuple[str, str]] = {}
        answered: list[str] = []
        refolded: list[str] = []  # refused for their system turn: again, folded, uncounted
        for file_key in ("output_file_id", "error_file_id"):
            if not batch.get(file_key):
                continue
            path = await self._download(f"/files/{batch[file_key]}/content")
            try:
                with path.open("rb") as results:
                    for raw in results:  # each answer is cached as it is read
                        try:
                            line = json.loads(raw)
                            key = line["custom_id"]
                        except (ValueError, KeyError, TypeError):
                            if raw.strip():
                                log.warning(
                                    "%s: skipping an unreadable result line", self.client.desc
                                )
                            continue
                        if key not in keys or key in seen:
                            continue
                        seen.add(key)
                        outcome = self._settle(key, line)
                        if outcome is None:
                            if key in self.live:
                                answered.append(key)
                        elif outcome[0] == LOST:
                            lost.append(key)
                        elif outcome[0] == FOLD:
                            refolded.append(key)
                        else:
                            failed[key] = outcome
            finally:
                path.unlink(missing_ok=True)
        missing = [k for k in keys if k not in seen]
        why = _batch_errors(batch)
        if batch.get("status") != "completed" or missing:
            log.warning(
                "%s: batch %s %s: %d of its requests unanswered, sent again%s",
                self.client.desc,
                batch["id"],
                batch.get("status"),
                len(missing) + len(lost),
                f" ({why})" if why else "",
            )
        state.forget_tries(self.cfg.base_url, answered)
        again: list[str] = []
        for key, tries in state.add_tries(self.cfg.base_url, failed).items():
            spent = self._spent(tries)
            if spent is None:
                again.append(key)
            else:
                self.rejects[key] = spent
        for key in missing + lost:
            self.tries[key] += 1
            if self.tries[key] > self.cfg.max_retries:
                raise ServiceError(
                    f"{self.base}/batches: {key[:12]}... unanswered after "
                    f"llm.max_retries={self.cfg.max_retries} resubmissions (batch "
                    f"{batch['id']} {batch.get('status')}{': ' + why if why else ''}); answers "
                    "so far are cached, a rerun resumes from them"
                )
        return missing + lost + refolded + again

    def _refused_system(self, key: str, status: int, text: str) -> bool:
        """Whether this error is the server refusing the system turn the request was sent
        with (:meth:`SystemRole.refused`, as the sync path learns it: from now on every
        request is folded, logged once). A request sent folded is never refused for it."""
        if key in self.sent_folded:
            return False
        sent = json.loads(self.spool.read(key))["body"]["messages"]
        return bool(self.client._system.refused(status, text, sent, self.cfg.base_url))

    def _spent(self, tries: Tries) -> str | None:
        """The reject once a request's failures over every run pass their bound, else None."""
        if tries.unusable > self.client.parse_retries:
            return tries.last  # as the sync path's reject for an unusable answer
        if tries.resent > self.cfg.max_retries:
            return (
                f"no answer after llm.max_retries={self.cfg.max_retries} resubmissions, "
                f"counted over every run (last: {tries.last}); raise llm.max_retries to "
                "try it again"
            )
        return None

    def _settle(self, key: str, line: dict[str, Any]) -> tuple[str, str] | None:
        """One result line: cached or a reject (None), or why it is worth another batch:
        ``(LOST | RESENT | UNUSABLE, reason)``."""
        req = self.todo[key]
        response = line.get("response")
        if not isinstance(response, dict):  # expired, cancelled, ...: no answer
            return LOST, str((line.get("error") or {}).get("code") or "no response")
        status = int(response.get("status_code") or 0)
        body = response.get("body")
        if status != 200:
            text = json.dumps(body, ensure_ascii=False)
            err = parse_error(text, [self.client._secret])
            said = f"HTTP {status}: {err.message or 'no message'}"
            if self._refused_system(key, status, text):
                return FOLD, said
            if status in TRANSPORT_STATUS:
                return RESENT, said
            self.rejects[key] = said
            return None
        self.client.stats.calls += 1
        got = self.client._parse(req, json.dumps(body, ensure_ascii=False))
        self.client._probe(got)
        if got.value is not None:
            model = req.model or self.cfg.model
            entry = {"answer": got.value, "usage": got.usage, "model": model, "served": got.served}
            self.client._store(key, self.displaced.get(key), entry)
            self.live.add(key)
            return None
        if got.reason.startswith("refusal"):  # a refusal is its answer
            self.rejects[key] = got.reason
            return None
        return UNUSABLE, got.reason  # its own budget, as in the sync path

    # --- HTTP -------------------------------------------------------------------------------
    async def _json(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        form: tuple[Path, str] | None = None,
    ) -> dict[str, Any]:
        status, text = await self._raw(method, path, body, form)
        self._check(status, text, path.split("?")[0], method)
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise ServiceError(f"{self.base}{path}: not JSON (HTTP {status})") from None
        if not isinstance(data, dict):
            raise ServiceError(f"{self.base}{path}: not a JSON object (HTTP {status})")
        return data

    async def _download(self, path: str) -> Path:
        """A file's content (``GET path``), streamed to a temp file beside the spool (a
        result file is as large as its answers: not read into memory); the caller removes
        it."""
        fd, name = tempfile.mkstemp(prefix=".spool-", suffix=".tmp", dir=self.spool.directory)
        dest = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                status, text = await self._raw("GET", path, sink=out)
            self._check(status, text, path)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        return dest

    def _check(self, status: int, text: str, path: str, method: str = "GET") -> None:
        if status == 200:
            return
        # the collections themselves missing: an endpoint without the Batch API (vLLM,
        # llama.cpp, Ollama), found at the first upload, before anything is paid for; no
        # list call is needed first, so a server without GET /batches still works
        if status in NO_SUCH_ROUTE and path in ("/files", "/batches"):
            raise ConfigError(
                f"llm.mode=batch: {self.base} has no Batch API ({method} {self.base}{path}: "
                f"HTTP {status}); set llm.mode: sync for this endpoint"
            )
        err = parse_error(text, [self.client._secret])
        said = f": {err.message}" if err.message else ""
        if status in (401, 403):
            raise key_refused(self.base, self.cfg.api_key_env, status, said)
        raise ServiceError(f"{self.base}{path}: HTTP {status}{said} (llm.mode=batch)")

    async def _raw(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        form: tuple[Path, str] | None = None,
        sink: BinaryIO | None = None,
    ) -> tuple[int, str]:
        """One call with the sync path's transport retries (429, 5xx, timeouts); ``form``:
        a file (path, name) uploaded from disk as multipart ``purpose=batch``; ``sink``: a
        200 answer's body is written there (the text returned is then "")."""
        import aiohttp

        url = f"{self.base}{path}"
        tries = 0
        while True:
            wait: float | None = None
            try:
                with contextlib.ExitStack() as files:
                    data = None
                    if form is not None:  # a form is consumed by its send: one per attempt
                        data = aiohttp.FormData()
                        data.add_field("purpose", "batch")
                        data.add_field(
                            "file",
                            files.enter_context(form[0].open("rb")),
                            filename=form[1],
                            content_type="application/jsonl",
                        )
                    async with self.session.request(
                        method, url, json=body, data=data, allow_redirects=False
                    ) as resp:
                        if sink is not None and resp.status == 200:
                            sink.seek(0)
                            sink.truncate()  # what a broken earlier attempt wrote
                            async for block in resp.content.iter_chunked(1 << 16):
                                sink.write(block)
                            return resp.status, ""
                        text = await resp.text(encoding="utf-8", errors="replace")
                        if resp.status not in TRANSPORT_STATUS:
                            return resp.status, text
                        reason, wait = f"HTTP {resp.status}", retry_after_s(resp.headers)
            except (TimeoutError, aiohttp.ClientError) as exc:
                reason = type(exc).__name__
            tries += 1
            if tries > self.cfg.max_retries:
                raise ServiceError(
                    f"{url}: {reason} after llm.max_retries={self.cfg.max_retries} retries; "
                    "check that the endpoint is up (llm.base_url); batches so far are "
                    "recorded, a rerun resumes them"
                )
            self.client.stats.retries += 1
            await asyncio.sleep(backoff_s(tries, wait))


def _batch_errors(batch: dict[str, Any]) -> str:
    """The first of a batch object's ``errors.data`` messages ("" when none)."""
    data = (batch.get("errors") or {}).get("data") or []
    if data and isinstance(data[0], dict):
        return str(data[0].get("message") or data[0].get("code") or "")[:200]
    return ""
