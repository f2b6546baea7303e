"""Word lists shared by the forum-title generator and the simulator's title judge.

:mod:`~seedtune_sandbox.sim.forum` writes Naver cafe / 지식iN titles with these words;
:mod:`~seedtune_sandbox.sim.titles` (the LLM side of the titles prompt) reads a title's kind
back from the same words, from the title's text alone, as a real LLM would judge it: no
hidden markers travel with a title. Keeping both sides on one list keeps them in step.
"""

from __future__ import annotations

import re

from seedtune_sandbox.sim import korean

#: Real-estate terms forum posters use besides :data:`korean.TOPICS` (a title naming one of
#: them, a place, a complex, an acronym or a price has a topic).
FORUM_TOPICS: tuple[str, ...] = (
    "주담대",
    "전세자금",
    "잔금대출",
    "양도세",
    "취득세",
    "종부세",
    "보유세",
    "입주권",
    "특공",
    "특례",
    "보금자리론",
    "디딤돌",
    "버팀목",
    "상가",
    "토지",
    "임야",
    "복비",
    "분담금",
    "비례율",
    "조합원",
    "리모델링",
    "신축",
    "구축",
    "급매",
    "실거주",
    "비과세",
    "2주택",
    "다주택",
    "무주택",
    "임차권등기",
    "전월세",
    "공동명의",
    "누수",
    "하자",
    "갈아타기",
    "세입자",
    "집주인",
    "매물",
    "시세",
    "호가",
    "매도",
    "매수",
    "이주비",
    "공시지가",
    "중개사",
    "전입",
    "전매",
    "집값",
    "아파트",
    "단지",
    "평형",
    "층간소음",
    "이사",
    "계약서",
    "가계약",
    "영끌",
    "청약통장",
    "당첨",
    "분양가",
    "모델하우스",
    "내집마련",
    "소득세",
    "과세",
    "세율",
    "사업자",
    "계약",
    "원룸",
    "투룸",
    "도배",
    "인테리어",
    "신도시",
    "택지",
    "개발",
    "갭",
    "등기비",
    "임대인",
    "임차인",
    "재계약",
    "만기",
    "역전세",
    "준공",
    "착공",
    "미분양",
    "자금조달",
)

#: Neighbourhoods and stations as posters write them (short forms included).
FORUM_PLACES: tuple[str, ...] = (
    "목동",
    "잠실",
    "마포",
    "용산",
    "성수",
    "반포",
    "대치",
    "개포",
    "고덕",
    "상계",
    "중계",
    "분당 수내",
    "판교",
    "광교",
    "동탄",
    "송도",
    "위례",
    "과천",
    "평촌",
    "산본",
    "일산",
    "운정",
    "검단",
    "풍무",
    "철산",
    "수지",
    "미사",
    "청라",
    "노원",
    "흑석",
    "신길",
    "북아현",
    "마용성",
    "강동",
    "동작",
    "서초",
    "해운대",
    "수성구",
    "압구정",
    "여의도",
    "이촌",
    "한남",
    "강남",
    "강북",
    "수도권",
    "경기",
    "인천",
    "부산",
)

#: Apartment complexes (names as people shorten them).
COMPLEXES: tuple[str, ...] = (
    "은마",
    "헬리오시티",
    "올림픽파크포레온",
    "잠실엘스",
    "리센츠",
    "트리지움",
    "반포자이",
    "래미안퍼스티지",
    "아크로리버파크",
    "마래푸",
    "목동 신시가지 7단지",
    "고덕 그라시움",
    "디에이치아너힐즈",
    "파크리오",
    "철산자이",
    "상계주공",
    "동탄역 롯데캐슬",
    "송도 더샵",
    "판교 푸르지오그랑블",
    "광교 자연앤힐스테이트",
)

#: All-caps Latin as it turns up in titles (loan rules, lines, builders, lenders).
ACRONYMS: tuple[str, ...] = (
    "LTV",
    "DSR",
    "DTI",
    "GTX-A",
    "GTX-C",
    "KB시세",
    "HUG",
    "LH",
    "SH",
    "SRT",
    "SK",
    "GS",
    "DMC",
    "KTX",
)

