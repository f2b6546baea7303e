"""The simulator's Files and Batch API (``/v1/files``, ``/v1/batches``), read through the real
``openai`` SDK so its shapes are the ones the SDK parses (the API reference's)."""

from __future__ import annotations

import json
import time

import openai
import pytest
from seedtune_sandbox.demo import SIM_ENV, sim_config
from seedtune_sandbox.sim import SimServer
from seedtune_sandbox.sim.batches import TERMINAL


def _lines(n: int, model: str = "gpt-4o-mini") -> bytes:
    rows = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": f"전세 {i} 질문"}]},
        }
        for i in range(n)
    ]
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _sdk(sim: SimServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.openai_base_url, api_key=SIM_ENV["OPENAI_API_KEY"])


def _until_done(client: openai.OpenAI, batch_id: str):
    deadline = time.monotonic() + 30  # only against a hang
    batch = client.batches.retrieve(batch_id)
    while batch.status not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.02)
        batch = client.batches.retrieve(batch_id)
    return batch


def test_a_batch_through_the_openai_sdk(sim) -> None:
    client = _sdk(sim)
    file = client.files.create(file=("in.jsonl", _lines(3)), purpose="batch")
    assert (file.object, file.purpose, file.bytes) == ("file", "batch", len(_lines(3)))
    assert client.files.retrieve(file.id).filename == "in.jsonl"
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "validating" and batch.request_counts.total == 3
    done = _until_done(client, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 3
    assert done.error_file_id is None and done.completed_at is not None
    out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert sorted(o["custom_id"] for o in out) == ["r0", "r1", "r2"]
    first = out[0]
    assert first["error"] is None and first["response"]["status_code"] == 200
    assert first["response"]["body"]["object"] == "chat.completion"
    assert [b.id for b in client.batches.list(limit=5)] == [batch.id]


def test_expiry_answers_part_and_writes_batch_expired_errors(sim) -> None:
    sim.batch_store.expire_first, sim.batch_store.expire_share = 1, 0.5
    client = _sdk(sim)
    file = client.files.create(file=("in.jsonl", _lines(4)), purpose="batch")
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = _until_done(client, batch.id)
    assert done.status == "expired" and done.request_counts.completed == 2
    errors = [json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()]
    assert [e["error"]["code"] for e in errors] == ["batch_expired"] * 2
    assert all(e["response"] is None for e in errors)


def test_per_request_errors_go_to_the_error_file(sim) -> None:
    sim.batch_store.error_rate = 1.0
    client = _sdk(sim)
    file = client.files.create(file=("in.jsonl", _lines(2)), purpose="batch")
    done = _until_done(
        client,
        client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id,
    )
    assert done.status == "completed" and done.output_file_id is None
    errors = [json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()]
    assert {e["response"]["status_code"] for e in errors} == {500}
    assert done.request_counts.failed == 2


def test_a_bad_input_file_fails_the_batch_with_errors(sim) -> None:
    client = _sdk(sim)
    mixed = _lines(1) + _lines(1, model="gpt-4o").replace(b'"r0"', b'"r9"')
    file = client.files.create(file=("in.jsonl", mixed), purpose="batch")
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = _until_done(client, batch.id)
    assert done.status == "failed" and done.errors.data[0].code == "mismatched_model"


def test_cancel_and_unknown_ids(sim) -> None:
    sim.batch_store.hold = True
    client = _sdk(sim)
    file = client.files.create(file=("in.jsonl", _lines(2)), purpose="batch")
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert client.batches.cancel(batch.id).status == "cancelling"
    assert client.batches.retrieve(batch.id).status == "cancelled"
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")
    with pytest.raises(openai.NotFoundError):
        client.files.content("file-nope")


def test_batches_can_be_switched_off_like_a_server_without_them() -> None:
    with SimServer(sim_config(batches=False)) as sim:
        with pytest.raises(openai.NotFoundError):
            _sdk(sim).batches.list()
