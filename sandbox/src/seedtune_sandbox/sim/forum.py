"""Titles of Naver cafe posts and 지식iN questions, in the shapes real ones have.

Real forum titles (a real-estate cafe's, or 지식iN's) are not search-engine headlines: they
carry bracketed prefixes (``[질문]``, ``[급질]``, ``[공지]``, ``[광고]``), emoticons and
``ㅠㅠ``, ellipses, ``??`` and ``!!``, all-caps Latin (LTV, DSR, GTX), prices and areas
(``20억 초반``, ``5.5억``, ``84㎡``, ``30평대``), places and complexes, ``A vs B`` comparisons,
and a share that is no question at all: ads, notices and chit-chat, political or hateful
posts, one person's own situation, and titles too vague to say what is asked. The templates
below are the simulator's own wording of those shapes. A title's kind shows only in its
words (:mod:`~seedtune_sandbox.sim.forum_words`), as it would to a reader. Try it with::

    python -c "import random; from seedtune_sandbox.sim import forum; \
print([forum.title(random.Random(i), 'cafearticle', '전세 대출') for i in range(5)])"
"""

from __future__ import annotations

import random
import re

from seedtune_sandbox.sim import forum_words as fw
from seedtune_sandbox.sim import korean

#: Categories whose (non-shared) results get forum titles.
CATEGORIES: tuple[str, ...] = ("cafearticle", "kin")

# kind -> share of titles, per category (cafes have ads and notices; 지식iN hardly any)
_WEIGHTS: dict[str, tuple[tuple[str, float], ...]] = {
    "cafearticle": (
        ("question", 0.64),
        ("off_topic", 0.13),
        ("unsafe", 0.05),
        ("personal", 0.10),
        ("vague", 0.08),
    ),
    "kin": (
        ("question", 0.70),
        ("off_topic", 0.06),
        ("unsafe", 0.03),
        ("personal", 0.13),
        ("vague", 0.08),
    ),
}

