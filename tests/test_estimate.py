"""`seedtune estimate` against what the stages then really spend: LLM calls and dollars,
Naver calls and days of quota (checked against the search stage on the simulator), pages
to crawl per host (checked against the crawl stage on a loopback site), projected numbers
before the inputs exist, and one-line errors for bad machine settings."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from seedtune_sandbox.demo import SIM_ENV
from support import Workspace, last_line, ranked_rows

from seedtune.core.config import CrawlConfig
from seedtune.retrieval.forecast import crawl_time, projected_crawl_pages, quota_days


def _estimate(ws: Workspace, keys: dict[str, str] | None = None, table: bool = False) -> Any:
    """`seedtune estimate --json` (or the table) run in ``ws`` as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "seedtune.cli", "estimate", *([] if table else ["--json"])],
        cwd=ws.path,
        env=ws.env(SIM_ENV if keys is None else keys),
        text=True,
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout if table else json.loads(proc.stdout)


def _stages(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["stage"]: r for r in result["llm"]}


# --------------------------------------------------------------------------- LLM rows


def test_estimate_predicts_the_calls_a_run_makes(sim, workspace: Workspace) -> None:
    ws = workspace.params(
        llm={"base_url": sim.openai_base_url, "model": "sim-gpt"},
        queries={"per_seed": 3, "sources": ["llm"]},
    )
    ws.write("data/seed_words.txt", "전세\n청약\n재건축\n")
    ws.write("data/ranked.jsonl", ranked_rows(7))

    before = _stages(_estimate(ws))
    assert (before["queries"]["calls"], before["synthesize"]["calls"]) == (3, 7)
    assert before["queries"]["usd"] > 0 and before["synthesize"]["prompt_tokens"] > 0
    assert sim.stats()["chat"]["ok"] == 0  # estimating spends nothing
    assert ws.run("queries", SIM_ENV).returncode == 0
    assert ws.run("synthesize", SIM_ENV).returncode == 0
    assert sim.stats()["chat"]["ok"] == 10
    after = _stages(_estimate(ws))
    assert (after["queries"]["calls"], after["queries"]["cached"]) == (0, 3)
    assert (after["synthesize"]["calls"], after["synthesize"]["cached"]) == (0, 7)


def test_estimate_counts_the_titles_naver_and_llm_calls(sim, workspace: Workspace) -> None:
    ws = workspace.params(
        llm={"base_url": sim.openai_base_url, "model": "sim-gpt"},
        search={"base_url": sim.naver_base_url},
        queries={"sources": ["titles"], "titles": {"per_seed": 30, "per_prompt": 20}},
    )
    ws.write("data/seed_words.txt", "전세\n청약\n")

    before = _estimate(ws)
    titles = _stages(before)["queries.titles"]
    # 2 seed words x 2 categories x 1 page; up to 60 titles a word, 20 a prompt
    assert (titles["naver_calls"], titles["naver_cached"], titles["calls"]) == (4, 0, 6)
    assert titles["projected"] and titles["usd"] > 0
    assert before["naver"]["titles_calls"] == 4  # with the search stage's, against the quota
    assert sim.stats()["search"]["ok"] == 0 and sim.stats()["chat"]["ok"] == 0
    assert ws.run("queries", SIM_ENV).returncode == 0
    prompts = ws.metrics("queries")["titles"]["prompts"]
    after = _estimate(ws)
    titles = _stages(after)["queries.titles"]
    assert (titles["naver_calls"], titles["naver_cached"]) == (0, 4)
    assert (titles["requests"], titles["calls"], titles["cached"]) == (prompts, 0, prompts)
    assert not titles["projected"]
    # the ledger of this application (NAVER_CLIENT_ID) counts the titles' calls as used
    assert (after["naver"]["titles_calls"], after["naver"]["used_today"]) == (0, 4)


# --------------------------------------------------------------------------- Naver


def _search_ws(ws: Workspace, base_url: str, questions: list[str], **search: Any) -> Workspace:
    ws.params(
        search={"base_url": base_url, "categories": ["blog", "news"], "rps": 1000, **search},
        queries={"sources": ["llm"]},
    )
    ws.write("data/seed_words.txt", "전세\n")
    ws.write("data/questions.jsonl", [{"question": q, "seed": "전세"} for q in questions])
    return ws