#: Political, hateful, discriminating or sexual words: such a title is ``unsafe``.
UNSAFE: tuple[str, ...] = (
    "좌파",
    "우파",
    "좌빨",
    "수꼴",
    "빨갱이",
    "토착왜구",
    "민주당",
    "국민의힘",
    "정권",
    "탄핵",
    "총선",
    "대선",
    "선거",
    "지지율",
    "정치인",
    "투표권",
    "전라도 사람",
    "경상도 사람",
    "충청도 사람",
    "홍어",
    "틀딱",
    "한남충",
    "김치녀",
    "짱깨",
    "조선족",
    "외노자",
    "19금",
    "야동",
    "섹시",
    "몸매",
)

#: Ads, cafe notices and chit-chat: such a title is ``off_topic`` whatever else it names.
ADS: tuple[str, ...] = (
    "광고",
    "선착순",
    "무료 상담",
    "무료상담",
    "이벤트",
    "오픈 행사",
    "홍보",
    "특가",
    "상담 문의 ☎",
    "☎",
    "잔여세대",
    "특별분양",
    "분양 상담",
)
NOTICES: tuple[str, ...] = (
    "공지",
    "운영 가이드",
    "운영가이드",
    "등업",
    "게시판 규칙",
    "이용 규칙",
    "강퇴",
    "카페 규정",
    "출석체크",
)
CHITCHAT: tuple[str, ...] = (
    "점심",
    "저녁 메뉴",
    "야구",
    "축구",
    "주식",
    "코인",
    "비트코인",
    "로또",
    "결혼가능",
    "연애",
    "다이어트",
    "맛집",
    "날씨",
    "게임",
    "강아지",
    "고양이",
    "노트북",
    "유행어",
    "영화",
    "드라마",
    "헬스장",
)
#: Prefixes of a shared news item or a post elsewhere: off topic unless a topic is named.
SHARED: tuple[str, ...] = ("[공유]", "[속보]", "[펌]", "[뉴스]")

#: One's own circumstances (with a :data:`DECISION` word, the title is ``personal``).
SELF: tuple[str, ...] = (
    "제 경우",
    "제 상황",
    "저희",
    "제가",
    "저는",
    "남편",
    "와이프",
    "아내",
    "신랑",
    "시댁",
    "친정",
    "우리 부부",
    "우리집",
    "저 같은",
    "제 나이",
    "제 연봉",
)
LIFE: tuple[str, ...] = (
    "퇴직",
    "이혼",
    "육아휴직",
    "결혼 앞두고",
    "결혼 예정",
    "외벌이",
    "맞벌이",
    "미혼",
    "은퇴",
)
AGE = re.compile(r"(?<!\d)[2-7]0\s*(?:대|초반|중반|후반)|(?<!\d)\d{2}\s*살")
DECISION: tuple[str, ...] = (
    "될까요",
    "할까요",
    "괜찮을까요",
    "맞을까요",
    "어떨까요",
    "나을까요",
    "좋을까요",
    "해야 할지",
    "할지",
    "조언",
    "고견",
    "골라",
    "말까요",
    "어떡하죠",
    "어쩌죠",
    "선택",
    "버틸까요",
)

#: Bracketed and other decorations of a title: prefixes, emoticons, kin's bounty.
CAFE_PREFIXES: tuple[str, ...] = (
    "[질문]",
    "[급질]",
    "[문의]",
    "[질문드려요]",
    "(급질)",
    "[Q]",
    "[고민]",
    "[도움요청]",
)
KIN_PREFIXES: tuple[str, ...] = ("급질)", "(급해요)", "[질문]", "(급)")
EMOTICONS: tuple[str, ...] = (
    "ㅠㅠ",
    "ㅜㅜ",
    "ㅠ",
    "^^",
    "ㅎㅎ",
    "🥳",
    "😭",
    "🙏",
    "ㅠ.ㅠ",
    ";;",
    "ㅋㅋ",
    "😅",
)

