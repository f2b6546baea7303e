"""Small Korean (real-estate flavoured) vocabulary and sentence builders for the simulator.

Everything here is deterministic given a ``random.Random``; nothing touches the network.
Used by ``schema_fill`` (LLM answers) and ``naver_api`` (search snippets).  Try it with::

    python -c "import random; from seedtune_sandbox.sim import korean as k; \
print(k.paragraph(random.Random(0), ['전세', '계약'], target_words=40))"
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence

from seedtune.core.text import stable_hash


def seed_of(*parts: object) -> int:
    """A deterministic 64-bit number for ``parts`` (the simulator's one source of choices)."""
    return stable_hash("\x1f".join(str(p) for p in parts))


HANGUL_RE = re.compile(r"[가-힣]+")
_LABELED_RE = re.compile(
    r"(?:시드\s*단어|시드|키워드|주제어?|용어|seed(?:\s*word)?|keyword|topic|term)\s*[:：=]\s*"
    r"([^\n,;|]{1,30})",
    re.I,
)
_QUOTED_RE = re.compile(
    r"[\"'“”‘’「」『』《》]([^\"'“”‘’「」『』《》\n]{1,40})[\"'“”‘’「」『』《》]"
)

_LATIN_TERM = re.compile(r"[A-Za-z][A-Za-z0-9&.\- ]{1,29}")

# Longest first so that "에서는" wins over "는".
PARTICLES: tuple[str, ...] = tuple(
    sorted(
        """은 는 이 가 을 를 의 에 에서 에서는 에게 에게서 으로 로 으로는 로는 와 과 도 만 까지 부터
        만으로 으로만 로만 에만 만이 까지도 에서도 과의 와의 이라도 라도
        보다 처럼 이나 나 이란 란 이라는 라는 이며 며 이고 고 에는 에도 으로서 로서 인가요 인가
        입니다 합니다 하는 하고 하여 해서 했다 한다 하기 하면
        되는 되어 된 할 한 이다 이요 요""".split(),
        key=len,
        reverse=True,
    )
)

STOPWORDS: frozenset[str] = frozenset(
    """다음 다음은 질문 질문을 질문들 답변 답변을 생성 작성 작성해 작성하세요
    주세요 해주세요 한국어 단어
    문장 사용자 시스템 당신 당신은 아래 위의 관련 관련된 대한 대해 대하여 그리고 하지만 또는 그러나
    있는 없는 있습니다 없습니다 합니다 입니다 것을 것이 것은 경우 정도 이상 이하 내외 결과 형식 출력
    반드시 각각 모든 무엇 어떻게 어떤 개의 주제 시드 단어로 참고 문서 자료 검색 평가 기준 점수 응답
    근거 다음의 포함 포함해 포함하여 바탕 바탕으로 활용 활용해 내용 내용을 제공 제공된 요약 이유
    개를 개의 개로 가지 만들어 만든 사람들 사람 실제 실제로 기반 기반으로
    명확 간결 자연스럽게 스타일
    출처 번호 인용 목록 배열 필드 정확 정확히 설명 있으면 없으면 하나 여러 각각의 이것 그것 저것
    일반인 궁금해 궁금한 궁금해할 물음표 관점 개념 표현 반복 용어 한국어로 지시문 무시 분량 그대로
    담아 나은 차이 넣고 적습니다 고르세요 두 공정한 평가자 순서 길이 영향
    정확성 유용성 관련성 자연스러움
    판단 전문가 전문가이자 교육용 작성자 검색창 상담 상담가 친절한 신뢰 텍스트 지시 명령 정보 사실
    일반적으로 알려진 조심스럽게 덧붙입니다 목록에 최근 제도 절차 비용과 세금 위험과 주의점 다룹니다
    만한 서로 다른 끝나 참고자료 같은 모두 가장 매우 이런 그런 어느 통해 위해 따라 때문 경우에
    """.split()
)

# Raw tokens ending like this are verbs/adjectives, not content words.
VERB_ENDINGS: tuple[str, ...] = tuple(
    """세요 니다 어요 아요 해요 하세 하다 한다 했다 된다 있다 없다 어서 아서
    으며 하며 지만 는데 려면
    으면 하면 해서 하고 어야 아야 해야 도록 었다 았다 겠다 시오 어라 거나 든지 더라도 하는 되는 있는
    없는 하게 되게 같은 하여 되어 만들 봅시다 십시오 주고 주는 보고 보는 인지 한지 할지 다면 라면
    는지 을지 을까 는가 니까 므로 지요 네요 군요 적인 적으로 스러운 로운""".split()
)

TOPICS: tuple[str, ...] = (
    "전세",
    "월세",
    "매매",
    "청약",
    "재건축",
    "재개발",
    "분양권",
    "주택담보대출",
    "전세대출",
    "금리",
    "임대차계약",
    "확정일자",
    "전입신고",
    "등기부등본",
    "취득세",
    "양도소득세",
    "종합부동산세",
    "재산세",
    "중개수수료",
    "공인중개사",
    "오피스텔",
    "빌라",
    "아파트",
    "역세권",
    "학군",
    "실거래가",
    "공시가격",
    "보증금",
    "전세보증보험",
    "계약갱신청구권",
    "LTV",
    "DSR",
    "갭투자",
    "임대사업자",
    "특별공급",
    "전세권",
    "근저당",
    "계약금",
    "중도금",
    "잔금",
    "관리비",
    "소유권",
    "경매",
    "증여",
    "상속",
    "용적률",
    "건폐율",
    "입주",
    "주택",
    "부동산",
    "대출",
    "임대",
    "등기",
    "세금",
    "분양",
)

PLACES: tuple[str, ...] = (
    "서울",
    "강남구",
    "마포구",
    "성동구",
    "송파구",
    "노원구",
    "분당",
    "판교",
    "일산",
    "수원",
    "인천 송도",
    "부산 해운대",
    "대구 수성구",
    "대전 유성구",
    "세종",
    "광주 남구",
)

ASPECTS: tuple[str, ...] = (
    "계약 전 확인 사항",
    "세금 부담",
    "대출 한도",
    "절차",
    "필요 서류",
    "주의할 점",
    "최근 시세 흐름",
    "보증금 반환",
    "중도금 일정",
    "위험 요소",
    "비용 구조",
    "법적 보호 범위",
    "신청 자격",
    "일정",
)

ACTORS: tuple[str, ...] = (
    "임차인",
    "임대인",
    "매수인",
    "매도인",
    "실수요자",
    "1주택자",
    "신혼부부",
    "청년층",
)

NUMBERS: tuple[str, ...] = (
    "2억 3천만 원",
    "5억 원",
    "보증금의 10%",
    "연 3.8%",
    "LTV 70%",
    "DSR 40%",
    "1.5%",
    "3억 5천만 원",
    "84㎡",
    "59㎡",
    "2년",
    "30일 이내",
    "6개월",
    "0.4%",
    "9억 원",
)

_QUESTION_TEMPLATES: tuple[str, ...] = (
    "{a|은} 정확히 무엇을 뜻하나요?",
    "{a} 계약 시 {b|을} 어떻게 준비해야 하나요?",
    "{a|이} {b}에 미치는 영향은 무엇인가요?",
    "{x|이} {a|을} 진행할 때 주의할 점은 무엇인가요?",
    "{a}에서 {b|은} 어떤 기준으로 정해지나요?",
    "{p}에서 {a|을} 알아볼 때 무엇부터 비교해야 할까요?",
    "{a}의 {s|은} 무엇인가요?",
    "{a|와} {b|은} 어떤 차이가 있나요?",
    "{a|을} 할 때 드는 비용은 보통 얼마인가요?",
    "{x} 입장에서 {a|은} 어떤 점이 유리한가요?",
    "{a|은} {b|와} 함께 신청할 수 있나요?",
    "{a} 진행 중 문제가 생기면 누구에게 도움을 받을 수 있나요?",
    "{a|을} 위해 꼭 챙겨야 하는 서류는 무엇인가요?",
    "최근 {a} 관련 제도는 어떻게 바뀌었나요?",
    "{a} 절차를 처음부터 끝까지 단계별로 알려줄 수 있나요?",
    "{a}에 붙는 세금은 어떻게 계산하나요?",
    "{a|을} 잘못 이해하면 어떤 손해를 볼 수 있나요?",
    "{n} 정도의 예산으로도 {a|이} 가능한가요?",
    "{a} 기간이 끝나면 그다음에는 무엇을 해야 하나요?",
    "초보자가 {a|을} 공부하려면 어디서부터 시작하면 좋을까요?",
    "{a} 때문에 분쟁이 생기면 법적으로 보호받을 수 있나요?",
    "{a} 조건을 충족하는지 스스로 확인하는 방법이 있나요?",
    "{a|은} 언제 하는 것이 가장 유리한가요?",
    "{a} 관련 사기를 피하려면 무엇을 확인해야 하나요?",
    "대출을 받아 {a|을} 하려면 한도가 얼마나 나오나요?",
    "{a|을} 중도에 취소하거나 해지할 수 있나요?",
    "{a} 신청이 거절되는 대표적인 이유는 무엇인가요?",
    "{a}의 장점과 단점을 비교해 주실 수 있나요?",
    "{a|와} 관련해 공인중개사에게 꼭 물어봐야 할 질문은 무엇인가요?",
    "{a|을} 하기 전에 등기부등본에서 어떤 항목을 봐야 하나요?",
    "{a} 관련 정부 지원이나 혜택에는 무엇이 있나요?",
    "{a} 시세는 어디에서 확인할 수 있나요?",
)

_SENTENCE_TEMPLATES: tuple[str, ...] = (
    "{a|은} {b|와} 밀접하게 연결되어 있어 계약 전에 함께 살펴보는 것이 좋습니다.",
    "{x|은} {a|을} 진행하기 전에 {b} 관련 서류를 꼼꼼히 확인해야 합니다.",
    "일반적으로 {a}의 {s|은} {n} 수준에서 결정되는 경우가 많습니다.",
    "{p} 지역에서는 {a} 수요가 꾸준해 {b} 조건을 비교해 보는 것이 유리합니다.",
    "특히 {b|은} {a}의 안정성을 좌우하므로 등기부등본과 함께 점검하는 것이 바람직합니다.",
    "{a|을} 준비할 때는 {n} 정도의 여유 자금을 미리 계획해 두는 편이 안전합니다.",
    "전문가들은 {a|와} {b|을} 동시에 고려해야 예상치 못한 비용을 줄일 수 있다고 조언합니다.",
    "{a} 과정에서 분쟁이 생기면 계약서의 특약 사항과 {b} 내용을 근거로 해결하게 됩니다.",
    "최근에는 {a} 관련 제도가 자주 바뀌기 때문에 공식 안내를 다시 확인하는 것이 필요합니다.",
    "{x}의 경우 {a} 조건에 따라 {b} 혜택을 받을 수 있는지 먼저 알아보는 것이 좋습니다.",
    "{a|은} 기간과 금액에 따라 {s|이} 달라지므로 구체적인 사례를 기준으로 판단해야 합니다.",
    "따라서 {a|을} 결정하기 전에 {b}의 {s|을} 차분히 정리해 두면 도움이 됩니다.",
)

_REASON_TEMPLATES: tuple[str, ...] = (
    "답변이 {a|와} {b}에 대한 핵심 내용을 근거 자료에 맞게 설명하고 있습니다.",
    "{a}의 {s|을} 구체적으로 다루지만 {b}에 대한 설명은 다소 부족합니다.",
    "질문의 {a} 관련 요구를 정확히 이해하고 {b}까지 연결해 설명했습니다.",
    "{a}에 대한 사실 관계는 대체로 맞지만 {b} 부분의 근거가 명확하지 않습니다.",
)

_PHRASE_TEMPLATES: tuple[str, ...] = (
    "{a} {s}",
    "{p} {a} 정보",
    "{a|와} {b}",
    "{x|를} 위한 {a} 안내",
    "{a} {b} 체크리스트",
)

_NICK_A: tuple[str, ...] = (
    "행복한",
    "꼼꼼한",
    "부지런한",
    "똑똑한",
    "알뜰한",
    "든든한",
    "슬기로운",
)
_NICK_B: tuple[str, ...] = (
    "내집마련",
    "부동산 일기",
    "이사 준비",
    "재테크 노트",
    "집사람",
    "임장러",
)


def has_batchim(word: str) -> bool:
    """Return True when the last syllable of ``word`` has a final consonant (받침)."""
    if not word:
        return False
    ch = word[-1]
    if "가" <= ch <= "힣":
        return (ord(ch) - 0xAC00) % 28 != 0
    return ch.isdigit() and ch in "136780"


def josa(word: str, particle: str) -> str:
    """Attach the right form of a particle given as either form.

    Pairs: 은/는, 이/가, 을/를, 와/과, 으로/로.
    """
    pairs = {
        "은": ("은", "는"),
        "는": ("은", "는"),
        "이": ("이", "가"),
        "가": ("이", "가"),
        "을": ("을", "를"),
        "를": ("을", "를"),
        "와": ("과", "와"),
        "과": ("과", "와"),
        "으로": ("으로", "로"),
        "로": ("으로", "로"),
    }
    if particle not in pairs:
        return word + particle
    with_final, without = pairs[particle]
    if particle in ("으로", "로") and word and "가" <= word[-1] <= "힣":
        if (ord(word[-1]) - 0xAC00) % 28 == 8:  # ㄹ받침 takes 로
            return word + "로"
    return word + (with_final if has_batchim(word) else without)


_SLOT_RE = re.compile(r"\{(\w)(?:\|(\w+))?\}")


def render(template: str, slots: dict[str, str]) -> str:
    """Fill ``{a}`` / ``{a|은}`` slots in a template, choosing particle forms by 받침."""

    def sub(m: re.Match[str]) -> str:
        word = slots.get(m.group(1), "")
        return josa(word, m.group(2)) if m.group(2) else word

    return _SLOT_RE.sub(sub, template)


def strip_particle(token: str) -> str:
    """Strip one trailing particle/ending from a Hangul token when at least two syllables remain."""
    for p in PARTICLES:
        if token.endswith(p) and len(token) - len(p) >= 2:
            return token[: -len(p)]
    return token


def hangul_tokens(text: str) -> list[str]:
    """Content-looking Hangul tokens of ``text`` (particles stripped, stopwords dropped)."""
    out: list[str] = []
    for raw in HANGUL_RE.findall(text):
        if raw in STOPWORDS or raw in PARTICLES or raw.endswith(VERB_ENDINGS):
            continue
        tok = strip_particle(raw)
        if len(tok) >= 2 and tok not in STOPWORDS and not tok.endswith(VERB_ENDINGS):
            out.append(tok)
    return out


def top_keywords(text: str, k: int = 8) -> list[str]:
    """The ``k`` most frequent content tokens of ``text`` (ties broken by first occurrence)."""
    toks = hangul_tokens(text)
    counts = Counter(toks)
    for tok in counts:  # domain words first among equals
        if any(topic in tok for topic in TOPICS):
            counts[tok] += 1
    first = {t: i for i, t in reversed(list(enumerate(toks)))}
    return sorted(counts, key=lambda t: (-counts[t], first[t]))[:k]


def quoted_terms(text: str) -> list[str]:
    """Quoted or labelled short Hangul terms, e.g. the seed word in ``시드 단어: "전세"``.

    A quoted pattern such as ``"~알려 주세요"`` (how a prompt describes a form of sentence,
    not a term) is not one."""
    out: list[str] = []
    labelled = [m.group(1) for m in _LABELED_RE.finditer(text)]
    for raw in [*(m.group(1) for m in _QUOTED_RE.finditer(text)), *labelled]:
        term = raw.strip().strip("\"'“”‘’「」『』《》").strip()
        # a labelled term may be Latin (용어: "LTV"); a quoted Latin word is usually a JSON
        # key the prompt names ("questions"), not a topic
        if (
            (HANGUL_RE.search(term) or (raw in labelled and _LATIN_TERM.fullmatch(term)))
            and len(term) <= 30
            and term not in out
            and not term.startswith(("~", "～"))
        ):
            out.append(term)
    return out


def is_domain_word(word: str) -> bool:
    """Whether ``word`` contains (or is part of) a real-estate vocabulary term."""
    return any(t in word or (len(word) >= 2 and word in t) for t in TOPICS)


def _slots(
    rng: random.Random, words: Sequence[str], main: str | None = None, domain_only: bool = False
) -> dict[str, str]:
    pool = list(words) or list(TOPICS)
    a = main or rng.choice(pool)
    rest = [w for w in pool if w not in a and a not in w and (not domain_only or is_domain_word(w))]
    rest = rest or [t for t in TOPICS if t not in a and a not in t]
    return {
        "a": a,
        "b": rng.choice(rest),
        "s": rng.choice(ASPECTS),
        "x": rng.choice(ACTORS),
        "p": rng.choice(PLACES),
        "n": rng.choice(NUMBERS),
    }


def question(
    rng: random.Random, words: Sequence[str], main: str | None = None, template: int | None = None
) -> str:
    """One Korean question ending in '?' that mentions ``main`` (or one of ``words``).

    ``template`` selects a question pattern (modulo :func:`n_question_templates`); random if None.
    """
    tpl = (
        _QUESTION_TEMPLATES[template % len(_QUESTION_TEMPLATES)]
        if template is not None
        else rng.choice(_QUESTION_TEMPLATES)
    )
    return render(tpl, _slots(rng, words, main, domain_only=True))


def n_question_templates() -> int:
    """How many distinct question patterns there are."""
    return len(_QUESTION_TEMPLATES)


def sentence(
    rng: random.Random, words: Sequence[str], main: str | None = None, template: int | None = None
) -> str:
    """One declarative Korean sentence built around ``words`` (``template`` picks the pattern)."""
    tpl = (
        _SENTENCE_TEMPLATES[template % len(_SENTENCE_TEMPLATES)]
        if template is not None
        else rng.choice(_SENTENCE_TEMPLATES)
    )
    return render(tpl, _slots(rng, words, main))


def reason(rng: random.Random, words: Sequence[str]) -> str:
    """One Korean sentence explaining a judgement."""
    return render(rng.choice(_REASON_TEMPLATES), _slots(rng, words))


def phrase(rng: random.Random, words: Sequence[str]) -> str:
    """A short Korean noun phrase."""
    return render(rng.choice(_PHRASE_TEMPLATES), _slots(rng, words))


def nickname(rng: random.Random) -> str:
    """A blogger / cafe style nickname."""
    return f"{rng.choice(_NICK_A)} {rng.choice(_NICK_B)}"


def paragraph(
    rng: random.Random,
    words: Sequence[str],
    *,
    target_words: int | None = None,
    min_chars: int = 0,
    max_chars: int | None = None,
) -> str:
    """Several Korean sentences reusing ``words``; about ``target_words`` words (default ~60).

    The result is at least ``min_chars`` and at most ``max_chars`` characters; it is cut at a
    sentence boundary when possible.
    """
    goal = target_words if target_words and target_words > 0 else 60
    pool = list(words) or list(TOPICS)
    parts: list[str] = []
    n_words = 0
    i = 0
    order = list(range(len(_SENTENCE_TEMPLATES)))
    rng.shuffle(order)
    while n_words < goal or sum(len(p) + 1 for p in parts) < min_chars:
        main = pool[i % len(pool)] if i < 2 * len(pool) else None
        s = sentence(rng, pool, main, order[i % len(order)])
        parts.append(s)
        n_words += len(s.split())
        i += 1
        if i > 2000:
            break
    text = " ".join(parts)
    if max_chars is not None and len(text) > max_chars:
        cut = text[:max_chars]
        dot = cut.rfind(". ")
        text = cut[: dot + 1] if dot + 1 >= max(min_chars, 1) and dot > 0 else cut
    return text
