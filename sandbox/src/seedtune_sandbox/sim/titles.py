"""The simulator's answer to the titles prompt: a verdict per numbered forum title.

A stand-in for an LLM answering seedtune's ``titles`` template under OpenAI structured outputs
with the ``TitleVerdicts`` schema (``{"items": [{"index", "question", "drop"}, ...]}``, exactly
one of question / drop per item). It reads the numbered titles between ``<참고자료>`` and
``</참고자료>`` and judges each from its words alone, as a careful LLM would:

- ``unsafe``: political, hateful, discriminating or sexual words;
- ``off_topic``: ads, cafe notices, chit-chat, shared news with nothing about real estate;
- ``not_answerable``: no topic at all, nothing asked ("매도 하려고 하는데요", "초보 ? 라고요 ?"),
  a statement, or a garbled line;
- ``personal``: one person's own situation and decision ("제 경우 ... 맞을까요?");
- else a standalone Korean question: bracketed prefixes, emoticons, ``ㅠㅠ``, repeated
  punctuation, ellipses and personal data dropped; numbers, prices, Latin acronyms and names
  kept; ended with "?" or as an instruction ("~알려 주세요.") as the prompt's forms sentence
  (the wording of ``FORMS`` in ``seedtune.tasks.titles``: 의문문 and/or 지시문) asks.

Every index is answered once, in order. Word lists: :mod:`~seedtune_sandbox.sim.forum_words`.
"""

from __future__ import annotations

import html
import random
import re
from typing import Any

from seedtune.core.pii import TAGS
from seedtune_sandbox.sim import forum_words as fw
from seedtune_sandbox.sim import korean

DROPS: tuple[str, ...] = ("off_topic", "not_answerable", "unsafe", "personal")

_BLOCK = re.compile(r"<참고자료>\s*\n?(.*?)</참고자료>", re.S)
_LINE = re.compile(r"^\s*(\d{1,4})\s*[.)]\s*(.*?)\s*$")
_SEED = re.compile(r"아래는\s*[\"“']([^\"”'\n]{1,40})[\"”']")

_TAG = re.compile(r"</?b>")
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2190-\u21ff"
    "\ufe0f\u200d\u20e3♡♥★☆※■□●○◆◇▶▷◀◁♪♬]"
)
_FACE = re.compile(r"\^[\^_]*\^|;{2,}|ㅠ[._,]+ㅠ|ㅜ[._,]+ㅜ|T[._]T|:\)|:\(")
_JAMO = re.compile(r"[ㄱ-ㅎㅏ-ㅣ]+")
_PREFIX_WORDS = (
    "질문",
    "급질",
    "문의",
    "급",
    "급해요",
    "고민",
    "도움요청",
    "Q",
    "Q&A",
    "공유",
    "속보",
    "펌",
    "뉴스",
    "공지",
    "광고",
    "최종",
    "긴급",
    "도와주세요",
    "필독",
    "정보",
    "후기",
    "질문드려요",
    "초긴급",
    "비부",
    "초보",
)
_BRACKET_START = re.compile(r"^\s*[\[(【「<]+\s*([^\])】」>]{0,12}?)\s*[\])】」>]+\s*")
_HALF_START = re.compile(r"^\s*([가-힣A-Za-z&]{1,5})\)\s*")
_TAIL_TAG = re.compile(r"\s*[(\[]\s*(?:내공\s*\d+|광고|급해요|급|질문|급질)\s*[)\]]\s*$")
_CONTACT = re.compile(r"\+?\d{2,4}-\d{3,4}-\d{4}|[\w.+-]+@[\w-]+\.[\w.]+")
_FILLER = re.compile(r"^(?:혹시|근데|그런데|아니|진짜|제발)\s+")

