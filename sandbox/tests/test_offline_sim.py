"""Tests for the loopback OpenAI + Naver simulator, driven by the real ``openai`` and ``requests``
clients.  Run with ``python -m pytest tests/test_sim.py -q`` (a few seconds, no network)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import openai
import pydantic
import pytest
import requests
from pydantic import BaseModel, Field
from seedtune_sandbox.sim import SimConfig, SimServer, main, naver_api


def faults(**counts: int) -> dict[str, int]:
    """The simulator's fault counters: every kind at 0 but ``counts``."""
    from seedtune_sandbox.sim.server import _FAULT_KINDS

    return {**dict.fromkeys(_FAULT_KINDS, 0), **counts}


NAVER_HEADERS = {"X-Naver-Client-Id": "cid", "X-Naver-Client-Secret": "secret"}
SEED_PROMPT = [
    {"role": "system", "content": "당신은 부동산 전문가입니다. 질문 4개를 JSON으로 작성하세요."},
    {
        "role": "user",
        "content": '시드 단어 "전세사기"에 대해 사람들이 실제로 검색할 질문을 작성하세요.',
    },
]
ANSWER_PROMPT = [
    {"role": "system", "content": "검색 문서만 근거로 약 80 단어로 답하세요."},
    {
        "role": "user",
        "content": "질문: 전세보증보험 가입 조건은 무엇인가요?\n문서 [1] 전세보증보험은 "
        "주택도시보증공사에서 가입하며 보증금 반환을 보장합니다. "
        "[2] 가입 요건은 주택 가격 대비 보증금 비율입니다.",
    },
]


class Questions(BaseModel):
    questions: list[str] = Field(min_length=3, max_length=5)


class QuestionsMany(BaseModel):
    questions: list[str]


class Source(BaseModel):
    index: int = Field(ge=1, le=5)
    title: str = Field(max_length=40)


class Grounded(BaseModel):
    answer: str = Field(min_length=50, max_length=600)
    sources: list[Source] = Field(min_length=1, max_length=3)
    confidence: float = Field(ge=0, le=1)
    note: str | None = None
    follow_up: bool


class Verdict(BaseModel):
    label: Literal["correct", "partial", "wrong"]
    score: int = Field(ge=1, le=10)
    reason: str


def _client(sim: SimServer, **kw: object) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout", 10)
    return openai.OpenAI(base_url=sim.openai_base_url, api_key="k", **kw)  # type: ignore[arg-type]


def _sim(**kw: object) -> SimServer:
    return SimServer(SimConfig(**kw))  # type: ignore[arg-type]


def _search(
    sim: SimServer, category: str = "blog", headers: dict[str, str] | None = None, **params: object
) -> requests.Response:
    return requests.get(
        f"{sim.naver_base_url}/v1/search/{category}.json",
        params=params,
        headers=NAVER_HEADERS if headers is None else headers,
        timeout=10,
    )


@pytest.fixture(scope="module")
def sim() -> SimServer:
    with _sim() as s:
        yield s


# --- OpenAI chat completions -------------------------------------------------------------------


def test_parse_questions_with_pydantic(sim: SimServer) -> None:
    done = _client(sim).chat.completions.parse(
        model="gpt-4o-mini", messages=SEED_PROMPT, response_format=Questions
    )
    assert done.object == "chat.completion" and done.choices[0].finish_reason == "stop"
    assert done.choices[0].message.refusal is None
    qs = done.choices[0].message.parsed.questions
    assert len(qs) == 4  # "질문 4개" in the system prompt, within min/max
    assert len(set(qs)) == len(qs)
    assert all(q.endswith("?") and "전세사기" in q for q in qs)
    assert Questions.model_validate_json(done.choices[0].message.content).questions == qs
    usage = done.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0


def _bigram_jaccard(a: str, b: str) -> float:
    ga = {a[i : i + 2] for i in range(len(a) - 1)}
    gb = {b[i : i + 2] for i in range(len(b) - 1)}
    return len(ga & gb) / len(ga | gb)


def test_many_questions_are_not_near_duplicates(sim: SimServer) -> None:
    msgs = [
        {
            "role": "user",
            "content": '다음 용어에 대해 질문을 정확히 20개 작성하세요.\n용어: "전세권 설정"',
        }
    ]
    qs = (
        _client(sim)
        .chat.completions.parse(model="m", messages=msgs, response_format=QuestionsMany)
        .choices[0]
        .message.parsed.questions
    )
    assert len(qs) == 20 and all("전세권 설정" in q for q in qs)
    assert max(_bigram_jaccard(a, b) for i, a in enumerate(qs) for b in qs[i + 1 :]) < 0.6


