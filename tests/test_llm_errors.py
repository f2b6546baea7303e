"""The LLM client's error path against a loopback server that answers in the error shapes of
real OpenAI-compatible servers (OpenAI, llama.cpp's llama-server, llama-cpp-python, litellm,
FastAPI apps such as transformers serve, plain-text proxies): one line with the server's own
message, no retries for a request the server refuses, the unknown model named with what the
server serves, the key never shown."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from seedtune_sandbox.demo import SIM_ENV
from support import Workspace, last_line, ranked_rows

from seedtune.core.cache import ResponseCache
from seedtune.core.config import LLMConfig
from seedtune.core.errors import ConfigError, ServiceError
from seedtune.llm.client import LLMClient, LLMRequest
from seedtune.tasks.queries import QuestionList

KEY = "sk-test-0123456789abcdefghij"
#: (status, body) per request; the request's body is passed in.
Answer = Callable[[dict[str, Any]], tuple[int, str | bytes]]


class ErrorServer:
    """``POST /v1/chat/completions`` answers ``answer(body)``; ``GET /v1/models`` lists
    ``models`` (404 when None). ``chat_calls`` counts the chat requests."""

    def __init__(self, answer: Answer, models: list[str] | None = None) -> None:
        self.chat_calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: str | bytes, kind: str) -> None:
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.chat_calls += 1
                status, text = answer(body)
                kind = "application/json" if str(text).startswith(("{", "[")) else "text/plain"
                self._send(status, text, kind)

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if self.path.endswith("/models") and models is not None:
                    self._send(
                        200,
                        json.dumps(
                            {
                                "object": "list",
                                "data": [{"id": m, "object": "model"} for m in models],
                            }
                        ),
                        "application/json",
                    )
                else:
                    self._send(404, '{"detail": "Not Found"}', "application/json")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def __enter__(self) -> ErrorServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def fixed(status: int, body: Any) -> Answer:
    text = body if isinstance(body, str) else json.dumps(body)
    return lambda _req: (status, text)


def ok_answer() -> str:
    content = json.dumps({"questions": ["전세 계약은 어떻게 하나요?"]}, ensure_ascii=False)
    return json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "model": "tiny-gemma",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": content},
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5},
        }
    )


def requests(n: int) -> list[LLMRequest]:
    return [
        LLMRequest(
            id=str(i),
            schema=QuestionList,
            messages=[
                {"role": "system", "content": "질문을 씁니다."},
                {"role": "user", "content": f"용어 {i}: 질문을 쓰세요"},
            ],
        )
        for i in range(n)
    ]


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def client(server: ErrorServer, tmp_path: Path, **kw: Any) -> LLMClient:
    cfg = LLMConfig(
        **{"base_url": server.base_url, "model": "gpt-9", "concurrency": 1, "max_retries": 2, **kw}
    )
    return LLMClient(cfg, ResponseCache(tmp_path / "cache"))


def fails(
    server: ErrorServer, tmp_path: Path, error: type[Exception] = ConfigError, **kw: Any
) -> str:
    """The one line a run of 3 requests stops with."""
    with pytest.raises(error) as info:
        client(server, tmp_path, **kw).run(requests(3))
    line = str(info.value)
    assert "\n" not in line and KEY not in line and KEY[:10] not in line
    return line


# ----------------------------------------------------------------- the request itself refused

LITERAL = (
    "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': "
    "\"Input should be 'text' or 'json_object'\", 'input': 'json_schema', 'ctx': "
    "{'expected': \"'text' or 'json_object'\"}}]"
)
REFUSALS = {
    # llama-cpp-python wraps its pydantic validation error in an HTTP 500
    "llama-cpp-python json_schema": (
        500,
        {
            "error": {
                "message": LITERAL,
                "type": "internal_server_error",
                "param": None,
                "code": None,
            }
        },
        "response_format.type: Input should be 'text' or 'json_object'",
        "llm.structured_output",
    ),
    "llama-cpp-python, newer FastAPI": (
        500,
        {
            "error": {
                "message": f"1 validation error:\n  {LITERAL[1:-1]}\n",
                "type": "internal_server_error",
                "param": None,
                "code": None,
            }
        },
        "Input should be 'text' or 'json_object'",
        "llm.structured_output",
    ),
    # Gemma's chat template refuses the system role (llama-server's shape)
    "llama-server template": (
        500,
        {"error": {"code": 500, "message": "System role not supported", "type": "server_error"}},
        "System role not supported",
        "refuses a system message",
    ),
    # litellm wraps the backend's 500 into its 400, codes as strings
    "litellm wrapping": (
        400,
        {
            "error": {
                "message": "litellm.BadRequestError: OpenAIException - Error code: 500 - {'error': "
                "{'code': 500, 'message': 'System role not supported', 'type': "
                "'server_error'}}\nReceived Model Group=tiny\nAvailable Model Group "
                "Fallbacks=None",
                "type": None,
                "param": None,
                "code": "400",
            }
        },
        "litellm.BadRequestError: OpenAIException - Error code: 500: System role not supported",
        "llm.model='gpt-9'",
    ),
    # a FastAPI app with a pydantic request model: max_tokens over its limit
    "FastAPI 422": (
        422,
        {
            "detail": [
                {
                    "type": "less_than_equal",
                    "loc": ["body", "max_tokens"],
                    "msg": "Input should be less than or equal to 1024",
                    "input": 2048,
                    "ctx": {"le": 1024},
                }
            ]
        },
        "max_tokens: Input should be less than or equal to 1024",
        "lower llm.max_tokens (now 2048)",
    ),
    "FastAPI extra field": (
        422,
        {
            "detail": [
                {
                    "type": "extra_forbidden",
                    "loc": ["body", "max_completion_tokens"],
                    "msg": "Extra inputs are not permitted",
                }
            ]
        },
        "max_completion_tokens: Extra inputs are not permitted",
        "llm.max_tokens",
    ),
}


@pytest.mark.parametrize("status,body,said,hint", REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refused_request_is_one_line_asked_once(tmp_path, status, body, said, hint) -> None:
    with ErrorServer(fixed(status, body)) as server:
        line = fails(server, tmp_path)
        # not retried as an outage, not one reject per item; a refused system role is asked
        # once more with the system message folded into the user turn (llm.system_role)
        assert server.chat_calls == (2 if "System role" in said else 1)
    assert f"HTTP {status}, not retried" in line and said in line and hint in line


def test_after_an_answer_a_refusal_is_that_items_reject(tmp_path) -> None:
    """Once one answer came back the request's shape is fine: a refusal is about the item."""

    def answer(body: dict[str, Any]) -> tuple[int, str]:
        if "용어 0" in body["messages"][-1]["content"]:
            return 200, ok_answer()
        return 400, json.dumps(
            {
                "error": {
                    "message": "Invalid value for 'content': bad text",
                    "type": "invalid_request_error",
                }
            }
        )

    with ErrorServer(answer) as server:
        outcomes = client(server, tmp_path).run(requests(3))
    assert (
        outcomes[0].value
        and [o.reject for o in outcomes[1:]]
        == ["HTTP 400: Invalid value for 'content': bad text"] * 2
    )


