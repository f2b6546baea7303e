"""The LLM client: answer parsing, costs, the real client against the loopback simulator
(faults included). `seedtune estimate` is in test_estimate.py."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from seedtune_sandbox.demo import SIM_ENV, sim_config
from seedtune_sandbox.sim import SimServer
from support import damage_line

from seedtune.core.cache import ResponseCache
from seedtune.core.config import LLMConfig
from seedtune.core.errors import ConfigError, ServiceError
from seedtune.llm.client import LLMClient, LLMRequest, extract_json, request_key
from seedtune.llm.costs import cost_usd, estimate_tokens
from seedtune.tasks.queries import QuestionList
from seedtune.tasks.synthesize import QA


def _requests(n: int) -> list[LLMRequest]:
    return [
        LLMRequest(
            id=str(i),
            schema=QuestionList,
            messages=[
                {
                    "role": "user",
                    "content": f'용어: "전세{i}" 에 대한 질문을 정확히 3개 작성하세요. JSON',
                }
            ],
        )
        for i in range(n)
    ]


@pytest.fixture()
def llm_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SIM_ENV["OPENAI_API_KEY"])


def _llm(sim: SimServer, tmp_path: Path, **kw: object) -> LLMClient:
    cfg = LLMConfig(base_url=sim.openai_base_url, model="sim", **kw)
    return LLMClient(cfg, ResponseCache(tmp_path / "cache"))


def test_llm_answers_are_cached_and_a_rerun_makes_no_call(sim, tmp_path, llm_key) -> None:
    outcomes = _llm(sim, tmp_path).run(_requests(10))
    assert all(o.value and len(o.value["questions"]) >= 1 for o in outcomes)
    calls = sim.stats()["chat"]["ok"]
    again = _llm(sim, tmp_path)
    assert [o.value for o in again.run(_requests(10))] == [o.value for o in outcomes]
    assert sim.stats()["chat"]["ok"] == calls and again.stats.cache_hits == 10


def test_llm_survives_faults_and_accounts_for_every_item(tmp_path, llm_key) -> None:
    cfg = sim_config(
        fault_429_rate=0.15,
        retry_after_s=0.01,
        fault_5xx_rate=0.15,
        fault_truncated_rate=0.1,
        fault_fenced_rate=0.2,
        seed=3,
    )
    with SimServer(cfg) as sim:
        client = _llm(sim, tmp_path, max_retries=8)
        outcomes = client.run(_requests(40))
        faults = sim.stats()["chat"]["faults"]
    assert [o.id for o in outcomes] == [str(i) for i in range(40)]
    assert sum(1 for o in outcomes if o.value) >= 38
    assert all(o.value or o.reject for o in outcomes)
    assert faults["429"] and faults["5xx"] and faults["fenced"]


def test_llm_missing_key_is_one_clear_line(sim, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        _llm(sim, tmp_path).run(_requests(1))
    assert sim.stats()["chat"]["ok"] == 0


def test_llm_truncated_answer_becomes_a_reject(sim, tmp_path, llm_key) -> None:
    client = _llm(sim, tmp_path, max_tokens=5)  # every answer is cut: finish_reason=length
    req = LLMRequest(id="q", schema=QA, messages=[{"role": "user", "content": "질문: 전세란?"}])
    (outcome,) = client.run([req])
    assert outcome.value is None and "truncated" in outcome.reject


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        '```json\n{"a": 1}\n```',
        '결과입니다:\n```\n{"a": 1}\n```\n끝',
        '답: {"a": 1} 입니다',
    ],
)
def test_extract_json_tolerates_fences_and_prose(text: str) -> None:
    assert extract_json(text) == {"a": 1}


def test_extract_json_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        extract_json('{"a": 1')


def test_costs() -> None:
    prices = {"m": {"input": 0.15, "output": 0.60}}
    assert cost_usd("m", 1_000_000, 1_000_000, prices) == pytest.approx(0.75)
    assert cost_usd("unknown", 10, 10, prices) is None
    assert estimate_tokens("전세 계약") == 4 + 1
    assert estimate_tokens("hello world!") == 3


# --------------------------------------------------------------------------- failure semantics


def _closed_port_url() -> str:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def test_unreachable_endpoint_is_a_transport_error_not_rejects(tmp_path, llm_key) -> None:
    url = _closed_port_url()
    client = LLMClient(
        LLMConfig(base_url=url, model="sim", max_retries=1), ResponseCache(tmp_path / "cache")
    )
    with pytest.raises(
        ServiceError,
        match=f"^{url}/chat/completions: ClientConnectorError after llm.max_retries=1 retries",
    ):
        client.run(_requests(3))


def test_a_failed_run_keeps_every_answer_and_the_rerun_pays_only_the_rest(
    tmp_path, llm_key
) -> None:
    with SimServer(sim_config(fault_5xx_rate=0.5, seed=11)) as flaky:
        client = _llm(flaky, tmp_path, max_retries=0, concurrency=2)
        with pytest.raises(ServiceError, match="HTTP 5"):
            client.run(_requests(20))
        paid = flaky.stats()["chat"]["ok"]
    assert paid == len(ResponseCache(tmp_path / "cache")) > 0  # every answer landed
    with SimServer(sim_config()) as healthy:
        outcomes = _llm(healthy, tmp_path).run(_requests(20))
        assert healthy.stats()["chat"]["ok"] == 20 - paid  # nothing paid twice
    assert all(o.value for o in outcomes)


def test_retries_are_visible_while_they_happen(tmp_path, llm_key, caplog) -> None:
    with SimServer(sim_config(fault_429_rate=0.3, retry_after_s=0.01, seed=5)) as sim:
        client = _llm(sim, tmp_path, max_retries=8)
        with caplog.at_level("WARNING", logger="seedtune.llm.client"):
            client.run(_requests(20))
    assert client.stats.retries > 0
    warnings = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(warnings) == 1 and "HTTP 429" in warnings[0]  # one warning for the burst


def test_lone_surrogates_are_replaced_and_the_answer_is_cached(tmp_path, llm_key) -> None:
    with SimServer(sim_config(fault_surrogate_rate=1.0)) as sim:
        client = _llm(sim, tmp_path)
        req = LLMRequest(
            id="q",
            schema=QA,
            messages=[{"role": "user", "content": "질문: 전세란? JSON으로 답하세요."}],
        )
        (outcome,) = client.run([req])
        assert sim.stats()["chat"]["faults"]["surrogate"] == 1
        again = _llm(sim, tmp_path)
        assert [o.value for o in again.run([req])] == [outcome.value]  # cached, not repaid
        assert again.stats.cache_hits == 1 and sim.stats()["chat"]["faults"]["surrogate"] == 1
    text = outcome.value["question"] + outcome.value["answer"]
    assert "\ufffd" in text and not any("\ud800" <= c <= "\udfff" for c in text)


def test_error_bodies_that_echo_the_key_are_redacted(sim, tmp_path, llm_key) -> None:
    with SimServer(sim_config(fault_echo_rate=1.0)) as echo:
        (outcome,) = _llm(echo, tmp_path).run(_requests(1))
    assert outcome.reject.startswith("HTTP 400") and "***" in outcome.reject
    assert SIM_ENV["OPENAI_API_KEY"] not in outcome.reject


def test_damaged_or_wrong_shaped_cache_entries_are_misses(sim, tmp_path, llm_key, caplog) -> None:
    reqs = _requests(3)
    first = _llm(sim, tmp_path)
    first.run(reqs)
    cache = first.cache
    keys = [request_key(first.cfg, r) for r in reqs]
    damaged = cache.where(keys[0])
    segment, offset = damaged.rsplit(":", 1)
    damage_line(Path(segment), int(offset))
    cache.put(keys[1], {"answer": {"questions": "전세란 무엇인가요?"}})  # a string, not a list
    wrong = cache.where(keys[1])
    cache.close()
    calls = sim.stats()["chat"]["ok"]
    with caplog.at_level("WARNING"):
        outcomes = _llm(sim, tmp_path).run(reqs)
    assert sim.stats()["chat"]["ok"] - calls == 2  # both asked again, the good one reused
    assert all(isinstance(o.value["questions"], list) for o in outcomes)
    assert f"ignoring damaged cache entry {segment} at byte {offset}" in caplog.text
    assert wrong in caplog.text


# --------------------------------------------------------------------------- model families


def test_reasoning_and_fine_tuned_models_get_the_parameters_they_take(
    sim, tmp_path, llm_key
) -> None:
    """The simulator refuses what OpenAI documents these families refuse: max_tokens and a
    non-default temperature for o-series/GPT-5, size bounds in a fine-tuned model's schema."""
    for model in ("o4-mini", "gpt-5-mini", "ft:gpt-4o-mini-2024-07-18:org::abc123"):
        client = LLMClient(
            LLMConfig(base_url=sim.openai_base_url, model=model),
            ResponseCache(tmp_path / model.replace(":", "_")),
        )
        outcomes = client.run(_requests(2))  # QuestionList has minItems: stripped for ft:
        assert all(o.value and o.value["questions"] for o in outcomes), (model, outcomes)