_QUESTION: tuple[str, ...] = (
    "{q} 질문드립니다",
    "{q} 관련 문의드려요",
    "{p} {q} 요즘 분위기 어떤가요?",
    "{q|은} 보통 얼마나 걸리나요?",
    "{x}인데 {q} 가능한가요?",
    "{n} {q} 무리일까요?",
    "{c} {m}평 vs {C} {M}평",
    "{p} vs {P} {q} 어디가 나을까요?",
    "{q} 할 때 {o} 꼭 필요한가요?",
    "{a} 적용되면 {q} 한도 얼마나 나오나요?",
    "{q} 계약 전에 뭘 확인해야 하나요?",
    "{q} 잔금일에 해야 할 일 있나요?",
    "{c} {q} 시세 {n} 적정한가요?",
    "{q} 세금 계산 어떻게 하나요?",
    "{q} 중도 해지 가능할까요?",
    "{n|으로} {p} {q} 추천 부탁드려요",
    "{q} 후에 {z|은} 어떻게 되나요?",
    "{q} 신청 자격이 궁금합니다",
    "{a} 규제 {q}에도 적용되나요?",
    "{p} {q} 2년 실거주 요건 있나요?",
    "{q} 매도 시 {z} 얼마나 나오나요?",
    "{c} {e} {q} {n}이면 싼 건가요?",
    "{x} {q} 순서가 어떻게 되나요?",
    "{b} {q} 갈아타기 조건 알려주세요",
    "{q}도 {z} 대상인가요?",
    "{p} {q} 언제쯤 풀릴까요?",
    "{w}평대 {q} 관리비 보통 얼마인가요?",
    "{q|와} {o} 같이 해도 되나요?",
    "{q|을} 집주인이 거절하면 어떻게 하나요?",
    "{q} 특약 넣을 때 주의할 점 있을까요?",
    "{p} {q} vs {P} {q}",
    "{c} vs {C} {q} 어디가 유리할까요?",
    "{l} 개통되면 {p} {q} 오를까요?",
    "{p} {e} {q} 시세가 보통 어떻게 되나요?",
    "{q} KB시세 기준으로 한도 나오나요?",
)
_PERSONAL: tuple[str, ...] = (
    "{g}인데 퇴직하고 {q} 해도 될까요?",
    "제 경우 {q} 갈아타는 게 맞을까요?",
    "저희 부부 연봉 합쳐 {s}인데 {p} {q} 괜찮을까요?",
    "남편이 {q} 반대하는데 어떻게 해야 할지 모르겠어요",
    "{g} 미혼 {q} 영끌해도 될까요?",
    "제 상황에서 {q} 지금 하는 게 나을까요?",
    "와이프랑 {q} 문제로 의견이 갈리는데 조언 부탁드려요",
    "현금 {s} 있는 {g} 직장인, {q} 지금 할까요 말까요",
    "저는 {x}인데 {p} {q} 어디로 갈지 골라주세요",
    "육아휴직 중인데 {q} 버틸까요 팔까요",
    "{g} 외벌이 {q} 선택 도와주세요",
)
_VAGUE: tuple[str, ...] = (
    "{v} 하려고 하는데요",
    "질문 있습니다!!",
    "이거 맞는 건가요 ?",
    "다들 어떻게 하셨어요??",
    "아시는 분 계실까요..",
    "급해요 도와주세요",
    "답답해서 글 남깁니다..",
    "이런 경우는 어떻게 되나요?",
    "초보 ? 라고요 ?",
    "혹시 아시는 분~",
    "그냥 {v} 해버릴까 하는데요",
    "고수님들 한 말씀만요",
)
_OFF_TOPIC: dict[str, tuple[str, ...]] = {
    "cafearticle": (
        "{p} {c} 잔여세대 특별분양 선착순 계약 진행중 (광고)",
        "[광고] {q} 최저금리 비교 무료 상담 ☎ {h}",
        "[광고] {p} 입주 청소·인테리어 🎉오픈 이벤트🎉",
        "{q} 한도 조회 무료!! 상담 문의 ☎ 1600-{k} (광고)",
        "[광고] {q} 전문 세무사 무료상담 진행합니다",
        "[공지] 게시판 운영 가이드 ({d} 수정)",
        "[공지] 등업 신청 전에 꼭 읽어 주세요",
        "[공지] 홍보글·광고글은 경고 없이 강퇴됩니다",
        "[공지] {q} 게시판 이용 규칙 안내",
        "오늘 점심 다들 뭐 드셨어요 ㅎㅎ",
        "{q} 공부하다 보니 벌써 저녁 메뉴 고민이네요",
        "주식 계좌가 온통 파랗네요 ㅠㅠ",
        "[공유] 올여름 역대급 폭염 온다…전력 수요 비상",
        "[공유] 대표팀 원정 0-2 완패, 감독 거취 논란",
        '[공유] "벚꽃 개화 역대 가장 빨라"…주말 나들이 인파 몰릴 듯',
        "[공유] '먹방' 유튜버 수익 공개…'월급보다 많아' 화제",
        "야구 직관 가시는 분 계신가요",
        "요즘 {q} 얘기 말고 재밌는 드라마 추천 좀",
        "코인 지금 들어가도 될까요?",
    ),
    "kin": (
        "노트북 추천 좀 해주세요 (게임용)",
        "강아지 사료 바꿔도 되나요?",
        "다이어트 식단 질문이요",
        "로또 1등 당첨되면 세금 얼마나 떼나요?",
        "{q} 말고 주식이 나을까요 코인이 나을까요",
        "이번 주말 날씨 어떤가요",
        "{p} 맛집 추천해 주세요",
    ),
}
_UNSAFE: tuple[str, ...] = (
    "{r} 사람들한테는 {q} 혜택 주지 맙시다",
    "좌파들이 {q} 시장 다 망쳐 놨네요",
    "{q} 폭등은 전부 민주당 탓 아닌가요?",
    "국민의힘 찍으면 {q} 잡힌다는 사람들 ㅋㅋ",
    "선거 앞두고 {q} 공약 남발하는 정치인들",
    "탄핵 집회 다녀왔습니다. {q} 얘기는 나중에",
    "수꼴 틀딱들은 {q} 얘기할 자격 없음",
    "조선족들이 {p} {q} 다 쓸어 간다던데",
    "19금 {q} 썰 풀어 봅니다",
)
_TEMPLATES = {"question": _QUESTION, "personal": _PERSONAL, "vague": _VAGUE, "unsafe": _UNSAFE}

