"""Benchmark: near-duplicate questions, our canonical keys
(:func:`seedtune.synthesis.dedup.deduplicate`) beside the old rule (syllable-bigram Jaccard
>= 0.6 among the questions of one seed word), on a generated set with planted pairs.

Run: ``python bench/run.py dedup`` (under a minute on 2 CPU cores).

The set is built from question frames x terms x qualifiers (a region, a region and a kind
of home), deterministic for its size. Each distinct question is one spec (frame, term,
qualifier, the frame's own slot); on top of the distinct questions two kinds are planted:

* duplicates: a spec again, in another of its frame's wordings (question or instruction,
  other particles and endings, filler words, spacing, punctuation, emoticons, coordination
  order) and one family that only a synonym tells apart (지불 / 납부 시 주의할 점), which
  the keys do not know;
* key-term pairs: a spec with one term changed (장점 / 단점, 임차인 / 임대인, 5억 / 10억, a
  region, 전세에서 월세로 / 월세에서 전세로, 재계약 / 계약, can / must, when / why, ...).

Reported for both rules: the share of planted duplicates removed (one copy left), of
key-term pairs with both questions kept, and of distinct questions kept; questions/s on
the 10k set (the old rule within seed words, as the queries stage ran it). Ours also at
100k, with the ratio of the per-question cost (flat: near 1) and the memory the 100k run
takes above Kiwi and the rows (its peak RSS less the RSS before it). The old rule on one
group (one seed word) of 1k and 2k questions, whose time grows with the square of the
kept questions (each new one is compared with all of them). And Kiwi's batch tokenizing
speed with one worker and with its default (one per core).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

QUALIFIERS = [
    "목동",
    "잠실",
    "분당",
    "일산",
    "송도",
    "동탄",
    "마포",
    "성수",
    "판교",
    "광교",
    "위례",
    "평촌",
    "산본",
    "김포",
    "파주",
    "하남",
    "미사",
    "다산",
    "별내",
    "청라",
    "검단",
    "부평",
    "수원",
    "용인",
    "화성",
    "세종",
    "대전",
    "대구",
    "부산",
    "광주",
    "울산",
    "창원",
    "천안",
    "청주",
    "전주",
    "강릉",
    "원주",
    "제주",
    "노원",
    "강서",
    "은평",
    "관악",
    "동작",
    "서초",
    "강남",
    "송파",
    "강동",
    "용산",
    "종로",
    "중랑",
]
KINDS = ["", "아파트", "오피스텔", "빌라"]
TERMS = [
    "전세",
    "월세",
    "반전세",
    "매매",
    "청약",
    "분양권",
    "입주권",
    "재건축",
    "재개발",
    "리모델링",
    "전세대출",
    "주담대",
    "디딤돌대출",
    "보금자리론",
    "신생아특례대출",
    "전세보증보험",
    "확정일자",
    "전입신고",
    "등기부등본",
    "중개수수료",
    "취득세",
    "양도세",
    "재산세",
    "종부세",
    "증여세",
    "상속세",
    "임대사업자",
    "갭투자",
    "경매",
    "공매",
    "토지거래허가",
    "분양가상한제",
    "조정대상지역",
    "투기과열지구",
    "LTV",
    "DSR",
    "DTI",
    "전매제한",
    "실거주의무",
    "특별공급",
]
#: Pairs of terms that a key-term pair swaps (one for the other).
SWAPS = {
    "전세": "월세",
    "월세": "반전세",
    "매매": "전세",
    "취득세": "양도세",
    "양도세": "증여세",
    "재산세": "종부세",
    "청약": "분양권",
    "재건축": "재개발",
    "LTV": "DSR",
    "DSR": "DTI",
}


def _final(word: str) -> bool:
    """Whether ``word`` ends in a consonant as read aloud (picks 은/는, 이/가, 을/를 ...)."""
    last = word[-1]
    if "가" <= last <= "힣":
        return (ord(last) - 0xAC00) % 28 != 0
    return last in "LMNR0136780"  # 엘 엠 엔 알, 영 일 삼 육 칠 팔 (DSR, LTV: 알, 비)


def _j(word: str, pair: str) -> str:
    """``word`` and the particle of ``pair`` (e.g. "은는") that fits it."""
    if pair == "으로로":  # 로 after a vowel and after ㄹ (월세로, 서울로)
        rieul = "가" <= word[-1] <= "힣" and (ord(word[-1]) - 0xAC00) % 28 == 8
        return word + ("으로" if _final(word) and not rieul else "로")
    return word + (pair[0] if _final(word) else pair[1])


def _subject(spec: tuple) -> str:
    _, term, qualifier, _ = spec
    return f"{qualifier} {term}" if qualifier else term


# Each frame: a function of the spec to its wordings (all the same question), and the
# spec's key-term partner (None: the frame plants no pair).
def _define(s: tuple) -> list[str]:
    t = _subject(s)
    return [
        f"{_j(t, '은는')} 무엇인가요?",
        f"{t}에 대해 알려 주세요.",
        f"{_j(t, '이가')} 궁금합니다!",
        f"혹시 {t}에 대해 좀 설명해 주실 수 있나요?ㅠㅠ",
    ]


def _merit(s: tuple) -> list[str]:
    t, side = _subject(s), s[3]
    return [
        f"{t}의 {side}은 무엇인가요?",
        f"{t}의 {_j(side, '이가')} 궁금해요",
        f"{t} {side} 알려주세요",
    ]


def _calculate(s: tuple) -> list[str]:
    t = _subject(s)
    return [
        f"{_j(t, '은는')} 어떻게 계산하나요?",
        f"{t}의 계산 방법은 어떻게 되나요?",
        f"{t} 계산 방법 좀 알려주세요",
    ]


def _caution(s: tuple) -> list[str]:
    t, contract = _subject(s), s[3]
    return [
        f"{t} {contract} 시 주의할 점은?",
        f"{t} {contract}할 때 주의해야 할 사항이 있을까요?",
        f"{t} {contract} 시 주의사항을 설명해 주세요.",
    ]


def _documents(s: tuple) -> list[str]:
    t = _subject(s)
    return [
        f"{t} 신청 시 필요한 서류는 무엇인가요?",
        f"{_j(t, '을를')} 신청할 때 필요한 서류가 궁금합니다.",
        f"{t} 신청할때 필요한 서류 알려주세요",
    ]


def _cancel(s: tuple) -> list[str]:
    t = _subject(s)
    if s[3] == "must":
        return [f"{t} 계약을 중도에 해지해야 하나요?", f"{t} 계약은 중도에 해지해야 할까요?"]
    return [
        f"{t} 계약을 중도에 해지할 수 있나요?",
        f"{t} 계약 중도 해지가 가능한가요?",
        f"{t} 계약을 중도에 해지해도 되나요?",
    ]


def _when(s: tuple) -> list[str]:
    t, ask = _subject(s), s[3]
    return [
        f"{t} 신고는 {ask} 해야 하나요?",
        f"{t} 신고는 {ask} 하나요?",
        f"{t} 신고 {ask} 해야 돼요?",
    ]


def _compare(s: tuple) -> list[str]:
    t, other = _subject(s), s[3]
    return [
        f"{_j(t, '과와')} {other}의 차이는 무엇인가요?",
        f"{_j(other, '과와')} {t}의 차이는?",
        f"{_j(t, '과와')} {other}의 차이가 궁금합니다",
    ]


def _convert(s: tuple) -> list[str]:
    t, (a, b) = _subject(s), s[3]
    return [
        f"{t} {a}에서 {_j(b, '으로로')} 전환할 때 주의할 점은?",
        f"{t} {a}에서 {_j(b, '으로로')} 전환 시 주의사항은 무엇인가요?",
    ]


def _amount(s: tuple) -> list[str]:
    t, n = _subject(s), s[3]
    return [
        f"{n}억 {t} 매수 시 대출 한도는 얼마인가요?",
        f"{n}억짜리 {_j(t, '을를')} 매수할 때 대출 한도는 얼마나 되나요?",
    ]


def _role(s: tuple) -> list[str]:
    t, who = _subject(s), s[3]
    return [f"{t} 계약 시 {who}의 의무는 무엇인가요?", f"{t} 계약에서 {who}의 의무가 궁금합니다"]


def _pay(s: tuple) -> list[str]:
    t, when = _subject(s), s[3]
    # the same question with a synonym (지불 / 납부): the keys do not know synonyms
    return [f"{t} {when} 지불 시 주의할 점은?", f"{t} {when} 납부 시 주의할 점은?"]


FRAMES: dict[str, tuple[Any, list[Any], dict[Any, Any]]] = {
    # name: (wordings, the slot's values, slot value -> its key-term partner)
    "define": (_define, [None], {}),
    "merit": (_merit, ["장점", "단점"], {"장점": "단점", "단점": "장점"}),
    "calculate": (_calculate, [None], {}),
    "caution": (_caution, ["계약", "재계약"], {"계약": "재계약", "재계약": "계약"}),
    "documents": (_documents, [None], {}),
    "cancel": (_cancel, ["can", "must"], {"can": "must", "must": "can"}),
    "when": (_when, ["언제", "왜"], {"언제": "왜", "왜": "언제"}),
    "compare": (
        _compare,
        ["분양권", "입주권", "경매"],
        {"분양권": "입주권", "입주권": "경매", "경매": "분양권"},
    ),
    "convert": (
        _convert,
        [("전세", "월세"), ("월세", "전세")],
        {("전세", "월세"): ("월세", "전세"), ("월세", "전세"): ("전세", "월세")},
    ),
    "amount": (_amount, [3, 5, 7, 10, 15, 20], {3: 5, 5: 10, 7: 15, 10: 20, 15: 3, 20: 7}),
    "role": (_role, ["임차인", "임대인"], {"임차인": "임대인", "임대인": "임차인"}),
    "pay": (_pay, ["계약금", "중도금", "잔금"], {}),
}


def _noise(rng: random.Random, text: str) -> str:
    """``text`` as a person might type it again: no spaces somewhere, other punctuation."""
    kind = rng.randrange(4)
    if kind == 0 and text.count(" ") > 1:
        i = rng.choice([i for i, c in enumerate(text) if c == " "])
        return text[:i] + text[i + 1 :]
    if kind == 1:
        return text.rstrip("?.!") + rng.choice(["??", "!!", " ㅠㅠ", "~", "?^^"])
    if kind == 2:
        return "혹시 " + text
    return text


def planted_set(
    n: int, seed: int = 0
) -> tuple[list[dict[str, Any]], list[tuple], list[int], list[tuple[int, int]]]:
    """About ``n`` rows: distinct questions, planted duplicates (15%) and key-term partners
    (15%). Returns the rows, each row's spec, the indices of planted duplicates and the
    key-term pairs (indices of both rows)."""
    rng = random.Random(seed)
    names = list(FRAMES)
    qualifiers = [""] + [f"{q} {k}".strip() for q in QUALIFIERS for k in KINDS]
    seen: set[tuple] = set()
    rows: list[dict[str, Any]] = []
    specs: list[tuple] = []
    duplicates: list[int] = []
    pairs: list[tuple[int, int]] = []

    def add(spec: tuple, text: str) -> int:
        rows.append({"question": text, "seed": spec[1], "source": "llm"})
        specs.append(spec)
        return len(rows) - 1

    while len(rows) < n:
        name = rng.choice(names)
        render, slots, partner = FRAMES[name]
        spec = (name, rng.choice(TERMS), rng.choice(qualifiers), rng.choice(slots))
        if spec in seen:
            continue
        seen.add(spec)
        wordings = render(spec)
        first = rng.randrange(len(wordings))
        base = add(spec, wordings[first])
        roll = rng.random()
        if roll < 0.15:  # the same question again, in another wording
            other = rng.choice([w for i, w in enumerate(wordings) if i != first])
            duplicates.append(add(spec, _noise(rng, other)))
        elif roll < 0.30:  # the same frame with one key term changed
            if spec[3] in partner:
                twin = (name, spec[1], spec[2], partner[spec[3]])
            elif spec[1] in SWAPS:
                twin = (name, SWAPS[spec[1]], spec[2], spec[3])
            else:  # another region: 목동 아파트 vs 잠실 아파트
                region, _, kind = spec[2].partition(" ")
                nxt = (
                    QUALIFIERS[(QUALIFIERS.index(region) + 1) % len(QUALIFIERS)]
                    if region
                    else QUALIFIERS[0]
                )
                twin = (name, spec[1], f"{nxt} {kind}".strip(), spec[3])
            if twin not in seen:
                seen.add(twin)
                pairs.append((base, add(twin, rng.choice(render(twin)))))
    order = list(range(len(rows)))
    rng.shuffle(order)  # the planted rows are not next to their originals
    where = {old: new for new, old in enumerate(order)}
    return (
        [rows[i] for i in order],
        [specs[i] for i in order],
        [where[i] for i in duplicates],
        [(where[a], where[b]) for a, b in pairs],
    )


def old_rule(
    rows: list[dict[str, Any]], threshold: float = 0.6
) -> tuple[list[dict[str, Any]], list[tuple[dict, dict]]]:
    """The queries stage's dedup before this module: exact, then syllable-bigram Jaccard
    >= ``threshold`` against the kept questions of the same seed word."""
    from seedtune.core.text import char_ngrams, jaccard

    kept: list[dict[str, Any]] = []
    dropped: list[tuple[dict, dict]] = []
    groups: dict[Any, list[tuple[set[str], dict]]] = {}
    exact: dict[str, dict] = {}
    for row in rows:
        q = row["question"]
        g = char_ngrams(q, 2)
        group = groups.setdefault(row.get("seed"), [])
        hit = exact.get(q) or next((r for o, r in group if jaccard(g, o) >= threshold), None)
        if hit is not None:
            dropped.append((row, hit))
            continue
        exact[q] = row
        group.append((g, row))
        kept.append(row)
    return kept, dropped


def score(
    rows: list[dict],
    specs: list[tuple],
    duplicates: list[int],
    pairs: list[tuple[int, int]],
    kept: list[dict],
) -> dict[str, float]:
    """Shares of planted duplicates removed (one copy of their question left), of those
    less the synonym family (``reworded_removed``), of key-term pairs with both questions
    kept, and of distinct questions kept."""
    spec_of = {id(r): s for r, s in zip(rows, specs, strict=True)}
    copies = Counter(spec_of[id(r)] for r in kept)  # kept rows per distinct question
    # a planted duplicate is removed when one copy of its question is left (either one)
    removed = [i for i in duplicates if copies[specs[i]] == 1]
    worded = [i for i in duplicates if specs[i][0] != "pay"]  # less the synonym family
    both = sum(1 for a, b in pairs if copies[specs[a]] and copies[specs[b]])
    return {
        "duplicates_removed": len(removed) / len(duplicates),
        "reworded_removed": sum(1 for i in removed if specs[i][0] != "pay") / len(worded),
        "key_term_pairs_kept": both / len(pairs),
        "distinct_kept": len(copies) / len(set(specs)),
    }


def _kiwi_rate(texts: list[str], workers: int | None) -> float:
    """Texts/s of Kiwi's batch tokenize (1,000 a call) with ``workers`` threads (None: its
    default, one per core)."""
    from kiwipiepy import Kiwi

    kiwi = Kiwi() if workers is None else Kiwi(num_workers=workers)
    kiwi.tokenize("전세")  # its model loads on first use
    t0 = time.perf_counter()
    for start in range(0, len(texts), 1000):
        for _ in kiwi.tokenize(texts[start : start + 1000]):
            pass
    return len(texts) / (time.perf_counter() - t0)


def _memory_mb(field: str) -> float:
    """This process's ``VmRSS`` or ``VmHWM`` (its peak) in MB; 0 where /proc has none."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0.0
    return int(status.split(f"{field}:")[1].split()[0]) / 1024