def test_a_refusal_is_a_reject_asked_once(tmp_path, llm_key) -> None:
    with SimServer(sim_config(fault_refusal_rate=1.0)) as sim:
        (outcome,) = _llm(sim, tmp_path).run(_requests(1))
        assert sim.stats()["chat"]["faults"]["refusal"] == 1  # not retried as "invalid"
    assert outcome.value is None and outcome.reject.startswith("refusal:")


def test_a_parameter_the_model_refuses_is_one_config_error(tmp_path, llm_key) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Refuses(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps(
                {
                    "error": {
                        "message": "Unsupported parameter: 'max_tokens' is not supported with this "
                        "model. Use 'max_completion_tokens' instead.",
                        "type": "invalid_request_error",
                        "param": "max_tokens",
                        "code": "unsupported_parameter",
                    }
                }
            ).encode()
            self.send_response(400)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuses)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = LLMConfig(base_url=f"http://127.0.0.1:{server.server_port}/v1", model="new-model")
        with pytest.raises(ConfigError, match=r"^llm\.model='new-model': the endpoint refuses"):
            LLMClient(cfg, ResponseCache(tmp_path / "c")).run(_requests(3))
    finally:
        server.shutdown()


def test_a_local_server_needs_no_key(tmp_path, monkeypatch) -> None:
    """llm.api_key_env: null, as for vLLM or Ollama started without --api-key."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env either
    with SimServer(sim_config(openai_api_key="")) as local:
        cfg = LLMConfig(base_url=local.openai_base_url, model="llama", api_key_env=None)
        outcomes = LLMClient(cfg, ResponseCache(tmp_path / "c")).run(_requests(2))
    assert all(o.value for o in outcomes)
