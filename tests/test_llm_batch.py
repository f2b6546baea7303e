"""``llm.mode: batch``: the LLM client through the Batch API of the loopback simulator, and
the queries and synthesize stages in batch mode (kill -9 while polling, expiry, reruns,
costs at batch prices). The simulator's Files and Batches endpoints themselves are in
test_offline_batches.py."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from seedtune_sandbox.demo import SIM_ENV, sim_config
from seedtune_sandbox.sim import SimServer
from support import Workspace, last_line, ranked_rows

from seedtune.core.cache import ResponseCache
from seedtune.core.config import LLMConfig
from seedtune.core.errors import ConfigError
from seedtune.llm import batch
from seedtune.llm.batch import BatchPending
from seedtune.llm.batch_state import BatchState, state_path
from seedtune.llm.client import LLMClient, LLMRequest, request_body, request_key
from seedtune.llm.costs import usage_metrics
from seedtune.tasks.queries import QuestionList

PRICES = {"sim-gpt": {"input": 0.15, "output": 0.60, "batch_input": 0.075, "batch_output": 0.30}}


def _requests(n: int, start: int = 0) -> list[LLMRequest]:
    return [
        LLMRequest(
            id=str(i),
            schema=QuestionList,
            messages=[
                {"role": "user", "content": f'용어: "전세{i}" 에 대한 질문을 3개 작성하세요.'}
            ],
        )
        for i in range(start, start + n)
    ]


@pytest.fixture()
def llm_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SIM_ENV["OPENAI_API_KEY"])


def _client(sim: SimServer, cache: Path, **kw: object) -> LLMClient:
    settings = {"mode": "batch", "batch_poll_s": 0.02, **kw}
    cfg = LLMConfig(base_url=sim.openai_base_url, model="sim-gpt", **settings)
    return LLMClient(cfg, ResponseCache(cache))


def test_batch_answers_equal_sync_answers_and_a_rerun_submits_nothing(
    sim, tmp_path, llm_key
) -> None:
    reqs = _requests(8)
    batched = _client(sim, tmp_path / "batch")
    got = batched.run(reqs)
    synced = _client(sim, tmp_path / "sync", mode="sync").run(reqs)
    assert [o.value for o in got] == [o.value for o in synced]
    assert all(o.value for o in got)
    assert sim.stats()["batch"]["requests"] == 8 and sim.stats()["chat"]["ok"] == 8
    # the same cache keys: the sync cache answers the batch client and the other way round
    assert _client(sim, tmp_path / "sync").run(reqs)[0].value == got[0].value
    again = _client(sim, tmp_path / "batch")
    assert [o.value for o in again.run(reqs)] == [o.value for o in got]
    assert sim.stats()["batch"]["batches"] == 1  # nothing submitted by either rerun
    assert again.stats.cache_hits == 8 and again.stats.calls == 0


def test_only_uncached_requests_are_submitted_and_files_split_at_the_limit(
    sim, tmp_path, llm_key, monkeypatch
) -> None:
    _client(sim, tmp_path / "c", mode="sync").run(_requests(3))
    monkeypatch.setattr(batch, "MAX_REQUESTS", 2)
    client = _client(sim, tmp_path / "c")
    out = client.run(_requests(8))
    assert all(o.value for o in out)
    stats = sim.stats()["batch"]
    assert (stats["requests"], stats["batches"], stats["resent"]) == (5, 3, 0)
    assert (client.stats.batches, client.stats.batch_requests) == (3, 5)


def test_cost_metrics_are_at_batch_prices(sim, tmp_path, llm_key) -> None:
    client = _client(sim, tmp_path / "c")
    client.run(_requests(4))
    m = usage_metrics("sim-gpt", client.stats, PRICES)
    want = (client.stats.prompt_tokens * 0.075 + client.stats.completion_tokens * 0.30) / 1e6
    assert m["cost_usd"] == pytest.approx(want, abs=1e-6) and m["llm_mode"] == "batch"
    assert m["batches"] == 1 and m["batch_requests"] == 4
    # a model priced for sync calls only stays unpriced: a discount is never guessed
    sync_only = {"sim-gpt": {"input": 0.15, "output": 0.60}}
    assert usage_metrics("sim-gpt", client.stats, sync_only)["cost_usd"] is None


def test_an_expired_batch_resubmits_only_the_missing_requests(sim, tmp_path, llm_key) -> None:
    sim.batch_store.expire_first, sim.batch_store.expire_share = 1, 0.5
    out = _client(sim, tmp_path / "c").run(_requests(10))
    assert all(o.value for o in out)
    stats = sim.stats()["batch"]
    # 5 answered before the window closed; only the other 5 went out again
    assert (stats["batches"], stats["requests"], stats["resent"]) == (2, 15, 5)
    assert stats["status"] == {"expired": 1, "completed": 1}


def test_failed_batch_and_transport_errors_go_again_item_errors_are_rejects(
    sim, tmp_path, llm_key
) -> None:
    store = sim.batch_store
    store.fail_first, store.error_rate, store.reject_rate = 1, 0.2, 0.1
    out = _client(sim, tmp_path / "c", max_retries=8).run(_requests(30))
    rejects = [o for o in out if o.reject]
    assert rejects and all(o.reject.startswith("HTTP 400") for o in rejects)
    assert all(o.value or o.reject for o in out)
    stats = sim.stats()["batch"]
    assert stats["status"]["failed"] == 1 and stats["batches"] >= 3
    # every rejected item was sent as often as it failed, no more: nothing answered twice
    store.error_rate = store.reject_rate = 0.0
    before = sim.stats()["batch"]["requests"]
    _client(sim, tmp_path / "c").run(_requests(30))
    assert sim.stats()["batch"]["requests"] - before == len(rejects)  # rejects are asked again


def _until_batches_done(sim: SimServer) -> None:
    deadline = time.monotonic() + 30  # only against a hang
    while set(sim.stats()["batch"]["status"]) - {"completed"} and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_request_failing_in_every_batch_is_a_reject_after_max_retries_over_reruns(
    sim, tmp_path, llm_key
) -> None:
    """Each run stops at llm.batch_wait_s after one round: the bound holds across reruns."""
    reqs = _requests(3)
    bad = request_key(LLMConfig(model="sim-gpt", mode="batch"), reqs[0])
    sim.batch_store.fail_ids = {bad}
    outcomes, runs = None, 0
    while outcomes is None and runs < 8:
        runs += 1
        try:
            outcomes = _client(sim, tmp_path / "c", max_retries=2, batch_wait_s=0).run(reqs)
        except BatchPending:
            _until_batches_done(sim)
    assert outcomes is not None and runs == 4  # sent in runs 1-3, rejected in run 4
    assert [bool(o.value) for o in outcomes] == [False, True, True]
    assert "llm.max_retries=2" in outcomes[0].reject and "HTTP 500" in outcomes[0].reject
    assert sim.batch_store.submitted[bad] == 3  # the first try and 2 resubmissions
    # a rerun keeps it a reject without sending it again
    again = _client(sim, tmp_path / "c", max_retries=2).run(reqs)
    assert again[0].reject == outcomes[0].reject and sim.batch_store.submitted[bad] == 3
    # more retries allowed: it goes again (and is answered once the server is fine)
    sim.batch_store.fail_ids = set()
    assert _client(sim, tmp_path / "c", max_retries=3).run(reqs)[0].value
    assert not BatchState().tries(sim.openai_base_url, [bad])  # answered: counts forgotten


@pytest.mark.parametrize("status", (500, 400))
def test_a_server_refusing_the_system_role_is_sent_folded_requests_in_the_next_batch(
    sim, tmp_path, llm_key, caplog, status: int
) -> None:
    caplog.set_level(logging.WARNING)
    sim.batch_store.refuse_system = status
    system = {"role": "system", "content": "당신은 부동산 전문가입니다. JSON으로 답하세요."}
    reqs = [replace(r, messages=[system, *r.messages]) for r in _requests(4)]
    client = _client(sim, tmp_path / "c")
    out = client.run(reqs)
    assert all(o.value for o in out)
    stats = sim.stats()["batch"]
    assert (stats["batches"], stats["requests"]) == (2, 8)  # refused once, then folded
    folded = list(sim.batch_store.batches.values())[-1].lines
    assert [line["body"] for line in folded] == [
        request_body(client.cfg, r, folded=True) for r in reqs
    ]  # what the sync path sends once it folds
    assert folded[0]["body"]["messages"][0]["content"].startswith(system["content"] + "\n\n용어:")
    assert sum("refuses system messages" in r.message for r in caplog.records) == 1
    # the same cache keys as the sync path's folded requests: all found, nothing asked
    synced = _client(sim, tmp_path / "c", mode="sync", system_role="fold")
    assert [o.value for o in synced.run(reqs)] == [o.value for o in out]
    assert synced.stats.calls == 0 and sim.stats()["chat"]["ok"] == 0


def test_out_of_wait_stops_in_one_line_and_the_rerun_resumes(sim, tmp_path, llm_key) -> None:
    sim.batch_store.hold = True
    with pytest.raises(BatchPending, match=r"batch batch_\w+ in progress .*rerun `dvc repro`"):
        list(_client(sim, tmp_path / "c", batch_wait_s=0).stream(_requests(6)))
    rec = BatchState().records()
    assert [(r.total, r.collected) for r in rec] == [(6, False)]
    assert rec[0].status in ("validating", "in_progress")
    sim.batch_store.hold = False
    out = _client(sim, tmp_path / "c").run(_requests(6))
    assert all(o.value for o in out)
    assert sim.stats()["batch"]["requests"] == 6  # the open batch was polled, not resent
    assert BatchState().records()[0].collected


def test_input_lines_are_spooled_to_disk_and_removed_and_a_killed_runs_spool_is_never_read(
    sim, tmp_path, llm_key
) -> None:
    spool_dir = state_path().parent / batch.SPOOL_DIR
    spool_dir.mkdir(parents=True)
    # a kill -9's leftover: a line that would be a paid request if anything read it
    left = spool_dir / ".spool-killed.tmp"
    left.write_bytes(batch._input_line("0" * 64, {"model": "sim-gpt", "messages": []}))
    old = spool_dir / ".spool-old.tmp"
    old.write_bytes(b"{}")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    sim.batch_store.hold = True
    with pytest.raises(BatchPending):
        list(_client(sim, tmp_path / "c", batch_wait_s=0).stream(iter(_requests(5))))
    assert sorted(p.name for p in spool_dir.iterdir()) == [left.name]  # own spool gone, old swept
    uploaded = [f for f in sim.batch_store.files.values() if f.purpose == "batch"]
    assert [f.data.count(b"\n") for f in uploaded] == [5] and b"0" * 64 not in uploaded[0].data
    sim.batch_store.hold = False
    out = _client(sim, tmp_path / "c").run(_requests(5))
    assert all(o.value for o in out) and sim.stats()["batch"]["distinct"] == 5
    assert sorted(p.name for p in spool_dir.iterdir()) == [left.name]


def test_a_batch_created_but_not_recorded_is_found_by_its_input_file(
    sim, tmp_path, llm_key
) -> None:
    """kill -9 between the API creating a batch and its id being written: the pending record
    (written before the create call) finds it in the endpoint's batch list."""
    client = _client(sim, tmp_path / "c")
    reqs = _requests(4)
    lines = [
        json.dumps(
            {
                "custom_id": request_key(client.cfg, r),
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": client.body_of(r),
            },
            ensure_ascii=False,
        )
        + "\n"
        for r in reqs
    ]
    store = sim.batch_store
    file = store._add_file("in.jsonl", "batch", "".join(lines).encode("utf-8"))
    state = BatchState()
    state.intend(file.id, "llm", client.cfg.base_url, [request_key(client.cfg, r) for r in reqs])
    store.create(
        {"input_file_id": file.id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    )
    assert all(o.value for o in client.run(reqs))
    assert sim.stats()["batch"]["requests"] == 4 and client.stats.batches == 0
    assert [r.id.startswith("batch_") for r in state.records()] == [True]


def test_a_server_without_the_batch_list_still_answers_every_request(
    sim, tmp_path, llm_key
) -> None:
    """The list route (GET /v1/batches) is only needed to adopt a batch a kill left
    unrecorded: without it, upload, create, retrieve and the result files are enough."""
    sim.batch_store.no_list = True
    client = _client(sim, tmp_path / "c")
    assert all(o.value for o in client.run(_requests(5)))
    assert sim.stats()["batch"]["requests"] == 5 and client.stats.batches == 1
    again = _client(sim, tmp_path / "c")
    assert all(o.value for o in again.run(_requests(5)))  # cached: nothing submitted
    assert sim.stats()["batch"]["requests"] == 5 and again.stats.batches == 0


def test_an_endpoint_without_batches_fails_in_one_line_naming_llm_mode(tmp_path, llm_key) -> None:
    with SimServer(sim_config(batches=False)) as sim:
        with pytest.raises(ConfigError, match=r"^llm.mode=batch: .* has no Batch API .*HTTP 404"):
            _client(sim, tmp_path / "c").run(_requests(2))
        assert sim.stats()["chat"]["ok"] == 0


def test_a_cached_run_needs_no_key_and_no_batch_api(sim, tmp_path, llm_key, monkeypatch) -> None:
    _client(sim, tmp_path / "c", mode="sync").run(_requests(3))
    monkeypatch.delenv("OPENAI_API_KEY")
    with SimServer(sim_config(batches=False)) as other:
        assert all(o.value for o in _client(other, tmp_path / "c").run(_requests(3)))


# --------------------------------------------------------------------------- stages


def _queries_ws(ws: Workspace, sim: SimServer, **llm: object) -> Workspace:
    ws.params(
        llm={
            "base_url": sim.openai_base_url,
            "model": "sim-gpt",
            "mode": "batch",
            "batch_poll_s": 0.05,
            **llm,
        },
        queries={"per_seed": 3, "sources": ["llm"]},
    )
    ws.write("data/seed_words.txt", "전세\n청약\n월세\n")
    return ws


def _wait_for_recorded_batch(proc: subprocess.Popen[bytes]) -> None:
    """Until the stage has recorded a created batch (a deadline only against a hang)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if state_path().exists():
            try:
                if any(r.id.startswith("batch_") for r in BatchState().records()):
                    return
            except sqlite3.Error:
                pass
        time.sleep(0.05)
    raise AssertionError(f"no batch recorded (stage exit status {proc.poll()})")


def test_queries_killed_while_polling_resubmits_nothing(sim, workspace) -> None:
    ws = _queries_ws(workspace, sim)
    sim.batch_store.hold = True
    proc = ws.popen("queries", SIM_ENV)
    _wait_for_recorded_batch(proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (ws.path / "data/questions.jsonl").exists()
    sim.batch_store.hold = False
    done = ws.run("queries", SIM_ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    stats = sim.stats()["batch"]
    assert (stats["batches"], stats["requests"], stats["resent"]) == (1, 3, 0)
    assert ws.rows("data/questions.jsonl")
    m = ws.metrics("queries")
    assert m["llm_mode"] == "batch" and m["calls"] == 3 and m["batches"] == 0
    want = (m["prompt_tokens"] * 0.075 + m["completion_tokens"] * 0.30) / 1e6
    assert m["cost_usd"] == pytest.approx(want, abs=1e-6)  # sim-gpt's batch prices
    again = ws.run("queries", SIM_ENV)
    assert again.returncode == 0 and sim.stats()["batch"]["requests"] == 3


def test_queries_out_of_wait_exits_non_zero_with_one_line_and_no_output(sim, workspace) -> None:
    ws = _queries_ws(workspace, sim, batch_wait_s=0)
    sim.batch_store.hold = True
    proc = ws.run("queries", SIM_ENV)
    assert proc.returncode != 0
    line = last_line(proc.stderr)
    assert line.startswith("queries: error: queries: batch batch_") and "rerun `dvc repro`" in line
    assert not (ws.path / "data/questions.jsonl").exists()


def test_synthesize_in_batch_mode_writes_what_sync_writes(sim, workspace, tmp_path) -> None:
    from test_synthesize import question_rows

    rows = {}
    for mode in ("sync", "batch"):
        ws = Workspace(tmp_path / mode)
        ws.params(
            llm={
                "base_url": sim.openai_base_url,
                "model": "sim-gpt",
                "mode": mode,
                "batch_poll_s": 0.05,
            },
        )
        ws.write("data/ranked.jsonl", ranked_rows(10))
        ws.write("data/questions.jsonl", question_rows(10))
        proc = ws.run("synthesize", SIM_ENV)
        assert proc.returncode == 0, proc.stderr[-2000:]
        rows[mode] = ws.rows("data/instructions.jsonl")
    assert rows["batch"] == rows["sync"]
    m = ws.metrics("synthesize")
    assert m["llm_mode"] == "batch" and m["batch_requests"] == 10 and m["priced"]
    assert sim.stats()["batch"]["requests"] == 10


# --------------------------------------------------------------------------- commands


def _seedtune(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seedtune.cli", *args],
        cwd=ws.path,
        env=ws.env(SIM_ENV),
        text=True,
        capture_output=True,
    )


def test_estimate_shows_sync_and_batch_cost_side_by_side(sim, workspace) -> None:
    ws = _queries_ws(workspace, sim)
    ws.write("data/ranked.jsonl", ranked_rows(5))
    proc = _seedtune(ws, "estimate", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["stage"]: r for r in json.loads(proc.stdout)["llm"]}
    for stage in ("queries", "synthesize"):
        assert rows[stage]["batch_usd"] == pytest.approx(rows[stage]["usd"] / 2, rel=1e-6)
    table = _seedtune(ws, "estimate").stdout
    assert "batch USD" in table.splitlines()[0]


def test_batches_command_lists_and_cancels(sim, workspace) -> None:
    ws = _queries_ws(workspace, sim, batch_wait_s=0)
    sim.batch_store.hold = True
    assert ws.run("queries", SIM_ENV).returncode != 0  # out of wait: the batch stays open
    (rec,) = BatchState().records()
    listed = _seedtune(ws, "batches")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(rec.id))
    assert row.split()[1:3] == ["queries", rec.status] and "0/0/3" in row
    cancelled = _seedtune(ws, "batches", "--cancel", rec.id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"{rec.id}: cancelling"
    assert sim.stats()["batch"]["status"] == {"cancelled": 1}
    # the next run reads the cancelled batch and sends its (unanswered) requests again, once
    sim.batch_store.hold = False
    done = _queries_ws(workspace, sim).run("queries", SIM_ENV)  # waiting as long as it takes
    assert done.returncode == 0, done.stderr[-2000:]
    stats = sim.stats()["batch"]
    assert (stats["batches"], stats["requests"], stats["resent"]) == (2, 6, 3)
    assert ws.rows("data/questions.jsonl")
    missing = _seedtune(ws, "batches", "--cancel", "batch_nope")
    assert missing.returncode != 0 and "no such batch" in last_line(missing.stderr)


def test_cancel_retries_an_unavailable_endpoint_and_names_the_batch_when_it_gives_up(
    sim, workspace
) -> None:
    ws = _queries_ws(workspace, sim, batch_wait_s=0)
    sim.batch_store.hold = True
    assert ws.run("queries", SIM_ENV).returncode != 0  # out of wait: the batch stays open
    (rec,) = BatchState().records()
    sim.batch_store.unavailable = 2  # two 503s, then the endpoint is back
    cancelled = _seedtune(ws, "batches", "--cancel", rec.id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"{rec.id}: cancelling"
    assert sim.batch_store.unavailable == 0 and sim.stats()["batch"]["status"] == {"cancelled": 1}
    # down for good: one line naming the batch, after llm.max_retries retries
    sim.batch_store.unavailable = 100
    down = subprocess.run(
        [sys.executable, "-m", "seedtune.cli", "batches", "--cancel", rec.id],
        cwd=ws.path,
        env=ws.env({**SIM_ENV, "SEEDTUNE_LLM_MAX_RETRIES": "1"}),
        text=True,
        capture_output=True,
    )
    line = last_line(down.stderr)
    assert down.returncode != 0 and rec.id in line and "HTTP 503" in line
    assert "llm.max_retries=1" in line and sim.batch_store.unavailable == 98
