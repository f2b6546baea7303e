"""The LLM client against servers that differ from OpenAI: structured output by capability
(llm.structured_output) and its first-call probe, system messages a chat template refuses
(llm.system_role, with the real Gemma template), the model an answer was served as
(recorded, warned about, priced, and keeping one backend's answers from another's), and
llm.service_tier."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from seedtune_sandbox.sim import openai_api
from support import ROOT, last_line

from seedtune.core.cache import ResponseCache
from seedtune.core.config import LLMConfig
from seedtune.core.errors import ConfigError
from seedtune.llm.client import LLMClient, LLMRequest, request_body, request_key
from seedtune.llm.costs import usage_metrics
from seedtune.tasks.queries import QuestionList

PRICES = yaml.safe_load((ROOT / "conf/prices/openai.yaml").read_text(encoding="utf-8"))
MODES = ("json_schema", "json_object_schema", "json_object", "none")
Answer = Callable[[dict[str, Any]], tuple[int, Any]]


def _requests(n: int, system: bool = True) -> list[LLMRequest]:
    return [
        LLMRequest(
            id=str(i),
            schema=QuestionList,
            messages=[
                *(
                    [
                        {
                            "role": "system",
                            "content": "당신은 부동산 전문가입니다. JSON으로 답하세요.",
                        }
                    ]
                    if system
                    else []
                ),
                {
                    "role": "user",
                    "content": f'용어: "전세{i}" 에 대한 질문을 정확히 3개 작성하세요.',
                },
            ],
        )
        for i in range(n)
    ]


def sim_answer(served: str | None = None) -> Answer:
    """The simulator's answer, as a server that answers as ``served`` (None: as asked)."""

    def answer(body: dict[str, Any]) -> tuple[int, Any]:
        try:
            out = openai_api.chat_completion(body)
        except openai_api.ChatError as exc:
            return exc.status, {"error": {"message": str(exc)}}
        if served is not None:
            out["model"] = served
        return 200, out

    return answer