_MONEY = (
    "20억 초반",
    "5.5억",
    "3억~3.5억",
    "12-13억",
    "9억 이하",
    "15억",
    "1.2억",
    "7억대",
    "2억 3천",
    "10억",
    "4.8억",
)
_AREAS = ("84㎡", "59㎡", "114㎡", "전용 59", "전용 84")
_TAXES = ("양도세", "취득세", "종부세", "중개수수료", "재산세", "비과세")
_STEPS = ("확정일자", "전입신고", "전세보증보험", "등기부등본 확인", "자금조달계획서", "인감증명서")
_ORGS = ("HUG", "LH", "SH", "KB", "SK", "GS")
_CASH = ("1.5억", "2억 5천", "4억", "9천", "1억 2천", "3억")
_AGES = ("50대 초반", "30대 중반", "40대 후반", "20대 후반", "60대", "35살", "42살")
_PYEONG = ("24", "32", "34", "44", "51", "25", "33", "18")
_ACTIONS = ("매도", "매수", "이사", "계약", "갈아타기")
_REGIONS = ("전라도", "경상도", "충청도")
_ACTORS = ("1주택자", "무주택자", "신혼부부", "세입자", "집주인", "다주택자", "사회초년생")
_RULES = ("LTV 70%", "DSR 40%", "DTI", "DSR 3단계", "LTV 80%", "DSR")
_LINES = ("GTX-A", "GTX-C", "SRT", "KTX", "신분당선")

_WORD = re.compile(r"[0-9A-Za-z가-힣][0-9A-Za-z가-힣.\-㎡%]*")
_QUESTION_WORDS = frozenset(
    "무엇 무엇인가요 어떻게 얼마 얼마나 언제 어디 어디서 왜 누구 뭔가요 "
    "무슨 어떤 있나요 되나요 하나요 인가요 할까요".split()
)


def subject(query: str) -> str:
    """What a title names of ``query``: the query itself when it is a few words (a seed word
    such as ``전세 대출``), else its first content words (the search stage's questions)."""
    words = query.split()
    if len(words) <= 3 and not query.rstrip().endswith("?"):
        return " ".join(w.strip("?!.,\"'") for w in words).strip() or query.strip()
    picked: list[str] = []
    for raw in words:
        m = _WORD.search(raw)
        if not m:
            continue
        w = m.group(0).rstrip(".")
        if w in _QUESTION_WORDS or w in korean.STOPWORDS or w.endswith(korean.VERB_ENDINGS):
            continue
        w = korean.strip_particle(w)
        if len(w) >= 2 and w not in picked:
            picked.append(w)
        if len(picked) == 2:
            break
    return " ".join(picked) or words[0]


def _other(rng: random.Random, pool: tuple[str, ...], *avoid: str) -> str:
    options = [x for x in pool if all(x not in a and a not in x for a in avoid if a)]
    return rng.choice(options or list(pool))


def _slots(rng: random.Random, q: str) -> dict[str, str]:
    p = rng.choice(fw.FORUM_PLACES)
    c = rng.choice(fw.COMPLEXES)
    m = rng.choice(_PYEONG)
    return {
        "q": q,
        "p": p,
        "P": _other(rng, fw.FORUM_PLACES, p),
        "c": c,
        "C": _other(rng, fw.COMPLEXES, c),
        "m": m,
        "M": _other(rng, _PYEONG, m),
        "w": rng.choice(("20", "30", "40")),
        "n": rng.choice(_MONEY),
        "s": rng.choice(_CASH),
        "g": rng.choice(_AGES),
        "a": rng.choice(_RULES),
        "b": rng.choice(_ORGS),
        "l": rng.choice(_LINES),
        "e": rng.choice(_AREAS),
        "z": _other(rng, _TAXES, q),
        "o": _other(rng, _STEPS, q),
        "t": _other(rng, korean.TOPICS, q),
        "x": _other(rng, _ACTORS, q),
        "v": rng.choice(_ACTIONS),
        "r": rng.choice(_REGIONS),
        "h": f"010-{rng.randrange(2000, 9999)}-{rng.randrange(1000, 9999)}",
        "k": f"{rng.randrange(1000, 9999)}",
        "d": f"2026.{rng.randint(1, 12)}.{rng.randint(1, 28)}",
    }


