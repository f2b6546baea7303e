"""Near-duplicate questions, found exactly: each question gets a canonical key, and two
questions are duplicates when their keys are equal.

The key is what a question is about and what it asks. It is the question's content nouns
in order (Kiwi morphemes, prefixes and suffixes glued on; nouns joined by 와/과/및/, sorted
within their group), with a set of its other content terms: verb and adjective lemmas,
roots, negation, what is asked (how, why, when, where, how much, who) and "can" where the
question ends in it. Frame words that do not change the question (무엇, 알려 주세요,
궁금합니다, 혹시, 좀, 경우 …), particles, endings, spacing and punctuation do not enter it.
So "전세사기 예방 방법" and "전세 사기를 예방하는 방법은 무엇인가요?" share a key, while
"전세의 장단점은?" / "월세의 장단점은?", "임대인의 의무" / "임차인의 의무" and "전세에서
월세로" / "월세에서 전세로" do not. A dict of keys makes it O(n), with no pairs compared.

Try it::

    python -m seedtune.synthesis.dedup "전세사기 예방 방법" "전세 사기를 예방하는 방법은?" \
        "월세 사기 예방 방법"

prints each question's key and which are duplicates (the second, of the first).
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Hashable, Iterable, Iterator
from functools import cache
from typing import Any

from seedtune.core.text import normalize

#: Which copy of a duplicate wins: a real person's question over an invented one.
SOURCE_PRIORITY = {"user": 0, "titles": 1, "llm": 2}
MODES = ("exact", "terms")
#: Questions tokenized per call, so memory stays bounded however many there are.
BATCH = 1000

_NOUN_TAGS = {
    "NNG",
    "NNP",
    "NNB",
    "NR",
    "NP",
    "SN",
    "SL",
    "SH",
    "W_URL",
    "W_EMAIL",
    "W_SERIAL",
    "W_HASHTAG",
}
#: Nouns that frame a question and do not say what it is about. Bound nouns that carry no
#: meaning (수, 것, 시, 때 …) are among them; units (개월, 년, 채, 원 …) are not.
_FRAME_NOUNS = frozenset(
    """
    것 점 시 등 때 중 데 바 줄 뿐 듯 대로 거 지 쪽 측 적 터 따름 나름 만큼 정도 여부 때문
    등등 무엇 뭐 머 저 제 나 내 너 우리 저희 당신 여러분 자기 이것 그것 저것 이거 그거 여기
    거기 이 그
    경우 사항 부분 내용 관련 문의 질문 궁금증 조언 부탁 설명 답변 의견 도움 요청 정보 가지
    구체적 자세 궁금 어떠 주요
    란
""".split()
)  # 란: Kiwi reads the particle of "확정일자란?" as the noun 란 (column) at times
#: Words that ask something specific: they change the question, so they stay, as one term
#: per intent ("계산 방법은 어떻게 되나요?" == "어떻게 계산하나요?").
_INTENTS = {
    "어떻게": "?how",
    "방법": "?how",
    "방안": "?how",
    "왜": "?why",
    "이유": "?why",
    "언제": "?when",
    "어디": "?where",
    "얼마": "?how-much",
    "얼마나": "?how-much",
    "몇": "?how-much",
    "누구": "?who",
}
#: Verb and adjective lemmas that frame a question (있나요, 알려 주세요, 궁금합니다 …).
_FRAME_PREDICATES = frozenset(
    """
    있다 되다 하다 대하다 관하다 알다 알리다 주다 드리다 싶다 궁금하다 어떻다 이다 보다
    알아보다 여쭈다 여쭙다 묻다 모르다 가르치다 위하다 따르다 말하다 설명하다 바라다
""".split()
)
#: Adverbs that change what is asked; the rest (혹시, 좀, 가장, 꼭, 정말 …) are frame words.
_CONTENT_ADVERBS = frozenset(
    """
    더 덜 잘 미리 다시 함께 같이 따로 먼저 직접 빨리 일찍 늦게 많이 적게 계속 바로 새로 혼자
    홀로 없이 오래 이미 아직
