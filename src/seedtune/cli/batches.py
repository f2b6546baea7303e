"""``seedtune batches``: the Batch API batches this machine submitted (``llm.mode: batch``).

Lists each batch from the machine's record (:mod:`seedtune.llm.batch_state`): id, stage,
status and request counts as last seen, age, and whether its answers are collected into
the stage's cache. ``--cancel ID`` asks the endpoint to cancel a batch (``POST
{base_url}/batches/{id}/cancel``, with the key named by ``llm.api_key_env``); its answered
requests are still read by the stage's next run and the rest are submitted again then.
A cancel that meets a transport error, a 429 or a 5xx is tried again with backoff, up to
``llm.max_retries`` times.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from seedtune.core.config import LLMConfig
from seedtune.core.credentials import get_secret
from seedtune.core.errors import ConfigError, ServiceError
from seedtune.core.machine import load_machine
from seedtune.core.retry import backoff_s, retry_after_s
from seedtune.llm.batch_state import BatchRecord, BatchState
from seedtune.llm.errors import one_line, parse_error, scrub


def age(seconds: float) -> str:
    """``seconds`` as the largest whole unit: 45s, 12m, 3h, 2d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def format_rows(records: list[BatchRecord], now: float | None = None) -> str:
    """The batches as a table, newest last."""
    now = time.time() if now is None else now
    lines = [f"{'id':34s} {'stage':12s} {'status':11s} {'done/failed/total':>17s} {'age':>5s}"]
    for r in records:
        status = r.status + ("" if r.collected or r.status not in ("completed",) else "*")
        counts = f"{r.completed}/{r.failed}/{r.total}"
        lines.append(
            f"{r.id:34s} {r.stage:12s} {status:11s} {counts:>17s} {age(now - r.created_at):>5s}"
        )
    if any(not r.collected for r in records):
        lines.append("(not collected yet: the stage's next run reads them; * = ready)")
    return "\n".join(lines)


#: Answers worth another try (the rest, e.g. 409 for a batch already done, are final).
RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def cancel(
    record: BatchRecord, machine: dict[str, Any], sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """Ask ``record``'s endpoint to cancel it; the batch object it answers with.

    Transport errors, timeouts, 429 and 5xx are tried again with backoff (honouring
    Retry-After), up to ``llm.max_retries`` times; then, or on any other error, one line
    naming the batch (:class:`ServiceError`)."""
    # the machine's llm settings as the stages read them: defaults, names and the rules
    cfg = LLMConfig.model_validate(machine.get("llm") or {})
    key_env, retries = cfg.api_key_env, cfg.max_retries
    url = f"{record.base_url.rstrip('/')}/batches/{record.id}/cancel"
    secret = get_secret(key_env, record.base_url) if key_env else ""
    what = f"seedtune batches --cancel {record.id}"
    tries = 0
    while True:
        req = urllib.request.Request(url, data=b"", method="POST")
        if secret:
            req.add_header("Authorization", f"Bearer {secret}")
        wait: float | None = None
        try:
            with urllib.request.urlopen(req, timeout=cfg.timeout_s) as resp:
                return dict(json.loads(resp.read().decode("utf-8")))
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")
            said = one_line(parse_error(text, [secret]).message or scrub(text, [secret]), 200)
            if exc.code not in RETRY_STATUS:
                raise ServiceError(f"{what}: {url}: HTTP {exc.code}: {said}") from None
            reason, wait = f"HTTP {exc.code} ({said})", retry_after_s(exc.headers)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = " ".join(str(getattr(exc, "reason", exc) or type(exc).__name__).split())
        except ValueError:  # a 200 that is not JSON: the cancel may have gone through
            raise ServiceError(f"{what}: {url} answered with no batch object") from None
        tries += 1
        if tries > retries:
            raise ServiceError(
                f"{what}: {url}: {reason} after llm.max_retries={retries} retries; the batch "
                "goes on until a cancel gets through: check llm.base_url and try again"
            )
        sleep(backoff_s(tries, wait))


def main(argv: list[str] | None = None) -> int:
    """List this machine's batches, or cancel one."""
    ap = argparse.ArgumentParser(prog="seedtune batches", description=__doc__.splitlines()[0])
    ap.add_argument("--cancel", metavar="ID", help="cancel this batch at its endpoint")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    state = BatchState()
    try:
        records = state.records()
        if args.cancel:
            found = [r for r in records if r.id == args.cancel]
            if not found:
                raise ConfigError(f"seedtune batches --cancel {args.cancel}: no such batch here")
            batch = cancel(found[0], load_machine())
            state.seen(batch)
            print(f"{args.cancel}: {batch.get('status')}")
            return 0
    finally:
        state.close()
    if args.json:
        print(json.dumps([r.__dict__ for r in records], indent=2))
    elif not records:
        print(f"no batches recorded in {state.path}")
    else:
        print(format_rows(records))
    return 0
