"""Pure functions of the stages: text, dedup, split, judging arithmetic, parsing, cleaning."""

from __future__ import annotations

import pytest

from seedtune.config import QueriesConfig, SynthesizeConfig
from seedtune.judging import bootstrap_ci, combine, win_rate
from seedtune.llm import LLMOutcome, extract_json
from seedtune.naver import clean_text, dedupe_documents, to_documents
from seedtune.questions import filter_questions
from seedtune.synthesis import assign_split, check_answer, format_passages
from seedtune.text import hangul_share


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


def test_hangul_share() -> None:
    assert hangul_share("전세 계약") == 1.0
    assert hangul_share("LTV 규제") == pytest.approx(2 / 5)
    assert hangul_share("123 ?!") == 0.0


def test_split_is_deterministic_and_stable_when_questions_are_added() -> None:
    qs = [f"부동산 질문 {i}번은 무엇인가요?" for i in range(200)]
    a = assign_split(qs, 0.1, 4, seed=1)
    assert a == assign_split(list(reversed(qs)), 0.1, 4, seed=1)
    b = assign_split(qs + ["새로 추가된 질문입니다?"], 0.1, 4, seed=1)
    assert all(a[q] == b[q] for q in qs)
    assert 5 <= sum(v == "eval" for v in a.values()) <= 40
    assert sum(v == "eval" for v in assign_split(qs[:10], 0.0, 4, 1).values()) == 4


def test_answer_checks() -> None:
    cfg = SynthesizeConfig()
    assert check_answer("", cfg) == "empty answer"
    assert "min_chars" in check_answer("짧은 답.", cfg)
    assert "Hangul" in check_answer("This answer is written entirely in English, sorry.", cfg)
    assert check_answer("전세 계약 전에는 등기부등본으로 근저당을 확인해야 합니다.", cfg) is None


def test_passages_are_numbered_and_capped() -> None:
    docs = [{"passage": f"자료 {i}"} for i in range(5)]
    assert format_passages(docs, 2) == "[1] 자료 0\n[2] 자료 1"
    assert format_passages([], 3) == "(참고 자료 없음)"


def _verdicts(first: str, second: str) -> list[LLMOutcome]:
    return [LLMOutcome("0:tuned_first", value={"verdict": first, "reason": "r"}),
            LLMOutcome("0:base_first", value={"verdict": second, "reason": "r"})]


@pytest.mark.parametrize("first,second,result", [
    ("A", "B", "win"), ("B", "A", "loss"), ("A", "A", "tie"), ("B", "B", "tie"),
    ("tie", "tie", "tie"), ("A", "tie", "tie"),
])
def test_order_swapped_verdicts(first: str, second: str, result: str) -> None:
    assert combine(_verdicts(first, second), 1)[0]["result"] == result


def test_position_biased_judge_gives_half() -> None:
    results = [combine(_verdicts("A", "A"), 1)[0]["result"] for _ in range(14)]
    assert win_rate(results) == 0.5
    assert win_rate(["win", "win", "tie", "loss"]) == pytest.approx(0.625)
    lo, hi = bootstrap_ci(["win"] * 10 + ["loss"] * 10, 500, seed=0)
    assert lo < 0.5 < hi and 0 <= lo and hi <= 1
    assert win_rate([]) is None


def test_reject_is_recorded_not_crashed() -> None:
    out = combine([LLMOutcome("0:tuned_first", reject="invalid answer"),
                   LLMOutcome("0:base_first", value={"verdict": "A", "reason": "r"})], 1)
    assert out[0]["result"] is None and out[0]["reject"] == "invalid answer"


@pytest.mark.parametrize("text", [
    '{"a": 1}', '```json\n{"a": 1}\n```', '결과입니다:\n```\n{"a": 1}\n```\n끝',
    '답: {"a": 1} 입니다'])
def test_extract_json_tolerates_fences_and_prose(text: str) -> None:
    assert extract_json(text) == {"a": 1}


def test_extract_json_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        extract_json('{"a": 1')


def test_naver_markup_and_entities_are_cleaned() -> None:
    assert clean_text("<b>전세</b> &quot;사기&quot; &amp; 대출 &lt;주의&gt;  &#39;팁&#39;") == \
        "전세 \"사기\" & 대출 <주의> '팁'"
    body = {"items": [
        {"title": "<b>전세</b> 계약", "link": "https://a", "description": "설명 &amp; 팁",
         "postdate": "20261120"},
        {"title": "다른 글", "originallink": "https://a", "link": "https://n/1",
         "description": "중복 링크", "pubDate": "Mon"},
    ]}
    docs = to_documents("blog", body)
    assert docs[0] == {"category": "blog", "title": "전세 계약", "description": "설명 & 팁",
                       "link": "https://a", "date": "2026-11-20"}
    assert len(dedupe_documents(docs)) == 1