def test_the_queries_prompt_gets_questions_about_its_seed_word(sim: SimServer) -> None:
    """The form patterns the prompt quotes ("~알려 주세요") are not terms to ask about."""
    from seedtune.core.config import QueriesConfig
    from seedtune.tasks.queries import build_requests, template

    (req,) = build_requests(["분양권"], QueriesConfig(per_seed=8), template())
    qs = (
        _client(sim)
        .chat.completions.parse(model="m", messages=req.messages, response_format=QuestionsMany)
        .choices[0]
        .message.parsed.questions
    )
    assert qs and all("분양권" in q and "~" not in q for q in qs)


def test_singular_question_field_echoes_prompt(sim: SimServer) -> None:
    class QA(BaseModel):
        question: str
        answer: str

    msgs = [
        {
            "role": "user",
            "content": "질문: 전세권 설정은 어떻게 하나요?\n\n<참고자료>\n[1] 전세권 설정 "
            "등기는 등기소에서 신청합니다.\n</참고자료>\n약 60 단어로 답하세요.",
        }
    ]
    qa = (
        _client(sim)
        .chat.completions.parse(model="m", messages=msgs, response_format=QA)
        .choices[0]
        .message.parsed
    )
    assert qa.question == "전세권 설정은 어떻게 하나요?" and "전세권" in qa.answer


def test_nested_schema_defs_ranges_optional(sim: SimServer) -> None:
    client = _client(sim)
    parsed = client.chat.completions.parse(
        model="m", messages=ANSWER_PROMPT, response_format=Grounded
    )
    g = parsed.choices[0].message.parsed
    assert isinstance(g, Grounded) and 1 <= len(g.sources) <= 3
    assert re.search("[가-힣]", g.answer) and ("전세보증보험" in g.answer or "보증금" in g.answer)
    assert 50 <= len(g.answer) <= 600
    # raw pydantic schema ($defs + $ref + anyOf null), non-strict, through create()
    raw = client.chat.completions.create(
        model="m",
        messages=ANSWER_PROMPT,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "Grounded", "schema": Grounded.model_json_schema()},
        },
    )
    Grounded.model_validate_json(raw.choices[0].message.content)


def test_word_target_is_roughly_honoured(sim: SimServer) -> None:
    class Answer(BaseModel):
        answer: str

    msgs = [ANSWER_PROMPT[0] | {"content": "약 150 단어로 답하세요."}, ANSWER_PROMPT[1]]
    a = _client(sim).chat.completions.parse(model="m", messages=msgs, response_format=Answer)
    words = len(a.choices[0].message.parsed.answer.split())
    assert 150 <= words <= 200