def test_a_prompt_over_the_context_is_a_reject_even_first(tmp_path) -> None:
    body = {
        "error": {
            "message": "This model's maximum context length is 2048 tokens. However, "
            "you requested 2100 tokens (52 in the messages, 2048 in the "
            "completion).",
            "type": "invalid_request_error",
            "code": "context_length_exceeded",
        }
    }
    with ErrorServer(fixed(400, body)) as server:
        outcomes = client(server, tmp_path).run(requests(2))
    assert all(o.reject.startswith("HTTP 400: This model's maximum context") for o in outcomes)


# ----------------------------------------------------------------------------- unknown models

UNKNOWN = {
    "litellm": (
        400,
        {
            "error": {
                "message": "{'error': '/chat/completions: Invalid model name passed in "
                "model=gpt-9. "
                "Call `/v1/models` to view available models for your key.'}",
                "type": "None",
                "param": "None",
                "code": "400",
            }
        },
        "Invalid model name passed in",
    ),
    "openai": (
        404,
        {
            "error": {
                "message": "The model `gpt-9` does not exist or you do not have access to it.",
                "type": "invalid_request_error",
                "param": None,
                "code": "model_not_found",
            }
        },
        "The model `gpt-9` does not exist",
    ),
    "llama-cpp-python": (
        400,
        {
            "error": {
                "message": "The model `gpt-9` does not exist",
                "type": "invalid_request_error",
                "param": None,
                "code": "model_not_found",
            }
        },
        "does not exist",
    ),
    "transformers serve": (
        400,
        {"detail": "Server is pinned to 'tiny-gemma'; requested 'gpt-9'."},
        "Server is pinned to 'tiny-gemma'",
    ),
    "a 500": (
        500,
        {"error": {"code": 500, "message": "model 'gpt-9' not found", "type": "server_error"}},
        "model 'gpt-9' not found",
    ),
    "vLLM": (
        404,
        {
            "object": "error",
            "message": "The model `gpt-9` does not exist.",
            "type": "NotFoundError",
            "param": None,
            "code": 404,
        },
        "does not exist",
    ),
}


