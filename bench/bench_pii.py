"""Benchmark: personal-data masking, on generated Korean sentences and on labelled sets
its author did not write, today's masker beside the one before issue 22.

Run: ``python bench/run.py pii``.

1. Generated: each case is a sentence of the kind blog and Q&A posts carry, with one
   planted value: personal data of one kind (resident and alien registration numbers with
   valid dates and gender digits, mobile/Seoul/area/070/050x/+82 phone numbers in dash,
   dot, middle-dot, space, bare and "(02) ..." forms, e-mail addresses, also written to
   dodge scrapers, Luhn-valid card numbers, bank accounts after a bank or account word,
   driver's licence numbers in any grouping, passport numbers in both formats), or a
   look-alike that must stay (prices, dates, areas, lot and unit numbers, 1588-style
   business numbers, Luhn-failing 16-digit order numbers, court case numbers, and order,
   invoice and serial numbers shaped like registration or licence numbers after their
   label). Reported: recall per kind (the planted value is gone from the masked text),
   false positives per look-alike kind (the look-alike was changed), and sentences/s.
2. Labelled (``pii_sets``): 100 labelled Korean documents and Presidio's Korean
   recognizer tests: recall per kind, false positives on identifiers, as ``real_*``; the
   same figures for the masker at :data:`BASELINE` as ``before_*``.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import pii_sets

#: The commit whose masker the labelled figures are measured beside (before issue 22).
BASELINE = "1538e47"

PREFIXES = (
    "문의는 {v} 로 연락 주세요.",
    "담당자 연락처: {v}",
    "궁금하신 점은 {v}(으)로 보내 주세요.",
    "자세한 내용은 {v} 참고하시면 됩니다.",
    "({v}) 확인 부탁드립니다.",
)
ACCOUNT_PREFIXES = (
    "입금 계좌: {bank} {v}",
    "{bank} {v} 예금주 홍길동",
    "계좌번호 {v} 로 보내 주세요",
    "{bank}은행 {v}",
)
PERSONAL = ("rrn", "phone", "email", "card", "account", "license", "passport")
BANKS = ("국민", "신한", "우리", "하나", "농협", "카카오뱅크", "토스뱅크", "기업")
LOOKALIKE_SENTENCES = {
    "price": ("매매가는 {v}입니다.", "보증금 {v}에 계약했어요."),
    "date": ("잔금일은 {v}입니다.", "{v} 기준 시세예요."),
    "area": ("전용면적 {v} 아파트", "{v} 기준으로 계산했습니다."),
    "lot": ("소재지는 서울시 강남구 역삼동 {v}입니다.", "{v} 토지 등기부를 확인하세요."),
    "unit": ("{v}에 살고 있어요.", "계약한 집은 {v}입니다."),
    "business": ("고객센터 {v}로 문의하세요.", "대표번호 {v}"),
    "digits": ("사건번호 {v} 판결", "접수번호 {v}"),
    # shaped like registration and licence numbers, after the label that says what they are
    "labelled": (
        "주문번호: {v} / 배송완료",
        "송장번호 {v} 조회",
        "제품 시리얼: {v}",
        "제품코드 {v} 재고",
    ),
}
REGION_CODES = tuple(range(11, 27)) + (28,)  # driver's licence regions (27 is not one)


def _luhn_complete(rng: random.Random, n: int) -> str:
    body = [rng.randrange(10) for _ in range(n - 1)]
    body[0] = rng.choice((3, 4, 5, 6))
    total = 0
    for i, d in enumerate(reversed(body)):
        total += (d * 2 - 9 if d > 4 else d * 2) if i % 2 == 0 else d
    return "".join(map(str, body)) + str((10 - total % 10) % 10)


def _group(digits: str, sizes: tuple[int, ...], sep: str) -> str:
    out, i = [], 0
    for s in sizes:
        out.append(digits[i : i + s])
        i += s
    return sep.join(out)


def personal(rng: random.Random, kind: str) -> str:
    """One personal value of ``kind`` in one of the forms people write it."""
    if kind == "rrn":
        yy, mm, dd = rng.randrange(100), rng.randint(1, 12), rng.randint(1, 28)
        sep = rng.choice(("-", " - ", ""))
        return f"{yy:02d}{mm:02d}{dd:02d}{sep}{rng.randint(1, 8)}{rng.randrange(10**6):06d}"
    if kind == "phone":
        sep = rng.choice(("-", ".", " ", "", "－", " - "))
        form = rng.randrange(9)
        if form == 0:
            return f"010{sep}{rng.randrange(10**4):04d}{sep}{rng.randrange(10**4):04d}"
        if form == 1:
            return f"02{sep}{rng.randint(200, 9999)}{sep}{rng.randrange(10**4):04d}"
        if form == 2:
            area = rng.choice(("031", "032", "051", "053", "062", "064"))
            return f"{area}{sep}{rng.randint(200, 999)}{sep}{rng.randrange(10**4):04d}"
        if form == 3:
            return f"070{sep}{rng.randint(1000, 9999)}{sep}{rng.randrange(10**4):04d}"
        if form == 4:
            return f"0505{sep}{rng.randint(100, 999)}{sep}{rng.randrange(10**4):04d}"
        if form == 5:
            plus = rng.choice(("+82 10", "+82-10"))
            return f"{plus}-{rng.randint(1000, 9999)}-{rng.randrange(10**4):04d}"
        if form == 6:
            return f"010·{rng.randint(1000, 9999)}·{rng.randrange(10**4):04d}"
        if form == 7:
            return f"+82-2-{rng.randint(200, 9999)}-{rng.randrange(10**4):04d}"
        return f"(02) {rng.randint(200, 9999)}-{rng.randrange(10**4):04d}"
    if kind == "email":
        user = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789._") for _ in range(8))
        user = user.strip(".") or "kim"
        host, tld = rng.choice(
            (("naver", "com"), ("gmail", "com"), ("daum", "net"), ("hanmail", "net"))
        )
        form = rng.randrange(7)  # the last four are written to dodge scrapers
        if form < 3:
            return f"{user}@{host}.{tld}"
        return (
            f"{user} [at] {host} [dot] {tld}",
            f"{user} 골뱅이 {host} 닷 {tld}",
            f"{user} (at) {host} . {tld}",
            f"{user.replace('.', ' . ')} @ {host} . {tld}",
        )[form - 3]
    if kind == "card":
        return _group(_luhn_complete(rng, 16), (4, 4, 4, 4), rng.choice(("-", " ", "")))
    if kind == "license":
        if rng.random() < 0.75:
            sep = rng.choice(("-", " ", "-", ""))  # one run of digits: only next to 면허
            return sep.join(
                (
                    str(rng.choice(REGION_CODES)),
                    f"{rng.randint(10, 99)}",
                    f"{rng.randrange(10**6):06d}",
                    f"{rng.randint(10, 99)}",
                )
            )
        region = rng.choice(("서울", "경기", "부산"))
        return f"{region} {rng.randint(10, 99)}-{rng.randrange(10**6):06d}-{rng.randint(10, 99)}"
    if kind == "passport":
        if rng.random() < 0.5:  # the format since 2021: M123A4567
            return (
                f"{rng.choice('MSR')}{rng.randrange(1000):03d}"
                f"{rng.choice('ABCDEFGHJK')}{rng.randrange(10**4):04d}"
            )
        return f"{rng.choice('MSR')}{rng.randrange(10**8):08d}"
    if kind == "account":
        sizes = rng.choice(((3, 2, 6), (3, 6, 2, 3), (6, 2, 6), (4, 3, 6)))
        return _group("".join(str(rng.randrange(10)) for _ in range(sum(sizes))), sizes, "-")
    raise ValueError(kind)


def lookalike(rng: random.Random, kind: str) -> str:
    """One value of ``kind`` that looks like personal data and is not."""
    if kind == "price":
        return rng.choice(
            (
                f"{rng.randint(1, 30)}억 {rng.randint(1, 9)},000만 원",
                f"{rng.randint(100, 999):,},000,000원",
                f"{rng.randint(1, 99)}만원",
            )
        )
    if kind == "date":
        y, m, d = rng.randint(2015, 2027), rng.randint(1, 12), rng.randint(1, 28)
        return rng.choice((f"{y}.{m:02d}.{d:02d}", f"{y}-{m:02d}-{d:02d}", f"{y}년 {m}월 {d}일"))
    if kind == "area":
        return rng.choice(
            (
                f"{rng.randint(20, 200)}.{rng.randint(10, 99)}㎡",
                f"{rng.randint(10, 60)}평",
                f"{rng.randint(50, 300)}m²",
            )
        )
    if kind == "lot":
        return rng.choice(
            (
                f"{rng.randint(1, 999)}-{rng.randint(1, 99)}번지",
                f"산{rng.randint(1, 99)}-{rng.randint(1, 9)}",
            )
        )
    if kind == "unit":
        return f"{rng.randint(101, 120)}동 {rng.randint(1, 30)}{rng.randint(1, 9):02d}호"
    if kind == "business":
        return f"{rng.choice(('1588', '1577', '1644', '1899'))}-{rng.randrange(10**4):04d}"
    if kind == "digits":  # order numbers (16 digits in one run, failing Luhn); case numbers
        digits = _luhn_complete(rng, 16)
        bad = digits[:-1] + str((int(digits[-1]) + 1) % 10)
        return rng.choice((bad, f"2024가단{rng.randint(1000, 99999)}"))
    if kind == "labelled":  # YYMMDD-NNNNNNN order numbers, NN-NN-NNNNNN-NN serials
        if rng.random() < 0.5:
            return (
                f"{rng.randint(20, 25)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}-"
                f"{rng.randint(1, 4)}{rng.randrange(10**6):06d}"
            )
        return (
            f"{rng.choice(REGION_CODES)}-{rng.randint(10, 99)}-{rng.randrange(10**6):06d}"
            f"-{rng.randint(10, 99)}"
        )
    raise ValueError(kind)


def cases(n_per_kind: int = 400, seed: int = 0) -> list[tuple[str, str, str, bool]]:
    """``(kind, sentence, value, is_personal)``, ``n_per_kind`` of each kind."""
    rng = random.Random(seed)
    out = []
    for kind in PERSONAL:
        for _ in range(n_per_kind):
            value = personal(rng, kind)
            if kind == "passport":  # the word may be a few characters and a line off
                sentence = rng.choice(
                    (
                        "여권번호: {v}",
                        "여권 {v} 사본 제출",
                        "여권번호 {v}입니다",
                        "분실된 여권번호는\n{v}이며",
                        "여권은 {v} 입니다",
                    )
                ).format(v=value)
            elif kind == "license" and value[:2].isdigit() and not any(c in value for c in " -"):
                sentence = rng.choice(("운전면허번호 {v}", "면허번호: {v}")).format(v=value)
            elif kind == "account":
                sentence = rng.choice(ACCOUNT_PREFIXES).format(bank=rng.choice(BANKS), v=value)
            else:
                sentence = rng.choice(PREFIXES).format(v=value)
            out.append((kind, sentence, value, True))
    for kind, templates in LOOKALIKE_SENTENCES.items():
        for _ in range(n_per_kind):
            value = lookalike(rng, kind)
            out.append((kind, rng.choice(templates).format(v=value), value, False))
    return out


def run(n_per_kind: int = 400) -> dict[str, Any]:
    """Recall per personal kind and false-positive rate per look-alike kind (generated),
    and the labelled sets' figures, ours (``real_*``) beside the baseline's (``before_*``)."""
    from seedtune.core.pii import mask

    data = cases(n_per_kind)
    hit: Counter[str] = Counter()
    total: Counter[str] = Counter()
    t0 = time.perf_counter()
    for kind, sentence, value, is_personal in data:
        masked, _ = mask(sentence)
        total[kind] += 1
        hit[kind] += (value not in masked) if is_personal else (masked != sentence)
    elapsed = time.perf_counter() - t0
    personal_kinds = PERSONAL
    result: dict[str, Any] = {f"recall_{k}": hit[k] / total[k] for k in personal_kinds}
    result["recall_all"] = sum(hit[k] for k in personal_kinds) / sum(
        total[k] for k in personal_kinds
    )
    for k in LOOKALIKE_SENTENCES:
        result[f"false_pos_{k}"] = hit[k] / total[k]
    result["false_pos_all"] = sum(hit[k] for k in LOOKALIKE_SENTENCES) / sum(
        total[k] for k in LOOKALIKE_SENTENCES
    )
    result["sentences_per_s"] = len(data) / elapsed
    maskers = {"real": mask, "before": pii_sets.baseline_masker(BASELINE)}
    for prefix, masker in maskers.items():
        if masker is None:  # no git history here: today's figures only
            continue
        for fig, value in {
            **pii_sets.score_documents(masker),
            **pii_sets.score_presidio(masker),
        }.items():
            result[f"{prefix}_{fig}"] = value
    return result