def run(small: int = 10_000, large: int = 100_000) -> dict[str, Any]:
    """Our keys at ``small`` and ``large`` questions, the old rule at ``small`` and on one
    group of 1k and 2k; the planted shares for both."""
    from seedtune.synthesis.dedup import deduplicate, question_key

    question_key("전세")  # load Kiwi outside the timings
    result: dict[str, Any] = {"kiwi_loaded_rss_mb": _memory_mb("VmRSS")}
    per_question = {}
    sets = {}
    for n in (small, large):
        label = f"{n // 1000}k"
        rows, specs, duplicates, pairs = sets[n] = planted_set(n)
        before = _memory_mb("VmRSS")
        t0 = time.perf_counter()
        kept, _ = deduplicate(rows)
        elapsed = time.perf_counter() - t0
        # memory above what the rows and Kiwi hold: the keys and one batch of tokens
        result[f"ours_{label}_extra_mb"] = max(0.0, _memory_mb("VmHWM") - before)
        per_question[label] = elapsed / len(rows)
        result[f"ours_{label}_questions"] = len(rows)
        result[f"ours_{label}_questions_per_s"] = len(rows) / elapsed
        for fig, value in score(rows, specs, duplicates, pairs, kept).items():
            result[f"ours_{label}_{fig}"] = value
    small_label, large_label = (f"{n // 1000}k" for n in (small, large))
    result[f"ours_cost_ratio_{large_label}_{small_label}"] = (
        per_question[large_label] / per_question[small_label]
    )
    rows, specs, duplicates, pairs = sets[small]
    t0 = time.perf_counter()
    old_kept, _ = old_rule(rows)  # within seed words, as the queries stage ran it
    result[f"old_{small_label}_questions_per_s"] = len(rows) / (time.perf_counter() - t0)
    for fig, value in score(rows, specs, duplicates, pairs, old_kept).items():
        result[f"old_{small_label}_{fig}"] = value
    one = [{**r, "seed": None} for r in planted_set(2_000, seed=1)[0]]  # one seed word
    times = {}
    for size in (1_000, 2_000):
        t0 = time.perf_counter()
        old_rule(one[:size])
        times[size] = time.perf_counter() - t0
    result["old_one_group_1k_seconds"] = times[1_000]
    result["old_one_group_2k_seconds"] = times[2_000]
    result["old_one_group_ratio_2k_1k"] = times[2_000] / times[1_000]
    texts = [r["question"] for r in rows]
    result["kiwi_1_worker_per_s"] = _kiwi_rate(texts, 1)
    result["kiwi_default_workers_per_s"] = _kiwi_rate(texts, None)
    return result
