"""Hostile servers and careless users, seen from outside (issue 25): credentials stay with
their origin, unknown params are never adopted, a model id that resolves nowhere is one
line, the dataset card renders no foreign link, image or HTML, analytics are off, a used
simulator port is one line."""

from __future__ import annotations

import json
import re
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
from seedtune.retrieval.naver import NaverClient, NaverError
from seedtune.tasks.queries import QuestionList

SECRET = "naver-secret-0123456789"
KEY = "sk-test-key-0123456789"
NAVER_BODY = {"lastBuildDate": "", "total": 0, "start": 1, "display": 0, "items": []}
CHAT_BODY = {
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {
                "role": "assistant",
                "content": json.dumps({"questions": ["전세란 무엇인가요?"]}),
            },
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 5},
}


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
            self.send_header(
                "Location", (self.server.target or self.server.url) + self.path[len("/go") :]
            )
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
    return NaverClient(
        SearchConfig(base_url=base_url, rps=1000, max_retries=1),
        ResponseCache(tmp_path / "search"),
        "naver-id-0123",
        SECRET,
    )


def test_naver_secret_never_follows_a_redirect_to_another_origin(tmp_path) -> None:
    with loopback(NAVER_BODY) as stranger, loopback(NAVER_BODY, target=stranger.url) as endpoint:
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
    return LLMClient(
        LLMConfig(base_url=base_url, model="m", max_retries=1), ResponseCache(tmp_path / "llm")
    )


def _ask() -> list[LLMRequest]:
    return [
        LLMRequest(
            id="1", schema=QuestionList, messages=[{"role": "user", "content": "전세 질문 JSON"}]
        )
    ]


@pytest.mark.parametrize("code", [302, 307, 308])
def test_llm_key_never_follows_a_redirect_to_another_origin(tmp_path, monkeypatch, code) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with (
        loopback(CHAT_BODY) as stranger,
        loopback(CHAT_BODY, code=code, target=stranger.url) as endpoint,
    ):
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
    assert [path for path, _ in endpoint.seen] == [
        "/go/v1/chat/completions",
        "/v1/chat/completions",
    ]


# --------------------------------------------------------------------------- model ids


def _cli(ws, *args: str):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "seedtune.cli", *args],
        cwd=ws.path,
        env=ws.env(),
        text=True,
        capture_output=True,
        timeout=300,
    )


def _one_error(proc, prog: str) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"{prog}: error: "), line
    return line


BOGUS = "nobody-here/no-such-model"


def test_ask_with_a_model_id_that_resolves_nowhere_is_one_line(workspace) -> None:
    workspace.params(train={"model": {"name_or_path": BOGUS}})
    line = _one_error(_cli(workspace, "ask", "전세란?", "--adapter", "none"), "seedtune ask")
    assert f"train.model.name_or_path={BOGUS!r}" in line
    assert "models:" in line and "conf/local/default.yaml" in line and "cache" in line


def test_export_with_a_base_that_resolves_nowhere_is_one_line(workspace) -> None:
    workspace.write(
        "models/adapter/adapter_config.json",
        json.dumps({"base_model_name_or_path": BOGUS, "revision": "main", "peft_type": "LORA"}),
    )
    line = _one_error(_cli(workspace, "export"), "seedtune export")
    assert f"models/adapter/adapter_config.json: base_model_name_or_path={BOGUS!r}" in line
    assert "models:" in line and "cache" in line
    line = _one_error(_cli(workspace, "export", "--base", "/no/such/dir"), "seedtune export")
    assert line.startswith("seedtune export: error: --base='/no/such/dir': no such directory")
    assert not (workspace.path / "models" / "merged").exists()


# --------------------------------------------------------------------------- dataset card

HOSTILE = [
    "[x](javascript:alert(1))",
    "![x](http://evil.example/t.png)",
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "a | b",
    "`code` ``x``",
    "line\nbreak\r\n| --- |",
    "<http://evil.example/>",
    "www.evil.example",
    "mail@evil.example",
    "[ref]: http://evil.example/",
    "&lt;b&gt;",
    "\\[x](http://evil.example/)",
    "*bold* _em_ ~~gone~~",
]


def _hostile_card() -> str:
    from seedtune.synthesis.card import CardInputs, dataset_statistics, render_card

    rows = []
    for bad in HOSTILE:
        rows.append(
            {
                "question": f"전세 {bad}",
                "answer": bad,
                "split": "train",
                "question_source": bad,
                "post_category": bad,
                "seed": bad,
                "sources": [f"http://{bad}/x", "https://a.kr/x"],
                "source_categories": [bad, "blog"],
                "source_kinds": [bad, "page"],
                "model": bad,
                "template": bad,
                bad: bad,
            }
        )
    rejects = {"synthesize": [{"reason": bad} for bad in HOSTILE]}
    metrics = {
        "crawl": {bad: 1 for bad in HOSTILE} | {"outcomes": {b: 2 for b in HOSTILE}},
        "search": {"pii_masked": {bad: 1 for bad in HOSTILE} | {"phone": 1}},
    }
    params = {
        "llm": {"model": HOSTILE[0] + "`" + HOSTILE[1]},
        "rank": {"model": HOSTILE[2], "top_k": HOSTILE[3]},
        "search": {"categories": HOSTILE},
        "train": {"model": {"name_or_path": HOSTILE[4]}},
    }
    inputs = CardInputs(rows, rejects, metrics, params)
    return render_card(inputs, dataset_statistics(inputs))