_VAGUE_END = re.compile(
    r"(?:데요|는데|은데|인데|던데|려고요|려는데|라고요|라구요|해서요|거든요"
    r"|더니)$"
)
_DECLARATIVE = re.compile(
    r"(?:니다|네요|군요|구나|더라고요|더라구요|었어요|았어요|했어요|했음|했다"
    r"|한다|된다|이다|없음|있음|함|(?<!주)세요)$"
)  # "꼭 확인하세요": advice
_QEND = re.compile(
    r"(?:[나까가죠지]요|죠|는지|을지|할지|될지|인지|건지|한지|[되돼]요|[있없]어요|"
    r"나|까|냐|니)$"
)
_INSTRUCT_END = re.compile(
    r"\s*(?:좀\s*)?(?:알려\s*주세요|알려주세요|추천해\s*주세요|추천\s*좀"
    r"|골라\s*주세요|설명해\s*주세요|도와\s*주세요|해\s*주세요)$"
)
_VS = re.compile(r"\s*(?<![A-Za-z])(?:vs\.?|VS\.?|Vs\.?)(?![A-Za-z])\s*|(?<=[가-힣])or(?=[가-힣])")
_CONDITIONAL = re.compile(r"(?:면|후|시|때)$")
_CUTE = (("나여", "나요"), ("까여", "까요"), ("가여", "가요"), ("나용", "나요"), ("까용", "까요"))


def is_titles_schema(schema: Any) -> bool:
    """Whether a response_format schema has TitleVerdicts' shape: an ``items`` array whose
    item object has ``index``, ``question`` and ``drop``."""
    if not isinstance(schema, dict):
        return False
    items = (schema.get("properties") or {}).get("items")
    item = _resolve(schema, items.get("items") if isinstance(items, dict) else None)
    props = item.get("properties") if isinstance(item, dict) else None
    return isinstance(props, dict) and {"index", "question", "drop"} <= set(props)


def _resolve(root: dict[str, Any], node: Any) -> Any:
    for _ in range(8):
        if not isinstance(node, dict) or "$ref" not in node:
            return node
        target: Any = root
        for part in [p for p in str(node["$ref"]).lstrip("#").split("/") if p]:
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node = target
    return node


def numbered_titles(prompt: str) -> list[tuple[int, str]]:
    """``(index, title)`` for each ``N. title`` line of the prompt's ``<참고자료>`` block (the
    whole prompt when it has none), each index once, in ascending order."""
    block = _BLOCK.search(prompt)
    seen: dict[int, str] = {}
    for line in (block.group(1) if block else prompt).splitlines():
        m = _LINE.match(line)
        if m and int(m.group(1)) >= 1:
            seen.setdefault(int(m.group(1)), m.group(2))
    return sorted(seen.items())


def seeds_of(prompt: str) -> tuple[str, ...]:
    """The seed word the titles were searched with (``아래는 "전세"(으)로 검색한 ...``) and its
    words: topics even where the simulator's vocabulary lacks them."""
    m = _SEED.search(prompt)
    found = [m.group(1).strip()] if m else korean.quoted_terms(prompt)[:1]
    words = [w for s in found for w in s.split()]
    return tuple(dict.fromkeys(w for w in [*found, *words] if len(w) >= 2))


def form_of(prompt: str) -> str:
    """What the prompt's forms sentence asks for (the wording of ``FORMS`` in
    ``seedtune.tasks.titles`` and ``.queries``): ``question`` (의문문), ``instruction``
    (지시문 or 명령문), both: ``fitting`` (whichever fits the title: "어울리는 쪽") or
    ``mixed`` (mostly that, some the other way); neither: questions."""
    asks_q = "의문문" in prompt
    asks_i = "지시문" in prompt or "명령문" in prompt
    if asks_q and asks_i:
        return "fitting" if "어울리" in prompt else "mixed"
    return "instruction" if asks_i else "question"