#: Words that ask without saying what: dropped before the topic is looked for.
ASK_SUFFIX = re.compile(
    r"\s*(?:관련\s*)?(?:문의|질문|여쭤|여쭙|궁금|부탁|조언|고견|고민|추천)"
    r"[가-힣]*(?:\s*(?:드립니다|드려요|합니다|해요|입니다|이요|요|중|있습니다))*\s*$"
)

_PRICE = re.compile(
    r"\d+(?:\.\d+)?\s*(?:억|천|만\s*원|평|㎡|%|프로|단지|차(?![가-힣])|구역)"
    r"|[가-힣]+(?:아파트|자이|래미안|푸르지오|힐스테이트|아이파크|더샵|롯데캐슬|"
    r"e편한세상|센트럴|캐슬|파크)|(?<![가-힣])집(?![가-힣])"
)

#: Words that only point or ask ("이런 경우", "아시는 분"): a title of these and no topic
#: is too vague to answer; one with two other content words is about something else.
VAGUE_WORDS: frozenset[str] = frozenset(
    """어떻게 이거 이게 이건 다들 아시는 계실까 계실까요 계신가요 혹시 고수님들 고수님 말씀 질문
    문의 급해요 급질 도와주세요 답답해서 남깁니다 초보 라고 라고요 그냥 해버릴까 하셨어요 맞는
    건가요 있습니다 부탁 여쭤봅니다 궁금 궁금합니다 궁금해요 뭐가 뭔가요 무엇 이런 저런 그런
    여기 거기 정말 진짜 제발 한번 다시 같아요 생각 의견 조언 고견 도움""".split()
)


def topic_terms() -> tuple[str, ...]:
    """Every word that gives a title a real-estate topic, longest first."""
    return _TERMS


_TERMS = tuple(
    sorted(
        {*korean.TOPICS, *FORUM_TOPICS, *FORUM_PLACES, *COMPLEXES, *ACRONYMS, *korean.PLACES},
        key=len,
        reverse=True,
    )
)


def has_any(text: str, words: tuple[str, ...]) -> bool:
    """Whether any of ``words`` occurs in ``text``; Latin ones compared case-insensitively
    and only as whole words ("SH" is not in "fresh")."""
    low = text.lower()
    for w in words:
        if w.isascii() and w[:1].isalpha():
            if re.search(rf"(?<![a-z]){re.escape(w.lower())}(?![a-z])", low):
                return True
        elif w.lower() in low:
            return True
    return False


def has_topic(text: str, extra: tuple[str, ...] = ()) -> bool:
    """Whether ``text`` names a real-estate topic: a term, place, complex, acronym, a price
    or area, or one of ``extra`` (the seed words of the prompt)."""
    return (
        bool(_PRICE.search(text))
        or has_any(text, _TERMS)
        or has_any(text, tuple(w for w in extra if len(w) >= 2))
    )


def content_words(text: str) -> list[str]:
    """Hangul content words of ``text`` beyond :data:`VAGUE_WORDS` and verb-like tokens."""
    return [
        t
        for t in korean.hangul_tokens(text)
        if t not in VAGUE_WORDS and not t.endswith(("요", "까", "죠", "니다", "는", "은"))
    ]


def kind_of(title: str, extra: tuple[str, ...] = ()) -> str:
    """The kind of a title from its words alone: ``unsafe``, ``off_topic`` (also: no topic
    but two content words of another field), ``vague`` (no topic, nothing said), ``personal``
    or ``question``; :mod:`~seedtune_sandbox.sim.titles` refines
    ``question`` further (a topic but nothing asked is still not answerable)."""
    if has_any(title, UNSAFE):
        return "unsafe"
    if has_any(title, ADS) or has_any(title, NOTICES) or has_any(title, CHITCHAT):
        return "off_topic"
    topic = has_topic(title, extra)
    if title.lstrip().startswith(SHARED) and not topic:
        return "off_topic"
    if not topic:  # something else (another field), or nothing said at all
        return "off_topic" if len(content_words(title)) >= 2 else "vague"
    if (has_any(title, SELF) or has_any(title, LIFE) or AGE.search(title)) and has_any(
        title, DECISION
    ):
        return "personal"
    return "question"