def test_plain_text_answer_reuses_prompt_words(sim: SimServer) -> None:
    done = _client(sim).chat.completions.create(
        model="m",
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "전세 계약 갱신청구권은 어떻게 행사하나요?"}],
            }
        ],
    )
    text = done.choices[0].message.content
    assert re.search("[가-힣]{2}", text) and ("갱신청구권" in text or "전세" in text)
    assert done.usage.completion_tokens == -(-len(text) * 2 // 3)


def test_deterministic_answers(sim: SimServer) -> None:
    client = _client(sim)
    one = client.chat.completions.parse(model="m", messages=SEED_PROMPT, response_format=Questions)
    two = client.chat.completions.parse(model="m", messages=SEED_PROMPT, response_format=Questions)
    assert one.choices[0].message.content == two.choices[0].message.content
    other = [SEED_PROMPT[0], {"role": "user", "content": '시드 단어 "재건축"'}]
    three = client.chat.completions.parse(model="m", messages=other, response_format=Questions)
    assert three.choices[0].message.content != one.choices[0].message.content
    assert all("재건축" in q for q in three.choices[0].message.parsed.questions)


def test_finish_reason_length(sim: SimServer) -> None:
    client = _client(sim)
    done = client.chat.completions.create(model="m", messages=ANSWER_PROMPT, max_tokens=5)
    assert done.choices[0].finish_reason == "length" and done.usage.completion_tokens == 5
    assert len(done.choices[0].message.content) <= 8
    with pytest.raises(openai.LengthFinishReasonError):
        client.chat.completions.parse(
            model="m", messages=SEED_PROMPT, response_format=Questions, max_completion_tokens=10
        )


def test_auth_401() -> None:
    with _sim(openai_api_key="right") as s:
        r = requests.post(
            f"{s.openai_base_url}/chat/completions", json={"model": "m", "messages": []}, timeout=5
        )
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert r.json()["error"]["type"] == "invalid_request_error"
        with pytest.raises(openai.AuthenticationError):
            _client(s).chat.completions.create(model="m", messages=SEED_PROMPT)
        ok = openai.OpenAI(base_url=s.openai_base_url, api_key="right", max_retries=0)
        assert (
            ok.chat.completions.create(model="m", messages=SEED_PROMPT).choices[0].message.content
        )
        assert s.stats()["chat"]["auth_fail"] == 2 and s.stats()["chat"]["ok"] == 1


def test_bad_requests_400(sim: SimServer) -> None:
    client = _client(sim)
    with pytest.raises(openai.BadRequestError, match="additionalProperties"):
        client.chat.completions.create(
            model="m",
            messages=SEED_PROMPT,
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "Q",
                    "schema": Questions.model_json_schema(),
                    "strict": True,
                },
            },
        )
    with pytest.raises(openai.BadRequestError, match="json"):
        client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "전세"}],
            response_format={"type": "json_object"},
        )
    obj = client.chat.completions.create(
        model="m",
        response_format={"type": "json_object"},
        messages=[{"role": "user", "content": '전세 답변을 JSON {"answer": "...", "score": 1} 로'}],
    )
    data = json.loads(obj.choices[0].message.content)
    assert isinstance(data["answer"], str) and 1 <= data["score"] <= 10
    r = requests.post(
        f"{sim.openai_base_url}/chat/completions",
        data=b"{not json",
        headers={"Authorization": "Bearer k"},
        timeout=5,
    )
    assert r.status_code == 400 and "parse the JSON body" in r.json()["error"]["message"]


def test_rate_limit_429_retry_after() -> None:
    with _sim(fault_429_rate=1.0, retry_after_s=0.05) as s:
        with pytest.raises(openai.RateLimitError) as info:
            _client(s).chat.completions.create(model="m", messages=SEED_PROMPT)
        assert info.value.response.headers["retry-after"] == "0.05"
        assert info.value.response.headers["retry-after-ms"] == "50"
        assert info.value.code == "rate_limit_exceeded"
        t0 = time.monotonic()
        with pytest.raises(openai.RateLimitError):  # the client retries, honouring the short delay
            _client(s, max_retries=2).chat.completions.create(model="m", messages=SEED_PROMPT)
        assert time.monotonic() - t0 < 2
        assert s.stats()["chat"] == {
            "ok": 0,
            "auth_fail": 0,
            "faults": faults(**{"429": 4}),
        }


def test_quota_and_reset() -> None:
    with _sim(openai_quota=2) as s:
        client = _client(s)
        for _ in range(2):
            client.chat.completions.create(model="m", messages=SEED_PROMPT)
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="m", messages=SEED_PROMPT)
        assert info.value.code == "insufficient_quota"
        assert s.stats()["chat"]["ok"] == 2 and s.stats()["chat"]["faults"]["quota"] == 1
        assert requests.post(f"{s.url}/_sim/reset", timeout=5).json() == {"ok": True}
        assert s.stats()["chat"]["ok"] == 0
        client.chat.completions.create(model="m", messages=SEED_PROMPT)


def test_fenced_json() -> None:
    with _sim(fault_fenced_rate=1.0) as s:
        client = _client(s)
        raw = client.chat.completions.create(
            model="m",
            messages=SEED_PROMPT,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "Q", "schema": Questions.model_json_schema()},
            },
        )
        content = raw.choices[0].message.content
        assert content.startswith("다음은") and "```json\n" in content
        inner = content.split("```json\n", 1)[1].split("\n```", 1)[0]
        Questions.model_validate_json(inner)
        with pytest.raises(pydantic.ValidationError):
            client.chat.completions.parse(
                model="m", messages=SEED_PROMPT, response_format=Questions
            )
        assert s.stats()["chat"]["faults"]["fenced"] == 2 and s.stats()["chat"]["ok"] == 0


