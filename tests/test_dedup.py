"""synthesis.dedup: the same question in other words is removed, a question that differs in
one key term is kept; which copy wins; on real questions of the Korean RAG tutorial."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from seedtune.core.text import normalize
from seedtune.synthesis import dedup
from seedtune.synthesis.dedup import deduplicate, question_key

DATA = Path(__file__).parent / "data" / "questions"


def _row(text: str, source: str = "llm", seed: str | None = "전세") -> dict:
    return {"question": normalize(text), "source": source, "seed": seed}


def _same(a: str, b: str) -> bool:
    """Whether deduplicate takes ``b`` for a duplicate of ``a``."""
    kept, dropped = deduplicate([_row(a), _row(b)])
    return len(kept) == 1


# Questions that differ in one term that changes what is asked (ours).
KEY_TERMS = [
    ("전세 계약 시 임차인의 의무는 무엇인가요?", "전세 계약 시 임대인의 의무는 무엇인가요?"),
    ("전세의 장점은 무엇인가요?", "전세의 단점은 무엇인가요?"),
    ("금리 인상이 집값에 미치는 긍정적 영향은?", "금리 인상이 집값에 미치는 부정적 영향은?"),
    ("취득세 감면 조건은 무엇인가요?", "취득세 면제 조건은 무엇인가요?"),
    ("학군이 좋은 아파트를 추천해 주세요", "교통이 좋은 아파트를 추천해 주세요"),
    ("목동 아파트 추천", "서울 아파트 추천"),
    ("전세의 장단점은?", "월세의 장단점은?"),
    ("부동산 매수 시 필요한 서류는?", "부동산 매도 시 필요한 서류는?"),
    ("전세 보증금은 어떻게 돌려받나요?", "월세 보증금은 어떻게 돌려받나요?"),
    ("취득세는 어떻게 계산하나요?", "양도세는 어떻게 계산하나요?"),
    ("양도세는 어떻게 계산하나요?", "양도세율은 어떻게 계산하나요?"),
    ("5억 아파트를 살 때 대출 한도는?", "10억 아파트를 살 때 대출 한도는?"),
    ("6개월 안에 팔면 양도세는 얼마인가요?", "2년 안에 팔면 양도세는 얼마인가요?"),
    ("두 채를 보유하면 종부세는?", "세 채를 보유하면 종부세는?"),
    ("LTV 규제는 어떻게 되나요?", "DSR 규제는 어떻게 되나요?"),
    ("임대인이 임차인과의 분쟁을 해결하는 방법은?", "임차인이 임대인과의 분쟁을 해결하는 방법은?"),
    ("임대인이 임차인과 분쟁이 생기면?", "임차인이 임대인과 분쟁이 생기면?"),
    ("전세에서 월세로 전환할 때 주의할 점은?", "월세에서 전세로 전환할 때 주의할 점은?"),
    ("계약을 취소해야 하나요?", "계약을 취소할 수 있나요?"),
    ("계약을 취소하려면 어떻게 해야 하나요?", "계약을 취소할 수 있나요?"),
    ("가계약금 반환 방법은?", "계약금 반환 방법은?"),
    ("가계약금과 계약금의 차이는?", "계약금의 차이는?"),
    ("재계약 시 주의사항은 무엇인가요?", "계약 시 주의사항은 무엇인가요?"),
    ("계약 전 확인할 사항은?", "계약 후 확인할 사항은?"),
    ("전세 대출을 받을 수 있나요?", "전세 대출을 받을 수 없나요?"),
    ("전세 계약 시 받을 수 있는 혜택은?", "전세 계약 시 받을 수 없는 혜택은?"),
    ("보증금을 돌려받을 수 있나요?", "보증금을 돌려받지 못하나요?"),
    ("전입신고는 언제 해야 하나요?", "전입신고는 왜 해야 하나요?"),
    ("확정일자는 어디서 받나요?", "확정일자는 언제 받나요?"),
    ("중개수수료는 누가 내나요?", "중개수수료는 얼마인가요?"),
    ("집값이 오르는 이유는?", "집값이 떨어지는 이유는?"),
    ("청약 통장 수에 따른 혜택은?", "청약 통장에 따른 혜택은?"),
    ("전세계약 갱신에 대해 알려 주세요", "전세계약 갱신권에 대해 알려 주세요"),
    ("매수자 입장에서 주의할 점은?", "매도자 입장에서 주의할 점은?"),
    ("대출 없이 집을 살 수 있나요?", "대출로 집을 살 수 있나요?"),
    ("새 아파트의 관리비는 얼마인가요?", "아파트의 관리비는 얼마인가요?"),
    ("하지 말아야 할 것은?", "해야 할 것은?"),
]

# The same question in other words (ours).
SAME = [
    ("확정일자는 무엇인가요?", "확정일자에 대해 알려 주세요"),
    ("전세사기 예방 방법", "전세 사기를 예방하는 방법은 무엇인가요?"),
    ("취득세의 계산 방법은 어떻게 되나요?", "취득세는 어떻게 계산하나요?"),
    ("전세 계약 시 주의할 점은?", "전세 계약할 때 주의해야 할 사항이 있을까요?"),
    ("전세 계약 시 주의할 점은?", "전세계약 시 주의사항을 설명해 주세요."),
    (
        "전세보증보험 가입 조건을 알려주세요",
        "혹시 전세보증보험 가입 조건 좀 알려주실 수 있나요?ㅠㅠ",
    ),
    ("전세보증보험 가입 조건은?", "전세보증보험 가입 조건이 궁금합니다!!"),
    ("가계약금과 계약금의 차이는 무엇인가요?", "계약금과 가계약금의 차이는 무엇인가요?"),
    ("전세, 월세 및 반전세의 차이", "반전세와 월세와 전세의 차이"),
    ("두 채를 보유하면 종부세는?", "2채 보유 시 종부세는 어떻게 되나요?"),
    ("중도금 대출을 받아도 되나요?", "중도금 대출을 받을 수 있나요?"),
    ("계약 취소가 가능한가요?", "계약을 취소할 수 있나요?"),
    ("전입신고는 언제 해야 하나요?", "전입신고는 언제 하나요?"),
    (
        "부동산 하락이 임대 시장에 미치는 영향은 무엇인가요?",
        "부동산 하락이 임대 시장에 미치는 영향은 어떤가요?",
    ),
    ("세입자들의 권리는?", "세입자의 권리는 무엇인가요?"),
    ("양도세 문의드립니다", "양도세에 대한 질문이 있습니다."),
    ("목동 아파트 추천해 주세요", "목동 아파트 추천 부탁드립니다 ^^"),
    ("전세 계약을 해지하려면?", "전세 계약을 해지하려면 ??"),
    ("LTV가 뭔가요?", "ltv란 무엇인가요"),
]


@pytest.mark.parametrize(("a", "b"), KEY_TERMS)
def test_questions_that_differ_in_a_key_term_are_both_kept(a: str, b: str) -> None:
    assert not _same(a, b) and not _same(b, a)


@pytest.mark.parametrize(("a", "b"), SAME)
def test_the_same_question_in_other_words_is_removed(a: str, b: str) -> None:
    assert _same(a, b) and _same(b, a)


def test_exact_mode_removes_only_the_same_text() -> None:
    rows = [
        _row("전세사기 예방 방법은?"),
        _row("전세 사기 예방 방법은 ?!"),
        _row("전세 사기를 예방하는 방법은 무엇인가요?"),
    ]
    kept, dropped = deduplicate(rows, mode="exact")
    assert kept == [rows[0], rows[2]] and dropped == [(rows[1], rows[0])]
    assert len(deduplicate(rows)[0]) == 1
    with pytest.raises(ValueError, match="mode"):
        deduplicate(rows, mode="fuzzy")


def test_a_question_of_frame_words_only_is_a_duplicate_only_of_its_own_text() -> None:
    frame = ["어떻게 해야 하나요?", "궁금한 점이 있습니다.", "질문 있어요!", "알려 주세요"]
    assert all(question_key(q) is None for q in frame)
    rows = [_row(q) for q in frame] + [_row("궁금한 점이 있습니다")]
    kept, dropped = deduplicate(rows)
    assert kept == rows[:4] and dropped == [(rows[4], rows[1])]


def test_a_real_persons_copy_wins_over_an_invented_one_in_any_order() -> None:
    llm = _row("전세 사기를 예방하는 방법은 무엇인가요?", "llm")
    titles = _row("전세사기 예방 방법", "titles", None)
    user = _row("전세사기 예방하는 방법 알려주세요", "user", None)
    other = _row("전세사기를 예방하는 방법은?", "forum", None)  # not a known source: last
    for order in (
        [llm, other, titles, user],
        [user, titles, other, llm],
        [other, llm, user, titles],
    ):
        kept, dropped = deduplicate(order)
        assert kept == [user]
        assert [d for d, _ in dropped] == [r for r in order if r is not user]
        assert all(k is user for _, k in dropped)
    kept, _ = deduplicate([llm, other, titles])
    assert kept == [titles]


def test_within_one_source_the_earliest_copy_wins_and_order_is_kept() -> None:
    rows = [
        _row("확정일자는 무엇인가요?"),
        _row("전세의 장점은?"),
        _row("월세의 장점은?"),
        _row("확정일자에 대해 알려 주세요"),
        _row("전세의 장점은 무엇인가요?"),
    ]
    kept, dropped = deduplicate(rows)
    assert kept == rows[:3]
    assert dropped == [(rows[3], rows[0]), (rows[4], rows[1])]


# Each line: one question three ways, for a user, a forum title and an LLM.
GROUPS = [
    ("확정일자는 무엇인가요?", "확정일자에 대해 알려 주세요", "확정일자란?"),
    (
        "전세사기 예방 방법",
        "전세 사기를 예방하는 방법은 무엇인가요?",
        "전세사기를 예방하는 방법은?",
    ),
    ("취득세는 어떻게 계산하나요?", "취득세 계산 방법", "취득세의 계산 방법은 어떻게 되나요?"),
    ("계약 취소가 가능한가요?", "계약을 취소할 수 있나요?", "계약을 취소해도 되나요?"),
    ("목동 아파트 추천", "목동 아파트 추천해 주세요", "목동 아파트 추천 부탁드립니다."),
    ("전세의 장점은?", "전세의 장점은 무엇인가요?", "전세의 장점을 알려 주세요."),
    ("월세의 장점은?", "월세의 장점은 무엇인가요?", "월세의 장점을 알려 주세요."),
]


def test_shuffled_input_keeps_the_same_questions_when_priorities_differ() -> None:
    rows = [
        _row(q, source)
        for group in GROUPS
        for q, source in zip(group, ("user", "titles", "llm"), strict=True)
    ]
    rng = random.Random(7)
    for _ in range(5):
        rng.shuffle(rows)
        kept, dropped = deduplicate(rows)
        assert sorted(r["question"] for r in kept) == sorted(normalize(g[0]) for g in GROUPS)
        assert kept == [r for r in rows if r in kept]  # input order
        assert [d for d, _ in dropped] == [r for r in rows if r not in kept]


def test_duplicates_are_found_across_seed_words_and_sources() -> None:
    rows = [
        _row("전세사기 예방 방법", "llm", "전세"),
        _row("전세 사기 예방 방법은?", "llm", "사기"),
        _row("전세 사기를 예방하는 방법은?", "titles", None),
    ]
    kept, dropped = deduplicate(rows)
    assert kept == [rows[2]] and dropped == [(rows[0], rows[2]), (rows[1], rows[2])]


def test_keys_are_the_same_when_tokenized_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [a for a, _ in KEY_TERMS[:10]]
    monkeypatch.setattr(dedup, "BATCH", 3)
    assert dedup.question_keys(texts) == [question_key(t) for t in texts]


def _pairs() -> dict[int, list[dict]]:
    pairs: dict[int, list[dict]] = {}
    for line in (DATA / "tutorial_dedup_pairs.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        pairs.setdefault(record["pair"], []).append(record)
    return pairs


def _tutorial_row(record: dict) -> dict:
    source = "titles" if record["source"] == "questions_cafe_filtered.txt" else "llm"
    return _row(record["text"], source, record["seed_word"])


# The tutorial's questions (SOURCE.md): pairs judged the same question, and pairs that
# differ in a key term (most of them pairs that the old bigram rule took for duplicates).
TUTORIAL = _pairs()


@pytest.mark.parametrize("label", ["same", "different"])
def test_on_the_tutorials_questions_each_labelled_pair(label: str) -> None:
    pairs = [p for p in TUTORIAL.values() if p[0]["label"] == label]
    assert len(pairs) >= 50
    wrong = [
        (a["text"], b["text"]) for a, b in pairs if _same(a["text"], b["text"]) != (label == "same")
    ]
    assert wrong == []


def test_on_the_tutorials_questions_a_forum_question_wins_over_an_llm_copy() -> None:
    mixed = [
        p
        for p in TUTORIAL.values()
        if p[0]["label"] == "same"
        and {r["source"] for r in p} == {"questions_cafe_filtered.txt", "questions_keyword.jsonl"}
    ]
    assert mixed
    for pair in mixed:
        for order in (pair, pair[::-1]):
            kept, _ = deduplicate([_tutorial_row(r) for r in order])
            assert [r["source"] for r in kept] == ["titles"]


def test_on_the_whole_tutorial_sample_only_labelled_duplicates_go() -> None:
    rows = [_tutorial_row(r) for pair in TUTORIAL.values() for r in pair]
    pair_of = [n for n, pair in TUTORIAL.items() for _ in pair]
    group = {}  # question -> the labelled same-pairs it is in, joined
    for pair in TUTORIAL.values():
        if pair[0]["label"] == "same":
            a, b = (normalize(r["text"]) for r in pair)
            joined = group.get(a, {a}) | group.get(b, {b})
            for q in joined:
                group[q] = joined
    kept, dropped = deduplicate(rows)
    for d, k in dropped:
        assert d["question"] == k["question"] or k["question"] in group.get(d["question"], ()), (
            d["question"],
            k["question"],
        )
    # every question of a key-term pair is still there, as itself or its exact copy
    kept_questions = {r["question"] for r in kept}
    for row, n in zip(rows, pair_of, strict=True):
        if TUTORIAL[n][0]["label"] == "different":
            assert row["question"] in kept_questions or row["question"] in group