def clean(title: str) -> str:
    """A title without markup, bracketed prefixes, emoticons, ``ㅠㅠ``/``ㅋㅋ``, ellipses,
    repeated punctuation, contact details and masked-PII tags; one trailing "?" kept when
    the title asked one."""
    s = html.unescape(_TAG.sub("", title))
    for tag in TAGS.values():
        s = s.replace(tag, " ")
    s = _CONTACT.sub(" ", s)
    s = _TAIL_TAG.sub("", s)
    for _ in range(4):  # "[급질][질문] ...", "(((긴급)))"
        m = _BRACKET_START.match(s) or _HALF_START.match(s)
        if not m:
            break
        inner = m.group(1).strip()
        s = (" " if inner in _PREFIX_WORDS or not inner else f" {inner} ") + s[m.end() :]
    s = _FACE.sub(" ", _EMOJI.sub(" ", s))
    s = _JAMO.sub(" ", s)
    s = re.sub(r"\s*(?:\.{2,}|…+|·{2,})\s*", " ", s)
    s = re.sub(r"~+(?!\d)", " ", s)  # "3억~3.5억" keeps its range
    s = re.sub(r"[!！]+", " ", s)
    s = re.sub(r"[?？]+", "?", s)
    s = re.sub(r"\s+\?", "?", s)
    asked = s.rstrip(" .,:").endswith("?")
    s = re.sub(r"\?(?=.)", " ", s.rstrip(" .,:?"))  # a "?" mid-title
    s = re.sub(r"\s+", " ", s).strip(" .,:;-/")
    s = _FILLER.sub("", s)
    return f"{s}?" if asked and s else s


def _garbled(text: str) -> bool:
    chars = [c for c in text if not c.isspace()]
    good = sum(1 for c in chars if "가" <= c <= "힣" or (c.isascii() and c.isalnum()))
    return not chars or good < 0.6 * len(chars) or not re.search(r"[가-힣]", text)


def _jong(ch: str) -> int:
    return (ord(ch) - 0xAC00) % 28 if "가" <= ch <= "힣" else -1


def to_instruction(base: str) -> str | None:
    """A question sentence (no "?") turned into the clause an instruction asks about
    ("한도가 얼마나 나오나요" -> "한도가 얼마나 나오는지"); None when the ending is unknown."""
    for end, repl in (
        ("뭘까요", "무엇일지"),
        ("뭔가요", "무엇인지"),
        ("뭐죠", "무엇인지"),
        ("거죠", "건지"),
        ("건가요", "건지"),
        ("있어요", "있는지"),
        ("없어요", "없는지"),
        ("되요", "되는지"),
        ("돼요", "되는지"),
    ):
        if base.endswith(end):
            return base[: -len(end)] + repl
    if base.endswith("가요") and len(base) > 2 and _jong(base[-3]) == 4:  # 인가요, 한가요
        return base[:-2] + "지"
    if base.endswith(("나요", "나")):
        return base[: -(2 if base.endswith("나요") else 1)] + "는지"
    if base.endswith(("까요", "까")):
        return base[: -(2 if base.endswith("까요") else 1)] + "지"
    if base.endswith("지요"):
        return base[:-1]
    if base.endswith(("는지", "을지", "할지", "될지", "인지", "건지", "한지")):
        return base
    if base.endswith("죠"):
        return base[:-1] + "는지"
    return None


#: Forum shorthand an LLM writes out in full (a seed word itself is left as it is).
_ABBREVIATIONS: tuple[tuple[str, str], ...] = (
    ("양도세", "양도소득세"),
    ("종부세", "종합부동산세"),
    ("주담대", "주택담보대출"),
    ("복비", "중개수수료"),
    ("특공", "특별공급"),
    ("마통", "마이너스 통장"),
    ("아팟", "아파트"),
    ("취등록세", "취득세"),
    ("부린이", "부동산 초보"),
    ("재초환", "재건축초과이익환수제"),
)
_COLLOQUIAL: tuple[tuple[str, str], ...] = (
    (r"(?<![가-힣])뭘(?![가-힣])", "무엇을"),
    (r"(?<![가-힣])뭐가(?![가-힣])", "무엇이"),
    (r"(?<![가-힣])뭐(?![가-힣])", "무엇"),
    (r"건가요$", "것인가요"),
    (r"하는거", "하는 것"),
    (r"할때", "할 때"),
    (r"어떻게되", "어떻게 되"),
    (r"얼만가요$", "얼마인가요"),
    (r"몇\s*프로", "몇 퍼센트"),
    (r"([가-힣])되요$", r"\1되나요"),
)
#: Predicates before which a bare noun gets its subject (이/가) or topic (은/는) particle.
_SUBJECT_BEFORE = re.compile(
    r"(?<=[가-힣0-9억%]) (?=(?:꼭 |보통 )?(?:있나요|있을까요|없나요|필요한가요|가능한가요|"
    r"가능할까요|나오나요|적정한가요|오를까요|적용되나요|얼마나 나오나요|있는지|가능한지))"
)
_TOPIC_BEFORE = re.compile(
    r"(?<=[가-힣]) (?=(?:보통|어떻게|언제쯤|언제|어떤가요|얼마인가요)(?![가-힣]))"
)
_NOT_NOUN = frozenset(
    """어떻게 얼마나 보통 꼭 요즘 언제쯤 무엇을 같이 해도 하면 되면 전에 후에
    때 시 지금 다시 혹시 정말 너무 많이 안 못 잘 더 또""".split()
)