@contextmanager
def loopback(
    answer: Answer, models: list[str] | None = None
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An OpenAI-style server on loopback: (its base URL, the chat bodies it was sent);
    ``GET /v1/models`` lists ``models`` (None: no such route, as on some servers)."""
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            if models is None or self.path.rstrip("/") != "/v1/models":
                self.send_error(404)
                return
            data = json.dumps(
                {
                    "object": "list",
                    "data": [{"id": m, "object": "model", "owned_by": "me"} for m in models],
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            bodies.append(body)
            status, payload = answer(body)
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", bodies
    finally:
        server.shutdown()
        server.server_close()


def _client(url: str, cache: Path, **kw: Any) -> LLMClient:
    cfg = {"model": "gpt-4o-mini", "api_key_env": None, "max_retries": 1, **kw}
    return LLMClient(LLMConfig(base_url=url, **cfg), ResponseCache(cache))


def _chat(
    messages: list[dict[str, str]], content: str, served: str = "gpt-4o-mini"
) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": served,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


# --------------------------------------------------------------------------- bodies


@pytest.mark.parametrize("mode", MODES)
def test_each_structured_output_mode_sends_its_form(mode: str) -> None:
    cfg = LLMConfig(structured_output=mode, system_role="keep")
    (req,) = _requests(1)
    body = request_body(cfg, req)
    schema = QuestionList.model_json_schema()
    expected = {
        "json_schema": {
            "type": "json_schema",
            "json_schema": {"name": "QuestionList", "schema": schema, "strict": True},
        },
        "json_object_schema": {"type": "json_object", "schema": schema},
        "json_object": {"type": "json_object"},
        "none": None,
    }[mode]
    assert body.get("response_format") == expected
    system = body["messages"][0]["content"]
    if mode in ("json_object", "none"):  # the schema is told in the prompt instead
        assert (
            "JSON" in system
            and json.dumps(schema["properties"], separators=(",", ":"), ensure_ascii=False)[:20]
            in system
        )
    else:
        assert body["messages"] == req.messages


@pytest.mark.parametrize("mode", ("json_schema", "json_object", "none"))
def test_bodies_are_valid_openai_requests(mode: str) -> None:
    openai = pytest.importorskip("openai")
    from openai.lib._parsing._completions import type_to_response_format_param
    from openai.types.chat import completion_create_params
    from pydantic import TypeAdapter

    cfg = LLMConfig(structured_output=mode, service_tier="flex")
    body = request_body(cfg, _requests(1)[0])
    TypeAdapter(completion_create_params.CompletionCreateParamsNonStreaming).validate_python(
        body, strict=False
    )
    assert body["service_tier"] == "flex" and openai
    if mode == "json_schema":  # exactly as the SDK makes a strict schema of the class
        assert body["response_format"] == type_to_response_format_param(QuestionList)


def test_service_tier_is_sent_only_when_set() -> None:
    assert "service_tier" not in request_body(LLMConfig(), _requests(1)[0])


def test_cache_key_follows_what_the_model_sees() -> None:
    (req,) = _requests(1)
    key = {m: request_key(LLMConfig(structured_output=m), req) for m in MODES}
    # the schema enforced either way: one key; prompted modes: other answers, other keys
    assert key["json_schema"] == key["json_object_schema"] == request_key(LLMConfig(), req)
    assert len({key["json_schema"], key["json_object"], key["none"]}) == 3
    assert (
        request_key(LLMConfig(system_role="fold", service_tier="flex"), req) == key["json_schema"]
    )


@pytest.mark.parametrize("mode", ("json_schema", "json_object_schema", "json_object"))
def test_each_mode_answers_through_a_server_that_takes_it(tmp_path, mode: str) -> None:
    with loopback(sim_answer()) as (url, bodies):
        outcomes = _client(url, tmp_path / "c", structured_output=mode).run(_requests(3))
    assert all(o.value and o.value["questions"] for o in outcomes), outcomes
    assert len(bodies) == 3


# --------------------------------------------------------------------------- probe


def _ignores_schema(body: dict[str, Any]) -> tuple[int, Any]:
    """transformers serve: 200, response_format ignored, the model's prose."""
    return 200, _chat(body["messages"], "전세 계약은 등기부등본을 먼저 확인해야 합니다. 그리고…")


def test_a_server_ignoring_the_schema_stops_at_the_first_answers(tmp_path) -> None:
    with loopback(_ignores_schema) as (url, bodies):
        with pytest.raises(ConfigError) as err:
            _client(url, tmp_path / "c", concurrency=1).run(_requests(20))
    line = str(err.value)
    assert "\n" not in line and "answered without applying the JSON schema" in line
    assert "llm.structured_output: json_object or none" in line and "전세 계약은" in line
    assert len(bodies) == 3  # the probe's answers, not one per item


def test_the_probe_is_off_in_prompted_modes_and_after_a_good_answer(tmp_path) -> None:
    with loopback(_ignores_schema) as (url, _):
        outcomes = _client(url, tmp_path / "a", structured_output="none").run(_requests(2))
    assert all(o.reject and o.reject.startswith("invalid answer") for o in outcomes)
    good = sim_answer()
    state = {"n": 0}

    def first_good(body: dict[str, Any]) -> tuple[int, Any]:
        state["n"] += 1
        return good(body) if state["n"] == 1 else _ignores_schema(body)

    with loopback(first_good) as (url, _):
        outcomes = _client(url, tmp_path / "b", concurrency=1).run(_requests(3))
    assert outcomes[0].value and all(o.reject for o in outcomes[1:])  # rejects, as always


def test_cached_answers_are_not_probes(tmp_path) -> None:
    with loopback(sim_answer()) as (url, _):
        _client(url, tmp_path / "c").run(_requests(2))
    with loopback(_ignores_schema) as (url, bodies):
        # the cached two prove nothing about this server: its first answers still probe
        with pytest.raises(ConfigError, match="without applying the JSON schema"):
            _client(url, tmp_path / "c", concurrency=1).run(_requests(3))
    assert len(bodies) == 3


def test_the_stage_stops_with_one_line_naming_the_setting(workspace) -> None:
    with loopback(_ignores_schema) as (url, _):
        ws = workspace.params(
            llm={"base_url": url, "model": "tiny", "api_key_env": None},
            queries={"per_seed": 3, "sources": ["llm"]},
        )
        ws.write("data/seed_words.txt", "전세\n청약\n")
        proc = ws.run("queries")
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = last_line(proc.stderr)
    assert line.startswith("queries: error:") and "llm.structured_output" in line


# --------------------------------------------------------------------------- system role


def _refuses_system(inner: Answer, status: int = 500) -> Answer:
    def answer(body: dict[str, Any]) -> tuple[int, Any]:
        if any(m["role"] == "system" for m in body["messages"]):
            return status, {
                "error": {"message": "System role not supported", "type": "server_error"}
            }
        return inner(body)

    return answer


@pytest.mark.parametrize("status", (500, 400))
def test_a_refused_system_message_is_folded_once_and_then_up_front(
    tmp_path, caplog, status: int
) -> None:
    caplog.set_level(logging.WARNING)
    with loopback(_refuses_system(sim_answer(), status)) as (url, bodies):
        client = _client(url, tmp_path / "c", concurrency=1, model="tiny")
        outcomes = client.run(_requests(4))
    assert all(o.value for o in outcomes)
    assert len(bodies) == 5 and client.stats.retries == 0  # one refusal, no outage retries
    first_user = bodies[1]["messages"][0]
    assert first_user["role"] == "user" and first_user["content"].startswith(
        "당신은 부동산 전문가입니다. JSON으로 답하세요.\n\n용어:"
    )
    assert sum("refuses system messages" in r.message for r in caplog.records) == 1
    # the key is the logical request's: a server that takes the system role hits the cache
    with loopback(sim_answer()) as (url, again):
        assert all(
            o.value
            for o in _client(url, tmp_path / "c", model="tiny", system_role="keep").run(
                _requests(4)
            )
        )
    assert again == []


def test_system_role_keep_and_fold(tmp_path) -> None:
    with loopback(_refuses_system(sim_answer(), 400)) as (url, bodies):
        # kept as it is, the refusal is the stage's one line, naming the setting that folds
        with pytest.raises(ConfigError, match=r"System role not supported.*llm.system_role"):
            _client(url, tmp_path / "a", system_role="keep").run(_requests(1))
        n = len(bodies)
        assert _client(url, tmp_path / "b", system_role="fold").run(_requests(2))[0].value
        assert len(bodies) == n + 2  # folded up front: no refusal
    assert (
        request_body(LLMConfig(model="google/gemma-2-2b-it"), _requests(1)[0])["messages"][0][
            "role"
        ]
        == "user"
    )  # auto: Gemma up front


def test_the_real_gemma_template_behind_a_server(tmp_path, tiny_models) -> None:
    """A server that renders every conversation with the tiny Gemma's own chat template
    (which raises "System role not supported") and answers 500 with the template's error."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_models.gemma))
    inner = sim_answer(served="tiny-gemma")
    prompts: list[str] = []

    def render(body: dict[str, Any]) -> tuple[int, Any]:
        try:
            prompts.append(
                tokenizer.apply_chat_template(
                    body["messages"], tokenize=False, add_generation_prompt=True
                )
            )
        except Exception as exc:  # jinja2's TemplateError, as transformers raises it
            return 500, {"error": {"message": str(exc), "type": "server_error"}}
        return inner(body)

    with loopback(render) as (url, bodies):
        outcomes = _client(url, tmp_path / "c", model="tiny-model", concurrency=1).run(_requests(2))
    assert all(o.value for o in outcomes) and len(bodies) == 3 and len(prompts) == 2
    assert prompts[0].startswith("<bos><start_of_turn>user\n당신은 부동산 전문가입니다.")


# --------------------------------------------------------------------------- served model


def test_the_served_model_is_recorded_warned_and_unpriced(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    with loopback(sim_answer(served="tiny-gemma")) as (url, _):
        client = _client(url, tmp_path / "c")
        outcomes = client.run(_requests(3))
    assert {o.model for o in outcomes} == {"tiny-gemma"}
    assert sum("answers as 'tiny-gemma'" in r.message for r in caplog.records) == 1
    m = usage_metrics("gpt-4o-mini", client.stats, PRICES)
    assert (m["priced"], m["cost_usd"], m["served_model"]) == (False, None, "tiny-gemma")
    m = usage_metrics(
        "gpt-4o-mini", client.stats, {**PRICES, "tiny-gemma": {"input": 1.0, "output": 1.0}}
    )
    assert m["priced"] and m["cost_usd"] > 0  # the price table names the served model


def test_a_dated_snapshot_is_the_same_model(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    with loopback(sim_answer(served="gpt-4o-mini-2024-07-18")) as (url, bodies):
        client = _client(url, tmp_path / "c")
        outcomes = client.run(_requests(2))
        flex = _client(url, tmp_path / "flex", service_tier="flex")
        flex.run(_requests(2))
    assert {o.model for o in outcomes} == {"gpt-4o-mini-2024-07-18"}
    assert not [r for r in caplog.records if "answers as" in r.message]
    m = usage_metrics("gpt-4o-mini", client.stats, PRICES)
    assert m["priced"] and m["cost_usd"] > 0
    # llm.service_tier: sent, and priced at <model>@<tier> where the table lists it
    assert bodies[-1]["service_tier"] == "flex"
    half = {**PRICES, "gpt-4o-mini@flex": {"input": 0.075, "output": 0.30}}
    assert usage_metrics("gpt-4o-mini", flex.stats, half)["cost_usd"] == pytest.approx(
        m["cost_usd"] / 2, abs=1e-6
    )
    assert usage_metrics("gpt-4o-mini", flex.stats, PRICES)["cost_usd"] == m["cost_usd"]


def test_one_backends_answers_are_not_another_backends(tmp_path) -> None:
    cache = tmp_path / "c"
    with loopback(sim_answer(served="tiny-gemma")) as (url, gemma):
        _client(url, cache).run(_requests(4))
    # the same llm.model on OpenAI: every answer asked again, and cached as OpenAI's
    with loopback(sim_answer(served="gpt-4o-mini-2024-07-18")) as (url, openai):
        client = _client(url, cache)
        outcomes = client.run(_requests(4))
        assert len(openai) == 4 and client.stats.cache_hits == 0
        assert {o.model for o in outcomes} == {"gpt-4o-mini-2024-07-18"}
        saved = usage_metrics("gpt-4o-mini", client.stats, PRICES)
        assert saved["saved_usd"] == 0.0 and saved["priced"]
    # another endpoint serving the same OpenAI model: every answer hits
    with loopback(sim_answer(served="gpt-4o-mini-2024-07-18")) as (url, proxy):
        client = _client(url, cache)
        assert all(o.value for o in client.run(_requests(4)))
        m = usage_metrics("gpt-4o-mini", client.stats, PRICES)
    assert proxy == [] and m["saved_usd"] > 0 and m["priced"]
    # a local server answering as its own model, whose model list lacks gpt-4o-mini: the
    # OpenAI answers are not its own (one call learns what it is), all asked again
    with loopback(sim_answer(served="qwen-tiny"), models=["qwen-tiny"]) as (url, qwen):
        client = _client(url, cache, concurrency=1)
        assert {o.model for o in client.run(_requests(4))} == {"qwen-tiny"}
    assert len(qwen) == 4 and client.stats.cache_hits == 0
    # back on the first: one call learns which backend this is, its kept answers hit
    with loopback(sim_answer(served="tiny-gemma")) as (url, again):
        client = _client(url, cache, concurrency=1)
        outcomes = client.run(_requests(4))
    assert len(again) == 1 and client.stats.cache_hits == 3
    assert {o.model for o in outcomes} == {"tiny-gemma"} and len(gemma) == 4


def _old_entries(root: Path, reqs: list[LLMRequest]) -> None:
    """Cache entries as an older seedtune stored them: no served model."""
    with ResponseCache(root) as cache:
        for req in reqs:
            cache.put(
                request_key(LLMConfig(model="gpt-4o-mini"), req),
                {"answer": {"questions": ["q?"]}, "usage": {}, "model": "gpt-4o-mini"},
            )


def test_entries_older_than_the_record_count_as_the_configured_model(tmp_path) -> None:
    _old_entries(tmp_path / "a", _requests(3)[1:])
    with loopback(sim_answer(served="gpt-4o-mini-2024-07-18")) as (url, bodies):
        outcomes = _client(url, tmp_path / "a", concurrency=1).run(_requests(3))
    assert len(bodies) == 1 and [o.value["questions"] for o in outcomes][1:] == [["q?"]] * 2
    # a backend that answers as another model: asked again once it has said so
    _old_entries(tmp_path / "b", _requests(3)[1:])
    with loopback(sim_answer(served="tiny-gemma")) as (url, bodies):
        outcomes = _client(url, tmp_path / "b", concurrency=1).run(_requests(3))
    assert len(bodies) == 3 and {o.model for o in outcomes} == {"tiny-gemma"}
