"""``seedtune batches``: the Batch API batches this machine submitted (``llm.mode: batch``).

Lists each batch from the machine's record (:mod:`seedtune.llm.batch_state`): id, stage,
status and request counts as last seen, age, and whether its answers are collected into
the stage's cache. ``--cancel ID`` asks the endpoint to cancel a batch (``POST
{base_url}/batches/{id}/cancel``, with the key named by ``llm.api_key_env``); its answered
requests are still read by the stage's next run and the rest are submitted again then.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from typing import Any

from seedtune.core.credentials import get_secret
from seedtune.core.errors import ConfigError, ServiceError
from seedtune.core.machine import load_machine
from seedtune.llm.batch_state import BatchRecord, BatchState


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


def cancel(record: BatchRecord, machine: dict[str, Any]) -> dict[str, Any]:
    """Ask ``record``'s endpoint to cancel it; the batch object it answers with."""
    llm = machine.get("llm") or {}
    key_env = llm.get("api_key_env", "OPENAI_API_KEY")
    req = urllib.request.Request(
        f"{record.base_url.rstrip('/')}/batches/{record.id}/cancel", data=b"", method="POST"
    )
    if key_env:
        req.add_header("Authorization", f"Bearer {get_secret(key_env, record.base_url)}")
    try:
        with urllib.request.urlopen(req, timeout=float(llm.get("timeout_s") or 60)) as resp:
            return json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        said = exc.read().decode("utf-8", "replace")[:200]
        raise ServiceError(f"{req.full_url}: HTTP {exc.code}: {said}") from None
    except (urllib.error.URLError, TimeoutError) as exc:
        raise ServiceError(f"{req.full_url}: {exc}; check llm.base_url") from None


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