def _with_particle(text: str, pattern: re.Pattern[str], particle: str) -> str:
    def add(m: re.Match[str]) -> str:
        head = text[: m.start()]
        word = head.rsplit(" ", 1)[-1]
        if (
            word in _NOT_NOUN
            or word.endswith(korean.VERB_ENDINGS)
            or korean.strip_particle(word) != word
            or len(word) < 2
        ):
            return m.group(0)
        return korean.josa(word, particle)[len(word) :] + " "

    return pattern.sub(add, text)


def polish(text: str, seeds: tuple[str, ...] = ()) -> str:
    """What an LLM does to a title it keeps: shorthand written out, colloquial words made
    standard, the particles a title leaves out put back ("한도 얼마나 나오나요" ->
    "한도가 얼마나 나오나요"). Numbers, prices, acronyms and names stay as they are."""
    for short, full in _ABBREVIATIONS:
        if not any(short in seed for seed in seeds):
            text = (
                re.sub(rf"{short}(?![가-힣]*{full[len(short) :]})", full, text)
                if full.startswith(short)
                else text.replace(short, full)
            )
    for pattern, repl in _COLLOQUIAL:
        text = re.sub(pattern, repl, text)
    text = _with_particle(text, _SUBJECT_BEFORE, "이")
    return _with_particle(text, _TOPIC_BEFORE, "은")


def _noun_phrase(text: str) -> str:
    """``text`` without the words that only ask ("문의드립니다", "관련", "추천") and a last
    particle ("자격이" -> "자격")."""
    s = text
    for _ in range(3):
        s2 = _INSTRUCT_END.sub("", fw.ASK_SUFFIX.sub("", s)).strip()
        s2 = re.sub(r"(?:\s*(?:관련(?:해서)?|에 대해|에 대한)|\s+(?:추천|건|좀))$", "", s2).strip()
        if s2 == s:
            break
        s = s2
    head, _, last = s.rpartition(" ")
    if last and re.fullmatch(r"[가-힣]+", last) and not last.endswith(korean.VERB_ENDINGS):
        stripped = korean.strip_particle(last)
        if stripped != last and stripped[-1:] not in "의":
            s = f"{head} {stripped}".strip()
    return s


