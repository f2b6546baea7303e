"""core.text.normalize: what it strips (one list marker, one pair of enclosing quotes) and,
on real Korean questions with list decorations added, that it strips only that."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from seedtune.core.text import normalize

DATA = Path(__file__).parent / "data" / "questions"

# Questions of the kind the queries stage sees (ours): amounts, decimals, signs, units, quotes.
OWN = [
    "5.5억 집을 매수하고 싶은데 대출은 얼마나 나오나요?",
    "3.3㎡당 분양가는 어떻게 산정되나요?",
    "-1억 손해를 보고 팔면 양도소득세는 어떻게 되나요?",
    "-0.3% 하락한 집값은 반등할까요?",
    "+2% 금리 인상 시 월 상환액은 얼마나 늘어나나요?",
    "1.5배 오른 공시가격이면 보유세는 얼마인가요?",
    "2.3억 전세에 전세보증보험 가입이 가능한가요?",
    "0.5%p 우대금리는 어떻게 받나요?",
    "9.13 대책 이후 종합부동산세는 어떻게 바뀌었나요?",
    "2024. 3. 15. 기준 주택담보대출 금리는 몇 %인가요?",
    "1가구 1주택 비과세 요건은 무엇인가요?",
    "12억 초과 고가주택의 양도세는 어떻게 계산하나요?",
    "10년 이상 보유하면 장기보유특별공제율은 몇 %인가요?",
    "3~4억 원대 아파트를 사려면 자기자본이 얼마나 필요한가요?",
    "전용 84㎡ 아파트의 취득세율은 몇 %인가요?",
    "LTV 70%, DSR 40%일 때 대출 한도는 얼마인가요?",
    "월세 50만 원, 보증금 1,000만 원이면 세액공제는 얼마인가요?",
    '"강동역 역세권 개발 진행중"에 대해 알려주세요.',
    "'깡통전세'란 무엇이고 어떻게 피하나요?",
    "‘전세사기 특별법’의 지원 대상은 누구인가요?",
    "「주택임대차보호법」상 최우선변제금은 얼마인가요?",
    "『부동산 공법』 책에서 용적률 300%는 무슨 뜻인가요?",
    "“청년 전세대출”과 “버팀목 대출”의 차이는 무엇인가요?",
    '재건축 "안전진단 D등급"이면 바로 사업이 가능한가요?',
]


def _jsonl(name: str) -> list[dict]:
    return [
        json.loads(line)
        for line in (DATA / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def _real() -> list[tuple[str, str]]:
    return [(r["id"], r["question"]) for r in _jsonl("korquad_v1_dev_sample.jsonl")]


# The Korean RAG tutorial's own material: real-estate forum titles and the questions made
# from them, many of those wrapped whole in quotes (SOURCE.md)
TUTORIAL = [r["text"] for r in _jsonl("tutorial_sample.jsonl")]
TUTORIAL_WRAPPED = [t for t in TUTORIAL if t[0] == t[-1] == '"' and t.count('"') == 2]


def _tutorial() -> list[tuple[str, str]]:
    return [(f"tutorial-{i}", t) for i, t in enumerate(TUTORIAL) if t not in TUTORIAL_WRAPPED]


QUESTIONS = [(f"own-{i}", q) for i, q in enumerate(OWN)] + _real() + _tutorial()

# Decorations an LLM puts before a question in a list; "1." with no space only before Hangul.
MARKERS = ["1. ", "12. ", "2) ", "(3) ", "- ", "* ", "• ", "① "]
QUOTE_PAIRS = [('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("「", "」"), ("『", "』")]


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def _content(text: str) -> str:
    """The digits, units, signs, decimal points and letters (Hangul above all) of ``text``:
    what normalize must never lose. Whitespace, quotes and bullets are left out."""
    return "".join(
        c
        for c in unicodedata.normalize("NFC", text)
        if unicodedata.category(c)[0] in "LNS" or c in "%.,+-~"
    )


def _pair_encloses(q: str, opening: str, closing: str) -> bool:
    """Whether ``opening + q + closing`` is one matched pair around all of it."""
    if opening == closing:
        return opening not in q
    depth = 0
    for c in q:
        depth += (c == opening) - (c == closing)
        if depth < 0:
            return False
    return depth == 0


def test_the_question_set_covers_what_went_wrong() -> None:
    qs = [q for _, q in QUESTIONS]
    assert len(qs) >= 400
    assert "5.5억 집을 매수하고싶은데 무리일까요?" in qs  # the tutorial's own forum title
    assert sum(1 for q in qs if q[:1].isdigit() and "." in q[:4]) >= 10  # 5.5억, 9.19 ...
    assert sum(1 for q in qs if q[:1] in "-+") >= 3
    assert sum(1 for q in qs if any(c in q for c in "\"'“‘「『")) >= 50


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1. 전세 계약 시 확정일자는 언제 받나요?", "전세 계약 시 확정일자는 언제 받나요?"),
        ("1.전세 계약 시 확정일자는 언제 받나요?", "전세 계약 시 확정일자는 언제 받나요?"),
        ("12) 청약 가점은 어떻게 계산하나요?", "청약 가점은 어떻게 계산하나요?"),
        ("(2) 청약 가점은?", "청약 가점은?"),
        ("② 청약 가점은?", "청약 가점은?"),
        ("- 청약 가점은?", "청약 가점은?"),
        ("* 청약 가점은?", "청약 가점은?"),
        ("•청약 가점은?", "청약 가점은?"),
        ("5.5억 집을 매수하고 싶은데", "5.5억 집을 매수하고 싶은데"),
        ("3.3㎡당 분양가는?", "3.3㎡당 분양가는?"),
        ("-1억 손해를 보면?", "-1억 손해를 보면?"),
        ("+2% 오르면?", "+2% 오르면?"),
        ("1.5배 오른 집값은?", "1.5배 오른 집값은?"),
        ("2024. 3. 15. 기준 금리는?", "2024. 3. 15. 기준 금리는?"),
        ("1. 5.5억 집을 매수하려면?", "5.5억 집을 매수하려면?"),
        ("- -1억 손해를 보면?", "-1억 손해를 보면?"),
        ('"강동역 개발 진행중"에 대해 알려줘', '"강동역 개발 진행중"에 대해 알려줘'),
        ('"전세 계약은?"', "전세 계약은?"),
        ('1. "강동역 개발 진행중"에 대해 알려줘', '"강동역 개발 진행중"에 대해 알려줘'),
        ('1. "전세 계약은?"', "전세 계약은?"),
        ("“전세 계약은?”", "전세 계약은?"),
        ("「전세 계약은?」", "전세 계약은?"),
        ("“전세 “깡통” 위험은?”", "전세 “깡통” 위험은?"),
        ("“깡통”과 “전세”", "“깡통”과 “전세”"),  # two pairs, not one around all
        ('"깡통"과 "전세"', '"깡통"과 "전세"'),
        ("“전세 “깡통 위험은?”", "“전세 “깡통 위험은?”"),  # inner quote left unbalanced
        ('전세 계약은?"', '전세 계약은?"'),  # a lone quote is not a pair
        ('“전세 계약은?"', '“전세 계약은?"'),  # two kinds are not a pair
        ("  전세   계약은\n어떻게?  ", "전세 계약은 어떻게?"),
        (unicodedata.normalize("NFD", "전세"), "전세"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(("qid", "question"), QUESTIONS, ids=[i for i, _ in QUESTIONS])
def test_decorations_are_removed_and_nothing_else(qid: str, question: str) -> None:
    plain = normalize(question)
    assert plain == _fold(question)  # an undecorated question only has its spaces folded
    assert _content(plain) == _content(question)
    decorated = [m + question for m in MARKERS]
    if "\uac00" <= question[0] <= "\ud7a3":
        decorated.append("1." + question)
    decorated += [f"  {m}\n{question}  " for m in ("3. ", "- ")]
    for text in decorated:
        assert normalize(text) == plain, text
    for opening, closing in QUOTE_PAIRS:
        for marker in ("", "1. ", "- "):
            text = f"{marker}{opening}{question}{closing}"
            out = normalize(text)
            if _pair_encloses(question, opening, closing):
                assert out == plain, text
            else:  # not one pair around it all: the quotes stay, only the marker goes
                assert out == _fold(f"{opening}{question}{closing}"), text
            assert _content(out) == _content(question)


@pytest.mark.parametrize("question", TUTORIAL_WRAPPED)
def test_the_tutorials_wrapped_questions_lose_their_quotes_only(question: str) -> None:
    out = normalize(question)
    assert out == _fold(question[1:-1])
    assert _content(out) == _content(question)
