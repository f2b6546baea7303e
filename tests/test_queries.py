"""queries stage: question filtering and dedup, user questions, and the stage as DVC runs it
against the simulator (incremental seed words, missing key)."""

from __future__ import annotations

import socket

import pytest
from support import Workspace, last_line

from seedtune.core.config import QueriesConfig
from seedtune.llm.client import LLMOutcome
from seedtune.offline.demo import SIM_ENV
from seedtune.offline.sim import SimServer
from seedtune.synthesis.queries import candidates, filter_questions


def _q(text: str) -> dict:
    return {"question": text, "seed": "전세"}


def test_near_duplicate_korean_questions_are_removed() -> None:
    rows = [_q("전세 계약 시 확정일자는 언제 받아야 하나요?"),
            _q("전세 계약 시 확정일자는 언제 받아야 하나요 ?"),   # exact after normalising
            _q("전세 계약할 때 확정일자는 언제 받아야 하나요?"),   # near duplicate
            _q("전세보증보험은 어떤 경우에 가입할 수 없나요?"),
            _q("What is jeonse?"),                                  # not Korean
            _q("전세?")]                                            # too short
    kept, counts = filter_questions(rows, QueriesConfig())
    assert [r["question"] for r in kept] == ["전세 계약 시 확정일자는 언제 받아야 하나요?",
                                             "전세보증보험은 어떤 경우에 가입할 수 없나요?"]
    assert counts == {"generated": 6, "filtered": 2, "duplicates": 2, "kept": 2}


def test_same_phrasing_about_different_terms_is_not_a_duplicate() -> None:
    rows = [{"question": "전세의 장단점은 무엇인가요?", "seed": "전세"},
            {"question": "월세의 장단점은 무엇인가요?", "seed": "월세"},
            {"question": "전세의 장단점은 무엇인가요?", "seed": "월세"}]  # exact: still removed
    kept, counts = filter_questions(rows, QueriesConfig())
    assert [r["seed"] for r in kept] == ["전세", "월세"] and counts["duplicates"] == 1


def test_list_numbers_go_but_amounts_and_quoted_names_stay() -> None:
    rows = [_q("1. 5.5억 집을 매수하고 싶은데 대출은 얼마나 나오나요?"),
            _q("3.3㎡당 분양가는 어떻게 정해지나요?"),
            _q('- "강동역 역세권 개발 진행중"에 대해 알려주세요.'),
            _q("“깡통전세는 어떻게 피하나요?”")]
    kept, _ = filter_questions(rows, QueriesConfig())
    assert [r["question"] for r in kept] == ["5.5억 집을 매수하고 싶은데 대출은 얼마나 나오나요?",
                                             "3.3㎡당 분양가는 어떻게 정해지나요?",
                                             '"강동역 역세권 개발 진행중"에 대해 알려주세요.',
                                             "깡통전세는 어떻게 피하나요?"]


def test_user_questions_are_merged_with_provenance() -> None:
    outcomes = [LLMOutcome("전세", value={"questions": ["전세 보증금은 어떻게 돌려받나요?"]}),
                LLMOutcome("청약", reject="invalid answer")]
    rows = candidates(outcomes, "gpt-x", "v1", ["  1. 제 질문: 월세 세액공제는 어떻게 받나요? "])
    kept, counts = filter_questions(rows, QueriesConfig())
    assert [(r["seed"], r["source"], r["model"], r["template"]) for r in kept] == [
        ("전세", "llm", "gpt-x", "v1"), (None, "user", None, None)]
    assert kept[1]["question"] == "제 질문: 월세 세액공제는 어떻게 받나요?"
    assert counts["kept"] == 2


# --------------------------------------------------------------------------- stage


def _queries_ws(ws: Workspace, sim: SimServer, seeds: list[str]) -> Workspace:
    ws.params(llm={"base_url": sim.openai_base_url, "model": "sim-gpt"},
              queries={"per_seed": 3})
    ws.write("data/seed_words.txt", "\n".join(seeds) + "\n")
    return ws


def test_one_new_seed_word_costs_only_its_calls(sim, workspace) -> None:
    ws = _queries_ws(workspace, sim, ["전세", "청약", "재건축"])
    assert ws.run("queries", SIM_ENV).returncode == 0
    before = sim.stats()["chat"]["ok"]
    ws.write("data/seed_words.txt", "분양권\n전세\n청약\n재건축\n")  # inserted first
    assert ws.run("queries", SIM_ENV).returncode == 0
    assert sim.stats()["chat"]["ok"] - before == 1
    m = ws.metrics("queries")
    assert (m["calls"], m["cache_hits"], m["seeds"]) == (1, 3, 4)
    assert {r["seed"] for r in ws.rows("data/questions.jsonl")} == {"분양권", "전세", "청약",
                                                                   "재건축"}


def test_missing_key_stops_before_any_request(sim, workspace) -> None:
    ws = _queries_ws(workspace, sim, ["전세", "청약"])
    proc = ws.run("queries", drop=tuple(SIM_ENV))
    assert proc.returncode == 2
    line = last_line(proc.stderr)
    assert line.startswith("queries: error:") and "OPENAI_API_KEY" in line
    assert sim.stats()["chat"]["ok"] == 0
    assert not (ws.path / "data/questions.jsonl").exists()


@pytest.mark.parametrize("content", ["", "# only a comment\n\n"])
def test_empty_seed_file_fails_at_once_naming_it(sim, workspace, content: str) -> None:
    ws = _queries_ws(workspace, sim, [])
    ws.write("data/seed_words.txt", content)
    proc = ws.run("queries", SIM_ENV)
    assert proc.returncode == 2
    assert last_line(proc.stderr).startswith("queries: error: data/seed_words.txt: no seed words")
    assert not (ws.path / "data/questions.jsonl").exists()


def test_unreachable_endpoint_fails_the_stage_naming_the_url(workspace) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    ws = workspace.params(llm={"base_url": url, "model": "sim-gpt", "max_retries": 1},
                          queries={"per_seed": 3})
    ws.write("data/seed_words.txt", "전세\n청약\n")
    proc = ws.run("queries", SIM_ENV)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = last_line(proc.stderr)
    assert line.startswith(f"queries: error: {url}/chat/completions: ClientConnectorError")
    assert "retrying" in proc.stderr  # the retries were visible while they happened
    assert not (ws.path / "data/questions.jsonl").exists()
    rejects = ws.path / "data/rejects/queries.jsonl"
    assert not rejects.exists() or not rejects.read_text()  # an outage is not a reject


def test_the_prompt_asks_for_the_forms_in_queries_forms() -> None:
    """As the tutorial did: questions and instructions both, unless queries.forms narrows."""
    from seedtune.llm.prompts import load_template
    from seedtune.synthesis.queries import build_requests

    def prompt(**cfg: object) -> str:
        (req,) = build_requests(["전세"], QueriesConfig(**cfg), load_template("queries"))
        return req.messages[-1]["content"]

    both = prompt()
    assert "의문문" in both and "지시문" in both
    assert "지시문" not in prompt(forms=["question"])
    assert "의문문" not in prompt(forms=["instruction"]) and "지시문" in prompt(
        forms=["instruction"])