def rewrite(title: str, form: str, rng: random.Random, seeds: tuple[str, ...] = ()) -> str | None:
    """The standalone question (or instruction) a careful LLM writes from a title with a
    topic; None when nothing is asked (a trailing "...하는데요", a statement)."""
    s = clean(title)
    asked = s.endswith("?")
    s = s.rstrip("?").strip()
    for cute, plain in _CUTE:
        if s.endswith(cute):
            s = s[: -len(cute)] + plain
    if not s or _VAGUE_END.search(s):
        return None
    recommend = bool(re.search(r"추천|골라", s))
    question: str | None = None
    instruction: str | None = None
    natural = "question"
    if _DECLARATIVE.search(s) and not fw.ASK_SUFFIX.search(s):
        return None  # a statement: nothing asked
    if (
        not fw.ASK_SUFFIX.search(s)
        and not _INSTRUCT_END.search(s)
        and (
            (asked and s.endswith("요"))
            or (_QEND.search(s) and (asked or re.search(r"(?:요|까|죠)$", s)))
        )
    ):
        base = polish(s, seeds)
        clause = to_instruction(base)
        if base == s and clause:  # still the title word for word: the fuller polite form
            base = f"{clause} 알 수 있을까요"
        question = f"{base}?"
        instruction = (
            f"{clause} {rng.choice(('알려 주세요.', '설명해 주세요.'))}" if clause else None
        )
    else:
        np = polish(_noun_phrase(s), seeds)
        if not np or _DECLARATIVE.search(np) or not fw.has_topic(np, seeds):
            return None
        natural = "instruction"
        parts = [p.strip() for p in _VS.split(np) if p and p.strip()]
        if len(parts) >= 2:
            pair = f"{korean.josa(parts[0], '와')} {' '.join(parts[1:])}"
            question = f"{pair} 중 어느 쪽이 더 나은가요?"
            instruction = f"{pair} 중 어느 쪽이 더 나은지 비교해 주세요."
        elif recommend:
            question = f"{np} 중 추천할 만한 곳은 어디인가요?"
            instruction = f"{np} 중 추천할 만한 곳을 알려 주세요."
        elif _CONDITIONAL.search(np):
            question = f"{np} 어떤 점을 고려해야 하나요?"
            instruction = f"{np} 고려할 점을 알려 주세요."
        else:
            question = rng.choice(
                (f"{np}에 대해 알아 둘 점은 무엇인가요?", f"{np} 관련해서 무엇을 확인해야 하나요?")
            )
            instruction = rng.choice(
                (f"{np}에 대해 알려 주세요.", f"{np}에 대해 자세히 설명해 주세요.")
            )
    if form == "fitting":  # "제목에 어울리는 쪽으로": the title's own shape
        form = natural
    elif form == "mixed":
        other = "instruction" if natural == "question" else "question"
        form = natural if rng.random() < 0.7 else other
    text = instruction if form == "instruction" and instruction else question
    return re.sub(r"\s+", " ", text).strip() if text else None


def verdict(
    title: str, form: str, rng: random.Random, seeds: tuple[str, ...] = ()
) -> tuple[str | None, str | None]:
    """``(question, None)`` or ``(None, drop reason)`` for one title."""
    raw = html.unescape(_TAG.sub("", title)).strip()
    if _garbled(clean(raw)):
        return None, "not_answerable"
    kind = fw.kind_of(raw, seeds)
    if kind == "unsafe":
        return None, "unsafe"
    if kind == "off_topic":
        return None, "off_topic"
    if kind == "vague":
        return None, "not_answerable"
    if kind == "personal":
        return None, "personal"
    question = rewrite(raw, form, rng, seeds)
    return (question, None) if question else (None, "not_answerable")


def _drop_values(schema: dict[str, Any]) -> tuple[str, ...]:
    item = _resolve(schema, ((schema.get("properties") or {}).get("items") or {}).get("items"))
    drop = _resolve(schema, ((item or {}).get("properties") or {}).get("drop"))
    values: list[str] = []
    for option in [drop, *((drop or {}).get("anyOf") or [])]:
        option = _resolve(schema, option)
        if isinstance(option, dict):
            values += [v for v in option.get("enum") or [] if isinstance(v, str)]
    return tuple(values) or DROPS


def answer(schema: dict[str, Any], prompt: str, rng: random.Random) -> dict[str, Any]:
    """The TitleVerdicts value for a titles prompt: every numbered title answered once, in
    order (one ``not_answerable`` item 1 when the prompt has no numbered title)."""
    allowed = _drop_values(schema)
    seeds = seeds_of(prompt)
    form = form_of(prompt)
    items: list[dict[str, Any]] = []
    for index, title in numbered_titles(prompt) or [(1, "")]:
        question, drop = verdict(title, form, rng, seeds)
        if drop is not None and drop not in allowed:
            drop = "not_answerable" if "not_answerable" in allowed else allowed[0]
        items.append({"index": index, "question": question, "drop": drop})
    return {"items": items}