def test_truncated_body() -> None:
    with _sim(fault_truncated_rate=1.0) as s:
        # openai 3.x surfaces the cut body as a JSON decode error (a ValueError), not an APIError
        with pytest.raises((ValueError, openai.APIError)):
            _client(s).chat.completions.parse(
                model="m", messages=SEED_PROMPT, response_format=Questions
            )
        r = _search(s, query="전세")
        assert r.status_code == 200 and len(r.content) == int(r.headers["Content-Length"])
        with pytest.raises(ValueError):
            r.json()
        assert (
            s.stats()["chat"]["faults"]["truncated"] == 1
            and s.stats()["search"]["faults"]["truncated"] == 1
        )


def test_5xx_and_timeout() -> None:
    with _sim(fault_5xx_rate=1.0) as s:
        for _ in range(3):
            with pytest.raises(openai.APIStatusError) as info:
                _client(s).chat.completions.create(model="m", messages=SEED_PROMPT)
            assert info.value.status_code in (500, 502, 503)
        assert _search(s, query="전세").status_code in (500, 502, 503)
    with _sim(fault_timeout_rate=1.0, timeout_s=5) as s:
        t0 = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            _client(s, timeout=0.3).chat.completions.create(model="m", messages=SEED_PROMPT)
        assert time.monotonic() - t0 < 3
        assert s.stats()["chat"]["faults"]["timeout"] == 1


def test_fault_sequence_is_deterministic() -> None:
    def statuses(seed: int) -> list[int]:
        with _sim(seed=seed, fault_429_rate=0.3, fault_5xx_rate=0.2) as s:
            return [_search(s, query=f"전세 {i}").status_code for i in range(25)]

    first = statuses(7)
    assert first == statuses(7)
    assert 200 in first and 429 in first


def test_judge_first_and_hash() -> None:
    with _sim(judge="first") as s:
        for topic in ("전세", "청약", "재건축"):
            msgs = [{"role": "user", "content": f"{topic} 답변을 평가하세요."}]
            v = _client(s).chat.completions.parse(model="m", messages=msgs, response_format=Verdict)
            verdict = v.choices[0].message.parsed
            assert verdict.label == "correct" and 1 <= verdict.score <= 10 and verdict.reason
    with _sim(judge="hash") as s:
        labels = set()
        for i in range(12):
            msgs = [{"role": "user", "content": f"답변 {i} 평가: 전세 계약"}]
            labels.add(
                _client(s)
                .chat.completions.parse(model="m", messages=msgs, response_format=Verdict)
                .choices[0]
                .message.parsed.label
            )
        assert len(labels) >= 2


def test_models_and_health(sim: SimServer) -> None:
    assert [m.id for m in _client(sim).models.list().data][0] == "gpt-4o-mini"
    assert requests.get(f"{sim.url}/_sim/health", timeout=5).json() == {"ok": True}


# --- Naver search ------------------------------------------------------------------------------


def test_naver_items_markup_entities_and_fields(sim: SimServer) -> None:
    body = _search(sim, query="전세 사기", display=20).json()
    assert set(body) == {"lastBuildDate", "total", "start", "display", "items"}
    assert body["lastBuildDate"].endswith("+0900") and body["start"] == 1
    items = body["items"]
    assert len(items) == body["display"] == 20
    assert all("<b>전세</b>" in it["title"] + it["description"] for it in items)
    text = " ".join(it["title"] + it["description"] for it in items)
    assert "&quot;" in text and "&amp;" in text and ("&lt;" in text or "&#39;" in text)
    assert len({it["link"] for it in items}) == 20
    assert set(items[0]) == {
        "title",
        "link",
        "description",
        "bloggername",
        "bloggerlink",
        "postdate",
    }
    assert re.fullmatch(r"\d{8}", items[0]["postdate"])
    expected = {
        "news": {"originallink", "pubDate"},
        "kin": set(),
        "webkr": set(),
        "cafearticle": {"cafename", "cafeurl"},
        "encyc": {"thumbnail"},
    }
    for category, extra in expected.items():
        item = _search(sim, category, query="전세 사기").json()["items"][0]
        assert set(item) == {"title", "link", "description"} | extra
    assert _search(sim, query="전세 사기", display=20).json()["items"] == items  # deterministic


