"""The Naver Search client and the search stage against the loopback simulator."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import unicodedata
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from seedtune_sandbox.demo import SIM_ENV, sim_config
from seedtune_sandbox.sim import SimServer, naver_api
from support import Workspace, damage_line, last_line

from seedtune.core.cache import ResponseCache
from seedtune.core.config import SearchConfig
from seedtune.core.errors import ConfigError
from seedtune.core.records import read_json, read_jsonl
from seedtune.retrieval import naver
from seedtune.retrieval import search as search_module
from seedtune.retrieval.documents import clean_link, clean_text, dedupe_documents, to_documents
from seedtune.retrieval.naver import NaverClient, NaverError
from seedtune.retrieval.quota import DailyBudget, QuotaExceeded, account_key
from seedtune.retrieval.search import SearchRun, derived_rows, search_all, search_metrics

ENTITY = re.compile(r"&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);")


def _client(
    sim: SimServer,
    tmp_path: Path,
    secret: str | None = SIM_ENV["NAVER_CLIENT_SECRET"],
    client_id: str | None = SIM_ENV["NAVER_CLIENT_ID"],
    budget: DailyBudget | None = None,
    **kw: object,
) -> NaverClient:
    cfg = SearchConfig(base_url=sim.naver_base_url, **{"rps": 1000, **kw})
    return NaverClient(cfg, ResponseCache(tmp_path / "search"), client_id, secret, budget=budget)


def _urls(client: NaverClient) -> list[tuple[str, str, object]]:
    """Record (method, url, body) of every request the client sends."""
    seen: list[tuple[str, str, object]] = []
    client.session.hooks["response"].append(
        lambda r, *a, **k: seen.append((r.request.method, r.request.url, r.request.body))
    )
    return seen


@pytest.fixture()
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float | None]]:
    """Retry at once (the backoff itself is tested separately); records each wait asked for."""
    asked: list[tuple[int, float | None]] = []

    def fake(attempt: int, retry_after: float | None = None) -> float:
        asked.append((attempt, retry_after))
        return 0.0

    monkeypatch.setattr(naver, "backoff_s", fake)
    return asked


# --------------------------------------------------------------------------- cleaning


def test_clean_text_removes_markup_and_unescapes_entities() -> None:
    assert (
        clean_text("<b>전세</b> &quot;사기&quot; &amp; 대출 &lt;주의&gt;  &#39;팁&#39;")
        == "전세 \"사기\" & 대출 <주의> '팁'"
    )
    assert clean_text("<B class='x'>청약</B>&amp;quot;가점&amp;quot;\u200b") == '청약"가점"'
    assert (
        clean_text("&amp;lt;b&amp;gt;재건축&amp;lt;/b&amp;gt; &lt;2025 가이드&gt;")
        == "재건축 <2025 가이드>"
    )
    assert clean_text(unicodedata.normalize("NFD", "전세")) == "전세"  # decomposed jamo recomposed
    assert clean_text("  a \n\t b  ") == "a b" and clean_text(None) == ""
    assert (
        clean_link(" https://blog.naver.com/x?Redirect=Log&amp;logNo=1 ")
        == "https://blog.naver.com/x?Redirect=Log&logNo=1"
    )


def test_one_answer_becomes_documents_with_link_and_date() -> None:
    body = {
        "items": [
            {
                "title": "<b>전세</b> 계약",
                "link": "https://a",
                "description": "설명 &amp; 팁",
                "postdate": "20261120",
            },
            {
                "title": "다른 글",
                "originallink": "https://a",
                "link": "https://n/1",
                "description": "중복 링크",
                "pubDate": "Mon",
            },
        ]
    }
    docs = to_documents("blog", body)
    assert docs[0] == {
        "category": "blog",
        "title": "전세 계약",
        "description": "설명 & 팁",
        "link": "https://a",
        "date": "2026-11-20",
    }
    assert docs[1]["link"] == "https://a" and docs[1]["date"] == "Mon"  # kept, not lost
    assert len(dedupe_documents(docs)) == 1


def test_personal_data_never_leaves_the_search_answer() -> None:
    body = {
        "items": [
            {
                "title": "전세 사기 <b>상담</b>",
                "link": "https://a",
                "description": "문의 010-9876-5432, lee@daum.net 보증금 3억 원",
            }
        ]
    }
    (doc,) = to_documents("kin", body)
    assert doc["description"] == "문의 [전화번호], [이메일] 보증금 3억 원"
    assert doc["pii_masked"] == {"phone": 1, "email": 1}


def test_duplicates_across_categories_go_by_link_and_by_text() -> None:
    docs = [
        {
            "category": "blog",
            "title": "전세 계약",
            "description": "확정일자",
            "link": "https://a.kr/1",
        },
        {"category": "news", "title": "다른 글", "description": "x", "link": "http://www.a.kr/1/"},
        {
            "category": "kin",
            "title": "전세  계약!",
            "description": "확정 일자",
            "link": "https://b",
        },
        {"category": "kin", "title": "새 글", "description": "y", "link": ""},
        {"category": "webkr", "title": "또 다른 글", "description": "z", "link": ""},
    ]
    assert [d["category"] + d["title"] for d in dedupe_documents(docs)] == [
        "blog전세 계약",
        "kin새 글",
        "webkr또 다른 글",
    ]


# --------------------------------------------------------------------------- client


def test_documents_are_clean_and_keep_their_fields(sim, tmp_path) -> None:
    questions = [f"전세 사기 예방 방법 {i}" for i in range(6)]
    rows, stopped = search_all(
        _client(sim, tmp_path, categories=["blog", "news", "kin"]), questions
    )
    assert stopped is None and [r["question"] for r in rows] == questions
    docs = [d for r in rows for d in r["documents"]]
    assert docs and {d["category"] for d in docs} == {"blog", "news", "kin"}
    for d in docs:
        assert set(d) == {"category", "title", "description", "link", "date"}
        text = d["title"] + " " + d["description"]
        assert "<b>" not in text and "</b>" not in text and not ENTITY.search(text), text
        assert d["link"].startswith(("https://", "http://127.0.0.1:"))  # the sim's page origins
        assert d["date"] is None or re.fullmatch(r"\d{4}-\d{2}-\d{2}", d["date"])
    alltext = " ".join(d["title"] + d["description"] for d in docs)
    assert '"' in alltext and "&" in alltext and "<" in alltext  # unescaped, not dropped
    for row in rows:
        links = [d["link"] for d in row["documents"]]
        assert len(links) == len(set(links))


def test_display_start_and_sort_travel_in_the_url(sim, tmp_path) -> None:
    client = _client(sim, tmp_path, categories=["blog", "webkr"], display=3, pages=2)
    sent = _urls(client)
    (row,), _ = search_all(client, ["청약 가점 계산 방법"])
    assert len(sent) == 4
    for method, url, body in sent:
        q = parse_qs(urlsplit(url).query)
        assert method == "GET" and body is None
        assert q["display"] == ["3"] and q["start"][0] in ("1", "4")
        assert q["query"] == ["청약 가점 계산 방법"]
        assert ("sort" in q) == ("/blog.json" in url)
    per_cat = {c: sum(d["category"] == c for d in row["documents"]) for c in ("blog", "webkr")}
    assert 4 <= per_cat["blog"] <= 6 and 1 <= per_cat["webkr"] <= 6


def test_empty_results_are_kept_and_counted(sim, tmp_path) -> None:
    empty = next(
        q
        for q in (f"전세 {i}" for i in range(1000))
        if naver_api.is_empty_query(q, sim.config.empty_rate)
    )
    client = _client(sim, tmp_path, categories=["blog", "news"])
    rows, stopped = search_all(client, ["전세 사기 예방", empty])
    assert stopped is None and [r["question"] for r in rows] == ["전세 사기 예방", empty]
    assert rows[1]["documents"] == [] and rows[0]["documents"]
    metrics = search_metrics(rows, client)
    assert metrics["questions"] == 2 and metrics["no_results"] == 1
    assert metrics["calls"] == 4 and metrics["calls_today"] == 4


def test_answers_are_cached_and_a_rerun_needs_no_call_and_no_credentials(sim, tmp_path) -> None:
    questions = [f"재건축 초과이익 환수 {i}" for i in range(5)]
    first, _ = search_all(_client(sim, tmp_path, categories=["blog", "news"]), questions)
    calls = sim.stats()["search"]["ok"]
    again = _client(sim, tmp_path, categories=["blog", "news"], secret=None, client_id=None)
    rows, stopped = search_all(again, questions)
    assert rows == first and stopped is None
    assert sim.stats()["search"]["ok"] == calls and again.stats.cache_hits == 10


def test_a_rerun_cleans_only_the_questions_it_has_not_searched(sim, tmp_path, monkeypatch) -> None:
    """A new seed word's rerun reads earlier questions back as their cleaned rows instead
    of cleaning each cached answer again, and streams rows in input order through a
    window smaller than the run."""
    cleaned: list[str] = []
    real = search_module.to_documents
    monkeypatch.setattr(
        search_module,
        "to_documents",
        lambda category, body: cleaned.append(category) or real(category, body),
    )
    questions = [f"분양권 전매 제한 {i}" for i in range(12)]
    client = _client(sim, tmp_path, categories=["blog", "news"])
    first = list(
        SearchRun(client, questions, window=3, rows=derived_rows(tmp_path / "search", client.cfg))
    )
    assert [r["question"] for r in first] == questions and len(cleaned) == 24

    cleaned.clear()
    again = _client(sim, tmp_path, categories=["blog", "news"])
    run = SearchRun(
        again,
        [*questions, "분양권 전매 제한 새 질문"],
        window=3,
        rows=derived_rows(tmp_path / "search", again.cfg),
    )
    rows = list(run)
    assert rows[:12] == first and run.from_rows == 12
    assert len(cleaned) == 2 and again.stats.calls == 2  # only the new question
    # other params: the old rows go, and rows are derived again from the cached answers
    other = _client(sim, tmp_path, categories=["news", "blog"])
    derived_rows(tmp_path / "search", other.cfg)
    assert len(list((tmp_path / "search").glob("rows-*"))) == 1


def test_a_failure_while_streaming_is_raised_not_taken_for_the_end(sim, tmp_path) -> None:
    run = SearchRun(
        _client(sim, tmp_path, secret="wrong"), [f"전세 {i}" for i in range(40)], window=4
    )
    with pytest.raises(ConfigError, match="NAVER_CLIENT_SECRET"):
        list(run)


def test_lone_surrogates_in_items_are_replaced_and_cached(tmp_path) -> None:
    with SimServer(sim_config(fault_surrogate_rate=1.0)) as sim:
        client = _client(sim, tmp_path, categories=["blog"])
        rows, _ = search_all(client, ["전세 보증금 반환"])
        again = _client(sim, tmp_path, categories=["blog"])
        assert search_all(again, ["전세 보증금 반환"])[0] == rows  # from the cache
        assert sim.stats()["search"]["faults"]["surrogate"] == 1
    text = "".join(d["description"] for d in rows[0]["documents"])
    assert "\ufffd" in text and not any("\ud800" <= c <= "\udfff" for c in text)


def test_damaged_cache_entry_is_fetched_again(sim, tmp_path, caplog) -> None:
    client = _client(sim, tmp_path, categories=["blog"])
    client.search("청약 가점", "blog")
    client.cache.close()
    (segment,) = (tmp_path / "search").glob("seg-*.jsonl")
    damage_line(segment)
    with caplog.at_level("WARNING"):
        body = _client(sim, tmp_path, categories=["blog"]).search("청약 가점", "blog")
    assert isinstance(body["items"], list) and sim.stats()["search"]["ok"] == 2
    assert f"ignoring damaged cache entry {segment}" in caplog.text


def test_error_bodies_that_echo_credentials_are_redacted(tmp_path) -> None:
    with SimServer(sim_config(fault_echo_rate=1.0)) as sim, pytest.raises(NaverError) as err:
        _client(sim, tmp_path).search("전세", "blog")
    assert "SE99" in str(err.value) and "***" in str(err.value)
    assert SIM_ENV["NAVER_CLIENT_SECRET"] not in str(err.value)
    assert SIM_ENV["NAVER_CLIENT_ID"] not in str(err.value)


def test_wrong_credentials_fail_at_once_naming_the_variables(sim, tmp_path) -> None:
    with pytest.raises(ConfigError, match="NAVER_CLIENT_ID / NAVER_CLIENT_SECRET"):
        _client(sim, tmp_path, secret="wrong").search("전세", "blog")
    assert sim.stats()["search"]["auth_fail"] == 1  # no retry
    with pytest.raises(ConfigError, match="NAVER_CLIENT_SECRET"):
        search_all(_client(sim, tmp_path, secret="wrong"), [f"전세 {i}" for i in range(40)])
    assert sim.stats()["search"]["auth_fail"] <= 1 + naver.WORKERS  # the others stopped


def test_missing_credentials_name_the_variable(sim, tmp_path) -> None:
    with pytest.raises(ConfigError, match="NAVER_CLIENT_SECRET not set"):
        _client(sim, tmp_path, secret=None).search("전세", "blog")
    stats = sim.stats()["search"]
    assert stats["ok"] == stats["auth_fail"] == sum(stats["faults"].values()) == 0


def test_refused_query_names_the_query(sim, tmp_path) -> None:
    with pytest.raises(NaverError, match=r"blog search for query '   '.*SE01"):
        _client(sim, tmp_path).search("   ", "blog")


def test_rate_limits_5xx_and_broken_bodies_are_retried(tmp_path, no_backoff) -> None:
    cfg = sim_config(
        fault_429_rate=0.2, retry_after_s=0.25, fault_5xx_rate=0.2, fault_truncated_rate=0.1, seed=5
    )
    questions = [f"양도소득세 비과세 요건 {i}" for i in range(12)]
    with SimServer(cfg) as sim:
        # half the answers fail, in any order the threads take: 20 retries make a run of 21
        # failures for one query (one in two million) what ends it, not chance
        client = _client(sim, tmp_path, categories=["blog", "news"], max_retries=20)
        rows, stopped = search_all(client, questions)
        faults = sim.stats()["search"]["faults"]
    assert stopped is None and len(rows) == 12
    assert faults["429"] and faults["5xx"] and faults["truncated"]
    assert client.stats.retries == faults["429"] + faults["5xx"] + faults["truncated"]
    assert (1, 0.25) in no_backoff or any(r == 0.25 for _, r in no_backoff)  # Retry-After seen


def test_retries_give_up_with_the_query_named(tmp_path, no_backoff) -> None:
    with (
        SimServer(sim_config(fault_5xx_rate=1.0)) as sim,
        pytest.raises(NaverError, match=r"query '전세'.*after 2 retries \(HTTP 5"),
    ):
        _client(sim, tmp_path, max_retries=2).search("전세", "news")


def test_bad_or_unreachable_base_url(tmp_path, no_backoff) -> None:
    def client(url: str) -> NaverClient:
        return NaverClient(
            SearchConfig(base_url=url, max_retries=1, timeout_s=2),
            ResponseCache(tmp_path / "search"),
            "id",
            "secret",
        )

    with pytest.raises(ConfigError, match=r"^search\.base_url: 'openapi\.naver\.com' is not"):
        client("openapi.naver.com").search("전세", "blog")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(NaverError, match=f"after 1 retries \\(ConnectionError reaching {url}"):
        client(url).search("전세", "blog")
    with SimServer(sim_config()) as sim, pytest.raises(NaverError, match="check search.base_url"):
        client(sim.url + "/api").search("전세", "blog")  # .../api/v1/search/blog.json: 404


# --------------------------------------------------------------------------- quota


def test_naver_quota_stops_then_resumes_without_refetching(tmp_path) -> None:
    questions = [f"청약 가점 계산 {i}" for i in range(10)]
    with SimServer(sim_config(naver_quota=6)) as sim:
        rows, stopped = search_all(
            _client(sim, tmp_path, categories=["blog"]), questions, workers=1
        )
        assert stopped and "errorCode 010" in stopped and len(rows) == 6
        assert len(ResponseCache(tmp_path / "search")) == 6
    with SimServer(sim_config()) as fresh:
        client = _client(fresh, tmp_path, categories=["blog"])
        rows, stopped = search_all(client, questions)
        assert stopped is None and [r["question"] for r in rows] == questions
        assert fresh.stats()["search"]["ok"] == 4 and client.stats.cache_hits == 6


def test_daily_budget_persists_across_runs_and_resets_the_next_day(sim, tmp_path) -> None:
    day = ["2026-11-20"]
    ledger = tmp_path / "ledger.sqlite3"

    def budget() -> DailyBudget:  # a fresh object per "run", like a new process
        return DailyBudget(3, account_key(SIM_ENV["NAVER_CLIENT_ID"]), ledger, lambda: day[0])

    questions = [f"전세 대출 한도 {i}" for i in range(5)]
    rows, stopped = search_all(
        _client(sim, tmp_path, categories=["blog"], budget=budget()), questions, workers=1
    )
    assert len(rows) == 3 and "search.daily_quota=3" in stopped and "2026-11-20" in stopped
    rows, stopped = search_all(
        _client(sim, tmp_path, categories=["blog"], budget=budget()), questions, workers=1
    )
    assert len(rows) == 3 and stopped and sim.stats()["search"]["ok"] == 3  # no call today
    with pytest.raises(QuotaExceeded, match="search.daily_quota=3"):
        _client(sim, tmp_path, categories=["blog"], budget=budget()).search(questions[4], "blog")
    assert SIM_ENV["NAVER_CLIENT_ID"].encode() not in ledger.read_bytes()  # a one-way tag
    day[0] = "2026-11-21"
    rows, stopped = search_all(
        _client(sim, tmp_path, categories=["blog"], budget=budget()), questions
    )
    assert stopped is None and len(rows) == 5 and sim.stats()["search"]["ok"] == 5
    assert budget().used() == 2


# --------------------------------------------------------------------------- stage


def _stage_ws(ws: Workspace, base_url: str, questions: list[str], **search: object) -> Workspace:
    ws.params(
        search={
            "base_url": base_url,
            "categories": ["blog", "news"],
            "display": 5,
            "rps": 1000,
            "max_retries": 2,
            **search,
        }
    )
    ws.write("data/questions.jsonl", [{"question": q, "seed": "전세"} for q in questions])
    return ws


def test_stage_quota_stop_exits_with_one_line_then_resumes(sim, workspace) -> None:
    questions = [f"전세 계약 갱신 청구권 {i}" for i in range(8)]
    with SimServer(sim_config(naver_quota=7)) as tight:
        ws = _stage_ws(workspace, tight.naver_base_url, questions)
        proc = ws.run("search", SIM_ENV)
    assert proc.returncode == 2, proc.stderr
    line = last_line(proc.stderr)
    assert line.startswith("search: error: Naver's daily quota is exhausted") and "resume" in line
    assert proc.stderr.count("search: error:") == 1
    assert not (ws.path / "data" / "documents.jsonl").exists()
    kept = len(ResponseCache(ws.path / "data" / "cache" / "search"))
    assert kept == 7 and f"{kept} answers kept" in line

    _stage_ws(ws, sim.naver_base_url, questions)  # same workspace, a fresh server
    proc = ws.run("search", SIM_ENV)
    assert proc.returncode == 0, proc.stderr
    rows = read_jsonl(ws.path / "data" / "documents.jsonl")
    assert [r["question"] for r in rows] == questions
    assert sim.stats()["search"]["ok"] == 2 * len(questions) - kept  # nothing refetched
    metrics = read_json(ws.path / "metrics" / "search.json")
    # a question searched whole before is read back as its row (two answers each)
    assert metrics["questions"] == 8 and metrics["rows_reused"] >= 1
    assert metrics["cache_hits"] + 2 * metrics["rows_reused"] == kept


def test_stage_daily_budget_holds_across_runs(sim, workspace) -> None:
    ws = _stage_ws(
        workspace, sim.naver_base_url, [f"청약 통장 {i}" for i in range(6)], daily_quota=5
    )
    first = ws.run("search", SIM_ENV)
    assert first.returncode == 2 and "search.daily_quota=5" in last_line(first.stderr)
    calls = sim.stats()["search"]["ok"]
    assert calls == 5
    second = ws.run("search", SIM_ENV)
    assert second.returncode == 2 and "search.daily_quota=5" in last_line(second.stderr)
    assert sim.stats()["search"]["ok"] == calls  # the day's budget is still spent


def test_stage_bad_questions_file_is_one_line(sim, workspace) -> None:
    ws = _stage_ws(workspace, sim.naver_base_url, [])
    ws.write("data/questions.jsonl", '{"seed": "전세"}\n')
    proc = ws.run("search", SIM_ENV)
    assert proc.returncode == 2
    assert last_line(proc.stderr) == (
        "search: error: data/questions.jsonl: row 1 has no non-empty `question` string"
    )


def test_ask_rag_on_an_unreachable_naver_is_one_line(workspace) -> None:
    """The CLI shares the stages' error policy: a Naver failure is one line, no traceback."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    # ask checks the model resolves before it searches; the search fails before it loads
    model = workspace.write("gemma/config.json", "{}").parent
    ws = workspace.params(
        search={"base_url": url, "max_retries": 1}, models={"google/gemma-2b-it": str(model)}
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "seedtune.cli",
            "ask",
            "전세란?",
            "--rag",
            "--adapter",
            "none",
            "--cache",
            "search-cache",
        ],
        cwd=ws.path,
        env=ws.env(SIM_ENV),
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert last_line(proc.stderr).startswith("seedtune ask: error: Naver blog search for query")


