"""Hostile servers and careless users, seen from outside (issue 25): credentials stay with
their origin, unknown params are never adopted, a model id that resolves nowhere is one
line, the dataset card renders no foreign link, image or HTML, analytics are off, a used
simulator port is one line."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from seedtune.core.cache import ResponseCache
from seedtune.core.config import LLMConfig, SearchConfig
from seedtune.core.credentials import same_origin
from seedtune.core.errors import ServiceError
from seedtune.llm.client import LLMClient, LLMRequest
from seedtune.llm.schemas import QuestionList
from seedtune.retrieval.naver import NaverClient, NaverError

SECRET = "naver-secret-0123456789"
KEY = "sk-test-key-0123456789"
NAVER_BODY = {"lastBuildDate": "", "total": 0, "start": 1, "display": 0, "items": []}
CHAT_BODY = {"choices": [{"index": 0, "finish_reason": "stop", "message": {
    "role": "assistant", "content": json.dumps({"questions": ["전세란 무엇인가요?"]})}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 5}}


class _Loopback(ThreadingHTTPServer):
    """A loopback server: ``/go/...`` redirects (status ``code``) to ``target`` + the rest of
    the path; any other path answers ``body`` as JSON. Every request's headers are kept."""

    daemon_threads = True

    def __init__(self, body: dict, code: int = 302, target: str = "") -> None:
        self.body, self.code, self.target = body, code, target
        self.seen: list[tuple[str, dict[str, str]]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Loopback

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.seen.append((self.path, dict(self.headers)))
        if self.path.startswith("/go/"):
            self.send_response(self.server.code)
            self.send_header("Location", (self.server.target or self.server.url)
                             + self.path[len("/go"):])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = json.dumps(self.server.body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


@contextmanager
def loopback(body: dict, code: int = 302, target: str = "") -> Iterator[_Loopback]:
    server = _Loopback(body, code, target)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _received(server: _Loopback, secret: str) -> bool:
    return any(secret in value for _, headers in server.seen for value in headers.values())


# --------------------------------------------------------------------------- credentials


def test_origins_differ_by_scheme_host_or_port() -> None:
    assert same_origin("https://openapi.naver.com/v1", "https://OPENAPI.naver.com:443/x")
    assert not same_origin("https://openapi.naver.com", "http://openapi.naver.com")
    assert not same_origin("http://127.0.0.1:8080", "http://127.0.0.1:8081")
    assert not same_origin("http://127.0.0.1:8080", "http://[::1/x")


def _naver(base_url: str, tmp_path) -> NaverClient:
    return NaverClient(SearchConfig(base_url=base_url, rps=1000, max_retries=1),
                       ResponseCache(tmp_path / "search"), "naver-id-0123", SECRET)


def test_naver_secret_never_follows_a_redirect_to_another_origin(tmp_path) -> None:
    with loopback(NAVER_BODY) as stranger, \
            loopback(NAVER_BODY, target=stranger.url) as endpoint:
        with pytest.raises(NaverError) as err:
            _naver(endpoint.url + "/go", tmp_path).search("전세", "blog")
        assert not stranger.seen and not _received(stranger, SECRET)
    message = str(err.value)
    assert f"redirected to {stranger.url}/v1/search/blog.json" in message
    assert "search.base_url" in message and SECRET not in message
    assert len(message.splitlines()) == 1


def test_naver_follows_a_redirect_within_its_origin(tmp_path) -> None:
    with loopback(NAVER_BODY, code=301) as endpoint:
        body = _naver(endpoint.url + "/go", tmp_path).search("전세", "blog")
    assert body["items"] == []
    (_, first), (path, second) = endpoint.seen
    assert path.startswith("/v1/search/blog.json?") and "query=" in path
    assert second["X-Naver-Client-Secret"] == SECRET


def _llm(base_url: str, tmp_path) -> LLMClient:
    return LLMClient(LLMConfig(base_url=base_url, model="m", max_retries=1),
                     ResponseCache(tmp_path / "llm"))


def _ask() -> list[LLMRequest]:
    return [LLMRequest(id="1", schema=QuestionList,
                       messages=[{"role": "user", "content": "전세 질문 JSON"}])]


@pytest.mark.parametrize("code", [302, 307, 308])
def test_llm_key_never_follows_a_redirect_to_another_origin(tmp_path, monkeypatch,
                                                            code) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with loopback(CHAT_BODY) as stranger, \
            loopback(CHAT_BODY, code=code, target=stranger.url) as endpoint:
        with pytest.raises(ServiceError) as err:
            _llm(endpoint.url + "/go/v1", tmp_path).run(_ask())
        assert not stranger.seen and not _received(stranger, KEY)
    message = str(err.value)
    assert f"redirected to {stranger.url}/v1/chat/completions" in message
    assert "llm.base_url" in message and KEY not in message


def test_llm_follows_a_redirect_within_its_origin(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with loopback(CHAT_BODY, code=307) as endpoint:
        (outcome,) = _llm(endpoint.url + "/go/v1", tmp_path).run(_ask())
    assert outcome.value == {"questions": ["전세란 무엇인가요?"]}
    assert [path for path, _ in endpoint.seen] == ["/go/v1/chat/completions",
                                                   "/v1/chat/completions"]