def test_search_calls_are_the_calls_the_stage_makes(sim, workspace: Workspace) -> None:
    questions = [f"전세 계약 갱신 {i}번째 질문" for i in range(5)]
    ws = _search_ws(workspace, sim.naver_base_url, questions[:3])
    assert ws.run("search", SIM_ENV).returncode == 0  # 3 questions' answers now cached
    made = sim.stats()["search"]["ok"]
    assert made == 6
    _search_ws(ws, sim.naver_base_url, questions + questions[:1])  # a repeat costs nothing

    naver = _estimate(ws)["naver"]
    assert (naver["questions"], naver["search_requests"]) == (5, 10)
    assert (naver["search_cached"], naver["search_calls"], naver["at_most"]) == (6, 4, False)
    assert (naver["used_today"], naver["calls"], naver["days"]) == (6, 4, 1)
    assert not naver["projected"]
    assert ws.run("search", SIM_ENV).returncode == 0
    assert sim.stats()["search"]["ok"] - made == naver["search_calls"]
    again = _estimate(ws)["naver"]
    assert (again["search_calls"], again["search_cached"], again["days"]) == (0, 10, 0)
    assert "0 Naver calls to make: every answer is cached" in _estimate(ws, table=True)


def test_paged_search_is_at_most_before_and_exact_from_the_cache(sim, workspace) -> None:
    """With ``search.pages: 2`` a question's second page is asked only when the first was
    full: before any answer it is counted (at most), after the run the estimate walks the
    stage's own paging through the cache and finds every call it made."""
    questions = [f"아파트 청약 {i}순위 조건" for i in range(4)]
    ws = _search_ws(workspace, sim.naver_base_url, questions, pages=2, display=5)
    before = _estimate(ws)["naver"]
    assert (before["search_calls"], before["at_most"]) == (4 * 2 * 2, True)
    assert "at most 16 Naver calls" in _estimate(ws, table=True)
    assert ws.run("search", SIM_ENV).returncode == 0
    made = sim.stats()["search"]["ok"]
    assert made <= before["search_calls"]
    after = _estimate(ws)["naver"]
    assert (after["search_requests"], after["search_cached"], after["search_calls"]) == (
        made,
        made,
        0,
    )


def test_days_of_quota_count_what_the_ledger_says_was_used(sim, workspace) -> None:
    questions = [f"청약 통장 {i}" for i in range(6)]
    ws = _search_ws(workspace, sim.naver_base_url, questions, daily_quota=5)
    naver = _estimate(ws)["naver"]
    assert (naver["calls"], naver["daily_quota"], naver["days"]) == (12, 5, 3)
    assert "12 Naver calls: 3 days at 5/day" in _estimate(ws, table=True)
    assert ws.run("search", SIM_ENV).returncode == 2  # the day's 5 calls are spent
    naver = _estimate(ws)["naver"]
    # 7 calls left, none of them today
    assert (naver["used_today"], naver["search_cached"], naver["calls"], naver["days"]) == (
        5,
        5,
        7,
        2,
    )
    assert "(5 already used today)" in _estimate(ws, table=True)


def test_quota_days_arithmetic() -> None:
    assert quota_days(29_400, 25_000) == 2  # the tutorial's 9,800 questions x 3 categories
    assert quota_days(25_000, 25_000) == 1
    assert quota_days(50_001, 25_000) == 3
    assert quota_days(0, 25_000, 25_000) == 0
    assert quota_days(100, 25_000, 24_950) == 2  # 50 today, 50 tomorrow
    assert quota_days(100, 25_000, 25_000) == 1  # all tomorrow
    assert quota_days(100, 25_000, 30_000) == 1  # over (another tool): tomorrow still


# --------------------------------------------------------------------------- crawl