def test_naver_display_from_url_only_and_pagination(sim: SimServer) -> None:
    r = requests.get(
        f"{sim.naver_base_url}/v1/search/news.json",
        params={"query": "청약 가점", "display": 5},
        data={"display": 50, "query": "other"},
        headers=NAVER_HEADERS,
        timeout=5,
    )
    assert len(r.json()["items"]) == 5 and r.json()["display"] == 5
    first = _search(sim, "news", query="청약 가점", display=10, start=1).json()
    second = _search(sim, "news", query="청약 가점", display=10, start=11).json()
    assert second["start"] == 11 and first["total"] == second["total"] >= 20
    assert not {i["link"] for i in first["items"]} & {i["link"] for i in second["items"]}
    total = first["total"]
    tail = _search(sim, "news", query="청약 가점", display=10, start=total - 2).json()
    assert len(tail["items"]) == 3 and tail["display"] == 3
    beyond = _search(sim, "news", query="청약 가점", display=10, start=min(total + 5, 1000)).json()
    assert beyond["items"] == []


def test_naver_sort_date(sim: SimServer) -> None:
    by_sim = _search(sim, "blog", query="재개발", display=30).json()["items"]
    by_date = _search(sim, "blog", query="재개발", display=30, sort="date").json()["items"]
    assert [i["link"] for i in by_sim] != [i["link"] for i in by_date]
    dates = [i["postdate"] for i in by_date]
    assert dates == sorted(dates, reverse=True)


def test_naver_empty_results() -> None:
    query = next(f"전세 {i}" for i in range(1000) if naver_api.is_empty_query(f"전세 {i}", 0.1))
    with _sim(empty_rate=0.1) as s:
        body = _search(s, "webkr", query=query).json()
        assert body["total"] == 0 and body["items"] == [] and body["display"] == 0
        assert _search(s, "webkr", query="전세 사기").json()["total"] > 0
        assert s.stats()["search"]["ok"] == 2


def test_naver_shared_links_across_categories(sim: SimServer) -> None:
    blog = {i["link"] for i in _search(sim, "blog", query="전세 대출", display=100).json()["items"]}
    web = {i["link"] for i in _search(sim, "webkr", query="전세 대출", display=100).json()["items"]}
    news = {
        i["originallink"]
        for i in _search(sim, "news", query="전세 대출", display=100).json()["items"]
    }
    assert blog & web and len(blog & web) < 30
    assert news & web


def test_naver_auth_fail() -> None:
    with _sim(naver_client_id="id", naver_client_secret="pw") as s:
        for headers in (
            {},
            {"X-Naver-Client-Id": "id"},
            {"X-Naver-Client-Id": "id", "X-Naver-Client-Secret": "x"},
        ):
            r = _search(s, headers=headers, query="전세")
            assert r.status_code == 401
            assert r.json() == {
                "errorMessage": "Authentication failed. (인증에 실패했습니다.)",
                "errorCode": "024",
            }
        ok = _search(
            s, headers={"X-Naver-Client-Id": "id", "X-Naver-Client-Secret": "pw"}, query="전세"
        )
        assert ok.status_code == 200
        assert s.stats()["search"]["auth_fail"] == 3 and s.stats()["search"]["ok"] == 1


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "SE01"),
        ({"query": ""}, "SE01"),
        ({"query": "전세", "display": 0}, "SE02"),
        ({"query": "전세", "display": 101}, "SE02"),
        ({"query": "전세", "display": "x"}, "SE02"),
        ({"query": "전세", "start": 0}, "SE03"),
        ({"query": "전세", "start": 1001}, "SE03"),
        ({"query": "전세", "sort": "rank"}, "SE04"),
    ],
)
def test_naver_param_errors(sim: SimServer, params: dict[str, object], code: str) -> None:
    r = _search(sim, **params)
    assert r.status_code == 400 and r.json()["errorCode"] == code and r.json()["errorMessage"]


def test_naver_unknown_category(sim: SimServer) -> None:
    r = _search(sim, "shop", query="전세")
    assert r.status_code == 404
    assert r.json() == {
        "errorMessage": "Invalid search api (존재하지 않는 검색 api 입니다.)",
        "errorCode": "SE05",
    }