""".split()
)
_NEGATIONS = {
    "안": "~not",
    "않다": "~not",
    "말다": "~not",
    "못": "~cannot",
    "못하다": "~cannot",
    "없다": "~not",
}
#: Determiners that frame (어떤 서류 == 서류); other determiners (새, 전 …) are content.
_FRAME_DETERMINERS = frozenset(
    "이 그 저 어떤 어느 무슨 모든 각 여러 온갖 이런 그런 저런 약".split()
)
#: Native numerals as determiners (두 채 == 2채).
_NUMERALS = {
    "한": "1",
    "두": "2",
    "세": "3",
    "석": "3",
    "네": "4",
    "다섯": "5",
    "여섯": "6",
    "일곱": "7",
    "여덟": "8",
    "아홉": "9",
    "열": "10",
}
#: Symbols that are units, so part of a number's meaning (5% vs 5).
_UNIT_SYMBOLS = frozenset("% ％ ㎡ ㎥ ㎞ ㎝ ㎜ ㎏ ℃ $ ＄ ₩ ￦ € ¥ m²".split())
#: What joins coordinated nouns (가계약금과 계약금, 전세, 월세 및 반전세).
_COORDINATORS = frozenset("및 또는 혹은 그리고 내지 , · / ，".split())
#: Noun suffixes that leave the word as it was (세입자들, 5억쯤, 5억짜리); every other one
#: makes a different word and is glued on (긍정적, 안정성, 갱신권, 양도세율, 매수자).
_EMPTY_SUFFIXES = frozenset({"들", "님", "쯤", "짜리", "씩", "가량", "경"})


@cache
def _kiwi() -> Any:
    """The Kiwi analyser, loaded once (about a second and 100 MB) on first use."""
    from kiwipiepy import Kiwi

    # the default num_workers is one thread per core: a batch (tokenize of a list) then runs
    # on all of them, about twice as fast on 2 cores (one text at a time is not helped);
    # results still come back in input order
    return Kiwi()


def _lemma(form: str, tag: str) -> str:
    return form + "다" if tag in {"VV", "VA", "VX", "VCN", "VCP"} else form


def _is_request(morphs: list[tuple[str, str]], end: int) -> bool:
    """Whether the predicate before ``morphs[end]`` (an ending) is a frame one: 주다 as an
    auxiliary (알려 주실), or a frame verb (알 수 있나요)."""
    i = end - 1
    while i >= 0 and morphs[i][1] in {"EP", "EC"}:  # 시 (honorific), and 어 of 알려 주
        i -= 1
    if i < 0:
        return False
    form, tag = morphs[i]
    return (
        tag == "VX"
        and form in {"주", "드리"}
        or tag == "VV"
        and _lemma(form, tag) in {"알다", "알리다", "가르치다", "말하다"}
    )


def _coordinates(form: str, tag: str, nxt: tuple[str, str]) -> bool:
    """Whether ``form`` joins the noun before it to the next as equals (가계약금과 계약금,
    전세, 월세 및 반전세)."""
    if tag == "JC" or tag in {"SP", "MAG", "MAJ", "SO"} and form in _COORDINATORS:
        return True
    # Kiwi reads 과 of "보금자리론과 경매의 차이" as the comitative (JKB) at times; straight
    # before a noun it joins the two all the same. Before another particle it does not:
    # "임차인과의 분쟁" keeps 임차인 in its place.
    return tag == "JKB" and form in {"와", "과", "하고", "랑", "이랑"} and nxt[1] in _NOUN_TAGS


def _key_of(tokens: list[Any]) -> Hashable | None:
    """The key of one tokenized question (see the module docstring), None when empty."""
    morphs = [(t.form, t.tag.split("-")[0]) for t in tokens]  # VV-R, VA-I: the tag only
    n = len(morphs)
    groups: list[list[tuple[str, ...]]] = []  # coordination groups of noun runs
    run: list[str] = []  # the noun run being read (nouns with nothing between them)
    linked = False  # a coordinator joined the last run to the next one
    terms: set[str] = set()
    last_content = -1  # index of the last content morpheme: "can" counts only after it
    can_at: list[int] = []  # where 할 수 있다 / 해도 되다 stands
    prefix = ""
    skip: set[int] = set()

    def close_run() -> None:
        nonlocal run, linked
        if run:
            if linked and groups:
                groups[-1].append(tuple(run))
            else:
                groups.append([tuple(run)])
            run = []
        linked = False

    for i, (form, tag) in enumerate(morphs):
        if i in skip:
            continue
        nxt = morphs[i + 1] if i + 1 < n else ("", "")
        if tag == "XPN":
            # 가 + 계약금 = 가계약금, 재 + 계약 = 재계약: without the prefix they would be
            # the word they are not
            prefix += form
            continue
        if (
            tag in _NOUN_TAGS
            or (tag == "SW" and form in _UNIT_SYMBOLS)
            or (tag == "MM" and form in _NUMERALS)
        ):
            word = prefix + (
                form.lower() if tag == "SL" else _NUMERALS[form] if tag == "MM" else form
            )
            prefix = ""
            if nxt[1] == "XSN":
                if nxt[0] not in _EMPTY_SUFFIXES:
                    word += nxt[0]
                skip.add(i + 1)
            after_etm = i > 0 and morphs[i - 1][1] == "ETM"
            if word in _INTENTS:
                terms.add(_INTENTS[word])
            elif word == "수" and after_etm and nxt[0] in {"있", "없"} and nxt[1] in {"VA", "VV"}:
                # 할 수 있다 / 없다: possibility, a question of its own if it ends it; but
                # 알려 주실 수 있나요 is a polite request, not a question of possibility
                skip.add(i + 1)
                if nxt[0] == "없":  # a negation wherever it is (받을 수 없는 경우)
                    terms.add(_NEGATIONS["못"])
                    last_content = i + 1
                elif not _is_request(morphs, i - 1):
                    can_at.append(i + 1)
            elif word == "가능" and nxt[1] in {"XSA", "VCP"}:
                # 가능한가요 == 할 수 있나요; 가능성 (a suffix glued on) stays a noun
                can_at.append(i)
            elif word not in _FRAME_NOUNS and not (word == "수" and after_etm):
                # 수 is bound after an ending (할 수), a count after a noun (통장 수)
                run.append(word)
                last_content = i
            continue  # a frame noun does not end the run it is in
        word = prefix + form
        prefix = ""
        if tag in {"W_EMOJI", "SW", "SF", "SE", "SSO", "SSC", "SO", "SB", "XSN"}:
            continue  # symbols (and a suffix after no noun) do not end a run of nouns
        was_run = bool(run)
        close_run()
        if was_run and _coordinates(form, tag, nxt):
            linked = True
            continue
        if tag in {"VV", "VA", "VX", "VCN"}:
            lemma = _lemma(form, tag)
            if lemma == "어떻다" and nxt[0] == "게":
                # 어떻게 되나요 asks what it is (절차는 어떻게 되나요? == 절차는 무엇인가요?),
                # 어떻게 + another verb asks how
                if (morphs[i + 2][0] if i + 2 < n else "") != "되":
                    terms.add(_INTENTS["어떻게"])
            elif lemma in _NEGATIONS and tag in {"VX", "VCN"} or lemma == "아니다":
                terms.add(_NEGATIONS.get(lemma, "~not"))
                last_content = i
            elif (
                form == "되"
                and i > 0
                and morphs[i - 1][1] == "EC"
                and morphs[i - 1][0].endswith("도")
            ):
                can_at.append(i)  # 해도 되나요: permission
            elif tag != "VX" and lemma not in _FRAME_PREDICATES:
                terms.add(lemma)
                last_content = i
        elif tag == "XR":
            if word not in _FRAME_NOUNS:
                terms.add(word)
                last_content = i
        elif tag in {"MAG", "MAJ"}:
            if word in _INTENTS:
                terms.add(_INTENTS[word])
            elif word in _NEGATIONS:
                terms.add(_NEGATIONS[word])
                last_content = i
            elif word in _CONTENT_ADVERBS:
                terms.add(word)
                last_content = i
        elif tag == "MM" and word not in _FRAME_DETERMINERS:
            terms.add(word)
            last_content = i
    close_run()
    # Obligation (해야 하나요) is no term: in the tutorial's 9,785 questions it set apart only
    # the same question ("어떤 점을 주의해야 하나요?" / "주의할 점은?"), and "해야 하나요?"
    # vs "할 수 있나요?" differ by "can" already.
    for i in can_at:
        # only where it ends the question ("취소할 수 있나요?", "할 수 있는지 궁금합니다"),
        # not where it qualifies a noun ("받을 수 있는 혜택" == "받는 혜택")
        if i > last_content and (morphs[i + 1][1] if i + 1 < n else "") not in {"ETM", "ETN"}:
            terms.add("~can")
    nouns: list[str] = []
    for group in groups:
        # 가계약금과 계약금의 차이 == 계약금과 가계약금의 차이; the order of the groups stays
        for member in sorted(group):
            nouns.extend(member)
    if not nouns:
        # without a noun a question says nothing of what it is about ("어떻게 해야 하나요?"),
        # so two such questions may well be about different things
        return None
    return _join(nouns), frozenset(terms)


def _join(nouns: list[str]) -> str:
    """The nouns as one string: Kiwi splits the same compound one way here and another way
    there (양도세 / 양도 + 세, 중과세 / 중과 + 세), spacing or not (전세사기 / 전세 사기), and
    the letters in order are what stays the same. A space only between two numbers, so
    5, 10억 is not 510억."""
    out = nouns[0]
    for noun in nouns[1:]:
        out += (" " if out[-1].isdigit() and noun[0].isdigit() else "") + noun
    return out


def _tokenize(texts: list[str]) -> Iterator[list[Any]]:
    """Kiwi tokens of each text, in order, ``BATCH`` texts per call."""
    kiwi = _kiwi()
    for start in range(0, len(texts), BATCH):
        yield from kiwi.tokenize(texts[start : start + BATCH])


def question_keys(texts: Iterable[str]) -> list[Hashable | None]:
    """:func:`question_key` of each text, tokenized in batches (much faster than one by one)."""
    return [_key_of(tokens) for tokens in _tokenize(list(texts))]


def question_key(text: str) -> Hashable | None:
    """The canonical key of one question: equal keys mean the same question in other words.

    ``(content nouns in order joined into one string, frozenset of other content terms)``;
    None when the question has no content noun (only frame words), so it is never a
    near-duplicate of anything.
    """
    return _key_of(_kiwi().tokenize(text))


def exact_key(text: str) -> str:
    """``text`` as compared for exact duplicates: normalised, case-folded, without spaces,
    punctuation, symbols (emoticons, emoji) and bare jamo (ㅠㅠ, ㅋㅋ)."""
    folded = normalize(text).casefold()
    kept = "".join(
        c
        for c in folded
        if unicodedata.category(c)[0] not in "PSZC" and not "\u3131" <= c <= "\u318e"
    )
    return kept or folded  # a text of punctuation only is still itself


def _rank(row: dict[str, Any]) -> int:
    return SOURCE_PRIORITY.get(row.get("source"), len(SOURCE_PRIORITY))  # others rank last


def deduplicate(
    rows: list[dict[str, Any]], mode: str = "terms"
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], dict[str, Any]]]]:
    """Remove duplicate questions across all of ``rows`` (every seed word and source).

    ``rows`` are dicts with a normalised ``"question"`` and a ``"source"``. ``mode`` is
    ``"exact"`` (same text up to case, spaces and punctuation) or ``"terms"`` (that, or the
    same :func:`question_key`). Of each set of duplicates the copy kept is the one from the
    best source (user > titles > llm > any other), then the earliest. Returns the kept rows
    in input order and ``(dropped row, the kept row it duplicates)`` in input order.
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: choose one of {MODES}")
    texts = [row["question"] for row in rows]
    exact = [exact_key(t) for t in texts]
    terms = question_keys(texts) if mode == "terms" else [None] * len(rows)
    winner: dict[Hashable, int] = {}  # a key -> the kept row that has it
    duplicate_of: dict[int, int] = {}
    for i in sorted(range(len(rows)), key=lambda i: (_rank(rows[i]), i)):
        keys = [("exact", exact[i])] + ([("terms", terms[i])] if terms[i] is not None else [])
        hit = next((winner[k] for k in keys if k in winner), None)
        if hit is not None:
            duplicate_of[i] = hit
        # a dropped row's keys point to its winner too, so a third copy that matches only
        # the dropped one (other spacing, other words) is found as well
        for k in keys:
            winner.setdefault(k, i if hit is None else hit)
    kept = [row for i, row in enumerate(rows) if i not in duplicate_of]
    dropped = [(rows[i], rows[duplicate_of[i]]) for i in sorted(duplicate_of)]
    return kept, dropped


def main(argv: list[str]) -> int:
    """Print the key of each question given and which ones duplicate an earlier one."""
    rows = [{"question": normalize(q), "source": "user"} for q in argv]
    for row, key in zip(rows, question_keys(r["question"] for r in rows), strict=True):
        print(f"{row['question']}\t{key}")
    for dropped, kept in deduplicate(rows)[1]:
        print(f"duplicate: {dropped['question']!r} of {kept['question']!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