@pytest.mark.parametrize("status,body,said", UNKNOWN.values(), ids=UNKNOWN.keys())
def test_an_unknown_model_names_llm_model_and_what_is_served(tmp_path, status, body, said) -> None:
    served = ["tiny-gemma", "qwen-0.5b", "a", "b", "c", "d"]
    with ErrorServer(fixed(status, body), models=served) as server:
        line = fails(server, tmp_path)
        assert server.chat_calls == 1
    assert line.startswith(
        f"llm.model='gpt-9': {server.base_url} does not serve this model (HTTP {status}: "
    )
    assert said in line
    assert "it serves tiny-gemma, qwen-0.5b, a, b, c and 1 more" in line


def test_an_unknown_model_without_a_model_list(tmp_path) -> None:
    with ErrorServer(fixed(*UNKNOWN["openai"][:2]), models=None) as server:
        line = fails(server, tmp_path)
    assert "does not serve this model" in line and "set llm.model to a model it serves" in line


# --------------------------------------------------------------------------------- outages


def test_an_empty_500_is_retried_then_names_what_the_server_may_refuse(tmp_path) -> None:
    with ErrorServer(fixed(500, ""), models=["tiny-gemma"]) as server:
        line = fails(server, tmp_path, ServiceError, max_retries=2)
        assert server.chat_calls == 3
    assert "HTTP 500 after llm.max_retries=2 retries (3 attempts)" in line
    assert "chat template of llm.model='gpt-9'" in line and "llm.structured_output" in line
    assert "it serves tiny-gemma" in line and "llm.model='gpt-9' is not among them" in line


def test_a_500_that_says_why_keeps_its_message_when_the_retries_run_out(tmp_path) -> None:
    body = {"error": {"code": 500, "message": "CUDA error: out of memory", "type": "server_error"}}
    with ErrorServer(fixed(500, body), models=["gpt-9"]) as server:
        line = fails(server, tmp_path, ServiceError, max_retries=1)
        assert server.chat_calls == 2
    assert "(2 attempts), the last said: CUDA error: out of memory" in line
    assert "not among" not in line  # the model is listed: no hint about it


def test_a_plain_text_503_is_quoted(tmp_path) -> None:
    with ErrorServer(fixed(503, "upstream overloaded, try later")) as server:
        line = fails(server, tmp_path, ServiceError, max_retries=1)
    assert (
        "HTTP 503 after llm.max_retries=1 retries (2 attempts), the last said: upstream "
        "overloaded, try later" in line
    )


def test_a_wrong_path_is_one_line_naming_base_url(tmp_path) -> None:
    with ErrorServer(fixed(404, {"detail": "Not Found"})) as server:
        line = fails(server, tmp_path)
        assert server.chat_calls == 1
    assert "no chat completions endpoint there; check llm.base_url" in line


# ------------------------------------------------------------------------------------ keys


def test_a_401_without_a_key_says_none_was_sent(tmp_path) -> None:
    body = {"error": {"message": "Missing bearer token", "type": "invalid_request_error"}}
    with ErrorServer(fixed(401, body)) as server:
        line = fails(server, tmp_path, api_key_env=None)
    assert "HTTP 401: Missing bearer token" in line and "no key was sent" in line
    assert "llm.api_key_env" in line and "None" not in line