def _kind(rng: random.Random, category: str) -> str:
    u = rng.random()
    edge = 0.0
    weights = _WEIGHTS.get(category, _WEIGHTS["cafearticle"])
    for kind, share in weights:
        edge += share
        if u < edge:
            return kind
    return weights[0][0]


def _punctuate(rng: random.Random, text: str, avoid: str) -> str:
    """Forum punctuation: ``??``, ``?!``, ``..?``, a dropped ``?``, trailing ``...``/``!!``,
    an ellipsis glued before the last word (never inside the words of ``avoid``)."""
    u = rng.random()
    if text.endswith("?"):
        if u < 0.08:
            text += "?"
        elif u < 0.11:
            text += "??"
        elif u < 0.13:
            text += "!"
        elif u < 0.19:
            text = text[:-1] + "..?"
        elif u < 0.40:  # many posters leave the "?" out
            text = text[:-1]
    elif text[-1:].isalnum() or "가" <= text[-1:] <= "힣":
        if u < 0.06:
            text += "..."
        elif u < 0.11:
            text += ".."
        elif u < 0.15:
            text += "!!"
        elif u < 0.18:
            text += "~"
    head, _, last = text.rpartition(" ")
    if head.count(" ") >= 2 and rng.random() < 0.05 and not any(w in last for w in avoid.split()):
        text = f"{head}..{last}"  # "50대 초반 외벌이 선택..도와주세요"
    return text


def _decorate(rng: random.Random, category: str, kind: str, text: str, q: str) -> str:
    if kind in ("question", "personal"):
        text = _punctuate(rng, text, q)
        if rng.random() < (0.25 if kind == "personal" else 0.08):
            emo = rng.choice(fw.EMOTICONS)
            text = f"{text} {emo}" if rng.random() < 0.6 else text + emo
        prefixes = fw.KIN_PREFIXES if category == "kin" else fw.CAFE_PREFIXES
        if rng.random() < (0.05 if category == "kin" else 0.12):
            pre = rng.choice(prefixes)
            text = f"{pre} {text}" if rng.random() < 0.5 else pre + text
        if category == "kin" and rng.random() < 0.05:
            text += f" (내공 {rng.choice((10, 50, 100))})"
    elif kind == "vague" and rng.random() < 0.3:
        text = f"{text} {rng.choice(('ㅠㅠ', 'ㅜㅜ', 'ㅠ'))}"
    return text


def title(rng: random.Random, category: str, query: str) -> str:
    """One plain-text forum title for a result of ``query`` in ``category`` (before escaping
    and ``<b>`` highlighting); the choice of kind, wording and decoration comes from ``rng``."""
    return generate(rng, category, query)[1]


def generate(rng: random.Random, category: str, query: str) -> tuple[str, str]:
    """``(kind, title)``: :func:`title` with the kind it was written as (question, personal,
    vague, off_topic, unsafe), for tests; the search answer carries the title only."""
    kind = _kind(rng, category)
    q = subject(query)
    pool = (
        _OFF_TOPIC.get(category, _OFF_TOPIC["cafearticle"])
        if kind == "off_topic"
        else _TEMPLATES[kind]
    )
    slots = _slots(rng, q)
    template = rng.choice(pool)
    text = re.sub(r"\s+", " ", korean.render(template, slots)).strip()
    return kind, _decorate(rng, category, kind, text, q)