def _tokens(tokens):
    for tok in tokens:
        yield tok
        yield from _tokens(tok.children or [])


def test_the_card_renders_no_link_image_or_html_from_its_values() -> None:
    from markdown_it import MarkdownIt

    card = _hostile_card()
    md = MarkdownIt("commonmark").enable("table")
    body = card.split("\n---\n", 1)[1]  # after the YAML front matter
    tokens = list(_tokens(md.parse(body)))
    live = [t for t in tokens if t.type in ("link_open", "image", "html_inline", "html_block")]
    assert not live, [(t.type, t.content, t.attrs) for t in live]
    html_out = md.render(body)
    for tag in ("<a ", "<img", "<script", "<br"):
        assert tag not in html_out
    # GFM autolinks bare scheme://, www. and e-mail text (not in code spans): none is left
    prose = re.sub(r"(`+).*?\1", "", body)
    for bare in ("http://evil", "www.evil", "mail@evil"):
        assert bare not in prose
    # every table keeps its columns: no pipe or newline from a value splits or ends a row
    for i, tok in enumerate(tokens):
        if tok.type == "thead_open":
            width = next(j for j in range(i, len(tokens)) if tokens[j].type == "tr_close")
            cols = sum(t.type == "th_open" for t in tokens[i:width])
            end = next(j for j in range(i, len(tokens)) if tokens[j].type == "table_close")
            rows = [t for t in tokens[i:end] if t.type == "tr_open"]
            cells = sum(t.type in ("th_open", "td_open") for t in tokens[i:end])
            assert cells == cols * len(rows)
    # the values are still there, as text a reader sees
    text = "".join(t.content for t in tokens if t.type in ("text", "code_inline"))
    assert "[x](javascript:alert(1))" in text and "<img src=x onerror=alert(1)>" in text
    assert "![x](http://evil.example/t.png)" in text and "a | b" in text


def test_the_card_keeps_its_own_markup() -> None:
    from markdown_it import MarkdownIt

    body = _hostile_card().split("\n---\n", 1)[1]
    tokens = list(_tokens(MarkdownIt("commonmark").enable("table").parse(body)))
    code = [t.content for t in tokens if t.type == "code_inline"]
    assert "question_source" in code and "data/instructions.jsonl" in code  # field docs
    assert "[x](javascript:alert(1))`![x](http://evil.example/t.png)" in code  # llm.model
    assert "| phone | [전화번호] | 1 | 1 |" in body  # its own tags, as they are


# --------------------------------------------------------------------------- analytics


def test_the_project_config_turns_dvc_analytics_off(root) -> None:
    import subprocess
    import sys
    from pathlib import Path

    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", ".dvc/config"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert tracked.returncode == 0, "the project's .dvc/config is tracked"
    dvc = Path(sys.executable).with_name("dvc")  # DVC reads it as a user's `dvc` would
    got = subprocess.run(
        [str(dvc), "config", "--project", "core.analytics"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert got.returncode == 0 and got.stdout.strip() == "false", got.stderr


def test_the_evaluation_report_renders_answers_and_reasons_as_text() -> None:
    """reports/evaluation.md quotes model answers, judge reasons and questions: text a
    crawled page may have fed. Only the report's own line breaks (``<br>``) are markup."""
    from markdown_it import MarkdownIt

    from seedtune.evaluation.judging import report_markdown

    rows = [
        {
            "question": f"전세 {bad}",
            "reference": f"{bad}\n둘째 줄",
            "tuned": bad,
            "base": bad,
            "result": "win",
            "reasons": [bad],
            "reject": bad,
        }
        for bad in HOSTILE
    ]
    report = report_markdown({"win_rate": 0.5}, rows)
    md = MarkdownIt("commonmark").enable("table")
    tokens = list(_tokens(md.parse(report)))
    live = [
        t
        for t in tokens
        if t.type in ("link_open", "image", "html_block")
        or (t.type == "html_inline" and t.content != "<br>")
    ]
    assert not live, [(t.type, t.content) for t in live]
    rendered = md.render(report)
    assert "<script" not in rendered and "<img" not in rendered
    assert "둘째 줄" in rendered  # the reference's second line is kept, after a <br>