def test_a_401_quotes_the_server_without_the_key(tmp_path) -> None:
    body = {
        "error": {
            "message": f"Incorrect API key provided: {KEY}. Authorization: Bearer {KEY}",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }
    with ErrorServer(fixed(401, body)) as server:
        line = fails(server, tmp_path)
    assert "rejected the key in OPENAI_API_KEY (HTTP 401: Incorrect API key provided: ***" in line


def test_a_long_message_is_cut_after_the_key_is_scrubbed(tmp_path) -> None:
    """A cut through the key would leave its start in the line: the key goes first."""
    message = "x" * 280 + f" key={KEY} " + "y" * 100
    with ErrorServer(fixed(500, {"error": {"message": message}})) as server:
        line = fails(server, tmp_path, ServiceError, max_retries=0)
    assert "xxx" in line and "…" in line and "y" * 50 not in line


def test_error_bodies_of_every_shape_are_read() -> None:
    from seedtune.llm.errors import parse_error

    shapes: Iterator[tuple[str, str]] = iter(
        [
            ('{"error": "The engine died"}', "The engine died"),
            ("<html><title>502 Bad Gateway</title></html>", ""),
            ("Internal Server Error", ""),
            (
                '{"detail": [{"loc": ["body", "messages", 0, "role"], "msg": "Input should be '
                '\'user\'", "type": "literal_error"}]}',
                "messages.role: Input should be 'user'",
            ),
            (
                '{"object": "error", "message": "bad", "type": "BadRequestError", "code": 400}',
                "bad",
            ),
        ]
    )
    for body, message in shapes:
        assert parse_error(body).message == message, body


# ------------------------------------------------------------------- stages that fail late


def _queries(ws: Workspace, base_url: str, seeds: int = 3, **params: Any) -> Workspace:
    llm = {"base_url": base_url, "model": "sim-gpt", **params.pop("llm", {})}
    ws.params(llm=llm, queries={"per_seed": 3, "sources": ["llm"], **params})
    ws.write(
        "data/seed_words.txt",
        "".join(f"{w}\n" for w in ["전세", "청약", "재건축", "분양권"][:seeds]),
    )
    return ws


def test_a_failed_reject_rate_still_writes_the_spend(sim, workspace) -> None:
    ws = _queries(workspace, sim.openai_base_url, llm={"max_tokens": 5})  # every answer cut
    proc = ws.run("queries", SIM_ENV)
    assert proc.returncode == 2
    assert "3/3 items rejected" in last_line(proc.stderr)
    m = ws.metrics("queries")
    assert m["failed"] is True and "3/3 items rejected" in m["error"]
    assert m["calls"] == sim.stats()["chat"]["ok"] > 0 and m["prompt_tokens"] > 0
    assert m["rejects"] == 3 and len(ws.rows("data/rejects/queries.jsonl")) == 3
    assert not (ws.path / "data/questions.jsonl").exists()


def test_synthesize_writes_its_spend_when_its_reject_rate_fails(sim, workspace) -> None:
    ws = workspace.params(
        llm={"base_url": sim.openai_base_url, "model": "sim-gpt", "max_tokens": 5}
    )
    ws.write("data/ranked.jsonl", ranked_rows(4))
    ws.write("data/questions.jsonl", [{"question": r["question"]} for r in ranked_rows(4)])
    proc = ws.run("synthesize", SIM_ENV)
    assert proc.returncode == 2 and "4/4 items rejected" in last_line(proc.stderr)
    m = ws.metrics("synthesize")
    assert (m["failed"], m["questions"], m["rejects"]) == (True, 4, 4)
    assert m["completion_tokens"] > 0 and m["calls"] == sim.stats()["chat"]["ok"]
    assert not (ws.path / "data/instructions.jsonl").exists()


def test_a_fatal_llm_error_after_some_answers_keeps_their_spend(workspace) -> None:
    answered = []

    def answer(_body: dict[str, Any]) -> tuple[int, str]:
        answered.append(1)
        return (200, ok_answer()) if len(answered) == 1 else (500, "")

    with ErrorServer(answer) as server:
        ws = _queries(
            workspace,
            server.base_url,
            llm={"concurrency": 1, "max_retries": 0, "api_key_env": None},
        )
        proc = ws.run("queries", SIM_ENV)
    assert proc.returncode == 2
    assert "HTTP 500 after llm.max_retries=0 retries (1 attempt)" in last_line(proc.stderr)
    m = ws.metrics("queries")
    assert m["failed"] is True and (m["calls"], m["prompt_tokens"]) == (1, 10)


def test_questions_all_filtered_out_fail_naming_the_filter(sim, workspace) -> None:
    ws = _queries(workspace, sim.openai_base_url, min_chars=190)
    proc = ws.run("queries", SIM_ENV)
    assert proc.returncode == 2
    line = last_line(proc.stderr)
    assert line.startswith(
        "queries: error: queries: all 9 questions were filtered out: "
        "9 too_short (queries.min_chars=190)"
    ), line
    assert not (ws.path / "data/questions.jsonl").exists()
    assert ws.metrics("queries")["generated"] == 9