class _Page(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/robots.txt":
            body, code = b"not found", 404
        else:
            body, code = (
                (
                    "<html><body><article>"
                    + "<p>전세 계약 전에 등기부등본을 확인하세요.</p>" * 20
                    + "</article></body></html>"
                ).encode(),
                200,
            )
        self.send_response(code)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def two_hosts() -> Iterator[tuple[str, str]]:
    """Two loopback web servers: two hosts (``host:port``) to the crawler."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Page) for _ in range(2)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield tuple(f"127.0.0.1:{s.server_address[1]}" for s in servers)  # type: ignore[misc]
    for s in servers:
        s.shutdown()
        s.server_close()


def _doc(category: str, link: str | None) -> dict[str, Any]:
    return {"category": category, "title": "전세", "description": "전세 계약", "link": link}


def test_crawl_pages_per_host_are_the_pages_the_stage_fetches(workspace, two_hosts) -> None:
    a, b = (f"http://{h}" for h in two_hosts)
    rows = [
        {
            "question": "q1",
            "documents": [
                _doc("blog", f"{a}/b1"),
                _doc("blog", f"{a}/b2"),
                _doc("news", f"{b}/n1"),
                _doc("kin", f"{a}/k1"),
            ],
        },
        # a link seen in q1, and a document without a link, cost nothing
        {
            "question": "q2",
            "documents": [
                _doc("blog", f"{a}/b1"),
                _doc("news", f"{b}/n2"),
                _doc("news", f"{b}/n3"),
                _doc("kin", None),
            ],
        },
        {"question": "q3", "documents": [_doc("news", f"{b}/n4"), _doc("kin", f"{a}/k2")]},
    ]
    crawl = {
        "host_rps": 4,
        "per_host": 1,
        "concurrency": 16,
        "timeout_s": 5,
        "allow_networks": list(two_hosts),
    }
    ws = workspace.params(crawl={"per_question": 1, **crawl})
    ws.write("data/seed_words.txt", "전세\n")
    ws.write("data/documents.jsonl", rows)
    first = _estimate(ws, {})["crawl"]
    assert (first["links"], first["pages"], first["cached"], first["projected"]) == (
        2,
        2,
        0,
        False,
    )  # q1 and q2 both start with b1
    assert ws.run("crawl").returncode == 0  # b1 and n4 are now cached

    ws.params(crawl={"per_question": 3, **crawl})
    est = _estimate(ws, {})["crawl"]
    # q1: b1 n1 k1 (categories interleaved); q2: b1 n2 n3; q3: n4 k2
    assert (est["links"], est["cached"], est["pages"]) == (7, 2, 5)
    assert [(h["host"], h["pages"]) for h in est["hosts"]] == [(two_hosts[1], 3), (two_hosts[0], 2)]
    # per host: 3 pages x 0.5 s with 1 in flight beats 3 / 4 a second
    assert est["hosts"][0]["seconds"] == 1.5 and est["seconds"] == 1.5
    assert est["bound"] == f"crawl.per_host on {two_hosts[1]}" and est["lower_bound"]
    assert ws.run("crawl").returncode == 0
    metrics = ws.metrics("crawl")
    assert metrics["links"] - metrics["from_cache"] == est["pages"]
    after = _estimate(ws, {})["crawl"]
    assert (after["pages"], after["cached"], after["hosts"], after["seconds"]) == (0, 7, [], 0)

    # two questions added (new seed words) and not searched yet: their pages are projected
    ws.write("data/questions.jsonl", [{"question": q} for q in ("q1", "q2", "q3", "q4", "q5")])
    grown = _estimate(ws, {})["crawl"]
    assert (grown["pages"], grown["cached"], grown["projected_questions"]) == (6, 7, 2)
    assert {h["host"]: h["pages"] for h in grown["hosts"]} == {
        "blog.naver.com": 2,
        "kin.naver.com": 2,
        "news:*": 2,
    }


def test_projected_before_search_and_crawl_have_run(workspace: Workspace) -> None:
    ws = workspace.params(
        queries={"per_seed": 3, "sources": ["llm"]},
        search={"categories": ["blog", "news", "kin"], "daily_quota": 10},
    )
    ws.write("data/seed_words.txt", "전세\n청약\n")
    result = _estimate(ws, {})
    naver, crawl = result["naver"], result["crawl"]
    assert (naver["questions"], naver["search_calls"], naver["projected"]) == (6, 18, True)
    assert naver["days"] == 2 and _stages(result)["synthesize"]["projected"]
    assert (crawl["pages"], crawl["projected"]) == (18, True)
    assert {h["host"]: h["pages"] for h in crawl["hosts"]} == {
        "blog.naver.com": 6,
        "kin.naver.com": 6,
        "news:*": 6,
    }
    assert (crawl["seconds"], crawl["bound"]) == (6.0, "crawl.host_rps on blog.naver.com")
    table = _estimate(ws, {}, table=True)
    assert "18 Naver calls: 2 days at 10/day" in table
    assert "news links (many hosts)" in table
    assert "projected for 6 questions not in data/documents.jsonl" in table

    # questions written, no documents yet: the crawl is projected from the real count
    ws.write("data/questions.jsonl", [{"question": f"전세 질문 {i}"} for i in range(4)])
    result = _estimate(ws, {})
    assert (result["naver"]["search_calls"], result["naver"]["projected"]) == (12, False)
    assert (result["crawl"]["pages"], result["crawl"]["projected"]) == (12, True)

    ws.params(queries={"per_seed": 3, "sources": ["llm"]}, crawl={"per_question": 0})
    result = _estimate(ws, {})
    assert (result["crawl"]["pages"], result["crawl"]["hosts"]) == (0, [])
    assert "snippets only" in _estimate(ws, {}, table=True)


def test_the_tutorials_crawl_takes_hours_on_naver_blog() -> None:
    """9,800 questions, top 3 links each, one crawl.host_rps a second: blog.naver.com and
    kin.naver.com each serve 9,800 pages, 2.7 hours at least."""
    links, hosts = projected_crawl_pages(9_800, CrawlConfig(), ["blog", "news", "kin"], 10)
    assert links == 29_400 and hosts == Counter(
        {"blog.naver.com": 9_800, "kin.naver.com": 9_800, "news:*": 9_800}
    )
    t = crawl_time(hosts, CrawlConfig())
    assert (t["seconds"], t["bound"]) == (9_800, "crawl.host_rps on blog.naver.com")
    faster = crawl_time(hosts, CrawlConfig(host_rps=100, per_host=2, concurrency=4))
    # 29,400 pages x 0.5 s over 4 in flight, all hosts together
    assert (faster["seconds"], faster["bound"]) == (3_675, "crawl.concurrency")


# --------------------------------------------------------------------------- bad settings


@pytest.mark.parametrize(
    ("where", "expect"),
    [
        (
            "env",
            "SEEDTUNE_CRAWL_PER_HOST: crawl.per_host: input should be greater than or equal to 1",
        ),
        ("local", "conf/local/default.yaml: search.daily_quota: input should be a valid integer"),
    ],
)
def test_bad_machine_settings_are_one_line(workspace: Workspace, where: str, expect: str) -> None:
    ws = workspace.params(search={"daily_quota": "lots"} if where == "local" else {})
    ws.write("data/seed_words.txt", "전세\n")
    env = ws.env({"SEEDTUNE_CRAWL_PER_HOST": "0"} if where == "env" else {})
    proc = subprocess.run(
        [sys.executable, "-m", "seedtune.cli", "estimate"],
        cwd=ws.path,
        env=env,
        text=True,
        capture_output=True,
    )
    assert proc.returncode == 2
    assert last_line(proc.stderr).startswith(f"seedtune estimate: error: {expect}")
    assert proc.stderr.count("error:") == 1 and not proc.stdout


# --------------------------------------------------------------------------- the judge


def _eval_rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "question": f"전세 계약 {i}번째 질문은 무엇인가요?",
            "answer": f"참고 답변 {i}.",
            "split": "eval",
        }
        for i in range(n)
    ]


def test_judge_calls_cached_by_the_last_run_are_counted(sim, workspace, monkeypatch) -> None:
    from seedtune.core.cache import ResponseCache
    from seedtune.core.config import load_params
    from seedtune.evaluation import evaluate as ev
    from seedtune.llm.client import LLMClient

    ws = workspace.params(
        llm={"base_url": sim.openai_base_url, "model": "sim-gpt"},
        queries={"sources": ["llm"]},
        evaluate={"max_questions": 5},
    )
    ws.write("data/seed_words.txt", "전세\n")
    rows = _eval_rows(5)
    ws.write("data/instructions.jsonl", rows)
    before = _stages(_estimate(ws))["evaluate"]
    # no answers judged yet: every call is still to make, and the table says why
    assert (before["requests"], before["cached"], before["calls"]) == (20, 0, 20)
    assert before["projected"]
    assert "5 of 5 questions have no answers in reports/answers.jsonl" in _estimate(ws, table=True)

    # what the evaluate stage does with its answers: judge them (the cache fills), record them
    questions = [r["question"] for r in rows]
    answers = {
        "base": [f"잘 모르겠습니다 {i}." for i in range(5)],
        "tuned": [f"등기부등본을 확인하세요 {i}." for i in range(5)],
    }
    monkeypatch.chdir(ws.path)
    monkeypatch.setenv("OPENAI_API_KEY", SIM_ENV["OPENAI_API_KEY"])
    p = load_params(sections=("llm", "train", "evaluate"))
    client = LLMClient(p.llm, ResponseCache(ws.path / "data/cache/evaluate"), desc="judge")
    ev.judge_all(p, client, questions, answers, ev.references(rows, questions))
    assert client.stats.calls == 20
    ws.write(ev.ANSWERS_FILE, ev.answers_rows(questions, answers))

    after = _stages(_estimate(ws))["evaluate"]
    assert (after["requests"], after["cached"], after["calls"]) == (20, 20, 0)
    assert not after["projected"] and "reports/answers.jsonl" in after["note"]
    table = _estimate(ws, table=True)
    assert "* evaluate" not in table  # (synthesize's input, data/ranked.jsonl, does not exist)

    # a question added to the eval split: only its four calls are projected
    ws.write("data/instructions.jsonl", _eval_rows(6))
    grown = workspace.params(
        llm={"base_url": sim.openai_base_url, "model": "sim-gpt"},
        queries={"sources": ["llm"]},
        evaluate={"max_questions": 6},
    )
    more = _stages(_estimate(grown))["evaluate"]
    assert (more["requests"], more["cached"], more["calls"]) == (24, 20, 4)
    assert more["projected"] and "1 of 6 questions" in more["note_projected"]