def test_the_ledger_counts_every_call_of_parallel_processes(tmp_path) -> None:
    """Three processes share one application's budget: no call goes uncounted."""
    ledger = tmp_path / "ledger.sqlite3"
    script = (
        "import sys\nfrom seedtune.retrieval.quota import DailyBudget, QuotaExceeded\n"
        f"b = DailyBudget(250, 'app', {str(ledger)!r})\nn = 0\n"
        "for _ in range(100):\n    try:\n        b.take(); n += 1\n"
        "    except QuotaExceeded:\n        pass\nprint(n)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    taken = [int(p.communicate(timeout=120)[0]) for p in procs]
    assert sum(taken) == 250  # the limit held across processes, to the call
    assert DailyBudget(250, "app", ledger).used() == 250


def test_search_and_ask_share_the_ledger_outside_dvc_outputs(sim, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SEEDTUNE_QUOTA_LEDGER", str(tmp_path / "machine" / "ledger.sqlite3"))
    a = _client(sim, tmp_path / "a", categories=["blog"])
    b = _client(sim, tmp_path / "b", categories=["blog"])  # another cache, e.g. ask --rag's
    a.search("전세", "blog")
    b.search("청약", "blog")
    assert a.budget.used() == b.budget.used() == 2
    assert not list((tmp_path / "a").rglob("*quota*"))  # nothing inside the cache (a DVC out)


def test_403_says_https_not_wrong_keys(sim, tmp_path) -> None:
    """Naver's docs: 403 answers a call over http instead of https."""
    import requests

    resp = requests.Response()
    resp.status_code = 403
    resp._content = b'{"errorMessage": "Forbidden", "errorCode": "403"}'
    with pytest.raises(ConfigError, match=r"HTTP 403.*search\.base_url=.*must use https://"):
        _client(sim, tmp_path)._accept(resp, "blog", "전세")