def test_naver_quota_rate_limit_and_stats() -> None:
    with _sim(naver_quota=1) as s:
        assert _search(s, query="전세").status_code == 200
        r = _search(s, query="전세")
        assert r.status_code == 429 and r.json()["errorCode"] == "010"
        assert s.stats()["search"] == {
            "ok": 1,
            "auth_fail": 0,
            "faults": faults(quota=1),
        }
        assert requests.get(f"{s.url}/_sim/stats", timeout=5).json() == s.stats()
    with _sim(fault_429_rate=1.0, retry_after_s=3) as s:
        r = _search(s, query="전세")
        assert (
            r.status_code == 429
            and r.json()["errorCode"] == "012"
            and r.headers["Retry-After"] == "3"
        )


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_port_file_health_sigterm(tmp_path: Path) -> None:
    port_file = tmp_path / "sim.port"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seedtune_sandbox.sim",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--seed",
            "3",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not port_file.exists() and time.monotonic() < deadline:
            assert proc.poll() is None
            time.sleep(0.05)
        port = int(port_file.read_text())
        url = f"http://127.0.0.1:{port}"
        assert requests.get(f"{url}/_sim/health", timeout=5).json() == {"ok": True}
        r = requests.post(
            f"{url}/v1/chat/completions",
            headers={"Authorization": "Bearer topsecret-key"},
            json={"model": "m", "messages": SEED_PROMPT},
            timeout=5,
        )
        assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "GET /_sim/health 200" in err and "POST /v1/chat/completions 200" in err
    assert "topsecret" not in err
    # the page servers are loopback, which the crawler refuses unless allowed: it says how
    allow = re.search(r"SEEDTUNE_CRAWL_ALLOW_NETWORKS='(\[.*?\])'", err)
    assert allow, err
    allowed = json.loads(allow.group(1))
    assert allowed and all(a.startswith("127.0.0.1:") for a in allowed)


def test_a_second_simulator_on_a_used_port_is_one_line() -> None:
    with SimServer(SimConfig()) as first:
        port = first.port
        proc = subprocess.run(
            [sys.executable, "-m", "seedtune.cli", "sim", "--port", str(port), "--quiet"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert requests.get(f"{first.url}/_sim/health", timeout=5).json() == {"ok": True}
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if "error" in x]
    assert line == (
        f"seedtune sim: error: port {port} is in use; pick another with "
        "--port or stop the other simulator"
    )


def test_main_rejects_bad_config() -> None:
    assert main(["--fault-429-rate", "0.8", "--fault-5xx-rate", "0.8"]) == 2


def test_schema_fill_covers_pydantic_features() -> None:
    import enum
    import random
    from datetime import date, datetime

    from seedtune_sandbox.sim.schema_fill import fill_schema

    class Kind(enum.Enum):
        sale = "매매"
        lease = "전세"

    class Node(BaseModel):
        name: str = Field(min_length=2, max_length=12)
        children: list[Node] = Field(default_factory=list, max_length=2)

    class Everything(BaseModel):
        kind: Kind
        tags: dict[str, int]
        pair: tuple[int, str]
        when: datetime
        day: date
        ratio: float = Field(gt=0, lt=1)
        count: int = Field(ge=3, le=3)
        fixed: Literal["x"]
        maybe: list[str] | None
        tree: Node
        unique: set[str]

    schema = Everything.model_json_schema()
    for seed in range(5):
        value = fill_schema(schema, prompt='시드 단어 "청약"', rng=random.Random(seed))
        Everything.model_validate(value)


def test_reference_judge_prefers_longer_reference_like_answers() -> None:
    """The demo's stand-in judge: deterministic, and it moves the win rate."""
    from seedtune_sandbox.sim.judge import judge

    from seedtune.tasks import judge as judge_task
    from seedtune.tasks import score as score_task

    ref = "전세 계약 전에는 등기부등본으로 근저당과 가압류를 확인해야 합니다."
    good = "계약 전에 등기부등본을 떼어 근저당과 가압류가 있는지 확인해야 합니다."
    reqs = judge_task.build_requests(
        ["전세 계약 전 확인할 것은?"], [good], [""], judge_task.template(), "sim", [ref]
    )
    first, second = (
        judge(r.messages[-1]["content"], {"verdict": "tie", "reason": "r"}) for r in reqs
    )
    assert (first["verdict"], second["verdict"]) == ("A", "B")  # the tuned answer, both orders
    scores = score_task.build_score_requests(
        ["질문?"],
        {"tuned": [good], "base": ["모르겠습니다."]},
        score_task.template(),
        "sim",
        [ref],
    )
    tuned, base = (
        judge(r.messages[-1]["content"], {"score": 5, "reason": "r"})["score"] for r in scores
    )
    assert tuned > base >= 1
