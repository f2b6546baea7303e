"""Personal data in crawled Korean text, masked before it reaches a prompt or training data.

Blog and Q&A posts carry phone numbers, e-mail addresses, resident registration numbers,
card and bank account numbers. Each kind is replaced by a bracketed tag (``[전화번호]``)
where the text enters the pipeline (search results and crawled pages), and synthesized
answers are masked again. Covered, and why:

- resident registration numbers (주민등록번호) and alien registration numbers
  (외국인등록번호): ``YYMMDD-GNNNNNN`` with a valid month and day and a gender digit 1-8;
- phone numbers: mobile ``010``-``019``, Seoul ``02`` and area codes ``031``-``064``,
  ``070``/``050x`` virtual numbers, ``+82`` forms, area codes in parentheses;
  ``1588-xxxx`` style numbers are businesses' and kept;
- e-mail addresses, also written to dodge scrapers (``kim [at] naver.com``,
  ``kim(골뱅이)daum.net``);
- card numbers: 13-19 digits (4-4-4-4 or Amex's 4-6-5) that pass the Luhn check, and any
  four groups of four digits (``1234-5678-9012-3456``: written only for cards, so masked
  even when Luhn fails);
- driver's licence numbers (운전면허번호: ``12-34-567890-12``, ``서울 12-345678-90``) and
  passport numbers (``M12345678``, only next to 여권, since alone they look like model
  numbers): both identify a person as surely as a registration number;
- bank account numbers: digit groups like ``110-123-456789`` next to a word that says
  account (계좌, 입금, 은행 names), since without one they look like lot numbers.

Hyphens may be any dash a Korean IME types (``－``, ``–``), with spaces around them.

Not masked, on purpose: prices (``3억 5천만 원``, ``1,200,000원``), dates (``2024-05-01``),
areas (``84.97㎡``), lot numbers (``산12-3번지``, ``123-45``) and unit numbers (``101동 1203호``).
"""

from __future__ import annotations

import re
from collections import Counter

TAGS = {"rrn": "[주민등록번호]", "phone": "[전화번호]", "email": "[이메일]",
        "card": "[카드번호]", "account": "[계좌번호]", "license": "[운전면허번호]",
        "passport": "[여권번호]"}

_D = r"(?<![\d-])"  # not inside a longer digit run
# hyphens as typed in Korean text: ASCII, Unicode dashes, the full-width one (IME output)
_H = r"[-\u2010-\u2015\u2212\ufe63\uff0d]"
_RRN = re.compile(_D + r"\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\s?" + _H + r"?\s?"
                  r"[1-8]\d{6}(?!\d)")
# the area code may be in parentheses ("(02) 123-4567"); separators may have spaces around
_SEP = r"(?:\s?" + _H + r"\s?|[\s.])"
_PHONE = re.compile(
    r"(?:(?<![\d-])\(?(?:\+82[\s-]?(?:0?1[0-9]|0?[2-6]\d?)|01[016789]|02|0[3-6][1-5]|070|"
    r"050\d)(?:\)\s?|" + _SEP + r")?\d{3,4}" + _SEP + r"?\d{4}(?!\d))")
# also the forms people write to dodge scrapers: "kim [at] naver.com", "kim(골뱅이)daum.net"
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+(?:@|\s?[\[(]\s?(?:at|AT|골뱅이)\s?[\])]\s?)"
                    r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(_D + r"(?:(?:\d{4}(?:\s|" + _H + r")?){3}\d{1,7}|"
                   r"\d{4}(?:\s|" + _H + r")\d{6}(?:\s|" + _H + r")\d{4,5})(?!\d)")  # 4-6-5: Amex
# four groups of four with one separator are written only for cards: masked even when the
# number fails the Luhn check (a typo, or an example number, is still a card number)
_CARD_GROUPED = re.compile(r"\d{4}(\s|" + _H + r")\d{4}\1\d{4}\1\d{4}")
_ACCOUNT_WORDS = (r"(?:계좌|입금|송금|이체|예금주|국민|신한|우리|하나|농협|기업|카카오뱅크|"
                  r"토스뱅크|새마을|우체국|케이뱅크|은행)")
_ACCOUNT = re.compile(_ACCOUNT_WORDS + r"[^\d\n]{0,12}" + r"(" + _D +
                      r"\d{2,6}" + _H + r"\d{2,6}" + _H + r"\d{2,7}(?:" + _H +
                      r"\d{1,3})?(?!\d)|" + _D + r"\d{10,14}(?!\d))")
# driver's licence: 12-34-567890-12, or the region-name form 서울 12-345678-90
_REGIONS = "서울|부산|경기|강원|충북|충남|전북|전남|경북|경남|제주|대구|인천|광주|대전|울산|세종"
_LICENSE = re.compile(_D + r"\d{2}" + _H + r"\d{2}" + _H + r"\d{6}" + _H + r"\d{2}(?!\d)|"
                      r"(?:" + _REGIONS + r")\s?\d{2}" + _H + r"\d{6}" + _H + r"\d{2}(?!\d)")
# passport numbers look like model numbers: only next to the word
_PASSPORT = re.compile(r"(여권(?:번호)?[^\w\n]{0,6})([A-Z]{1,2}\d{7,8})(?![\dA-Za-z])")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def mask(text: str) -> tuple[str, Counter[str]]:
    """``text`` with personal data replaced by tags, and how many of each kind."""
    counts: Counter[str] = Counter()

    def tagger(kind: str):  # noqa: ANN202 - a re.sub callback factory
        def sub(m: re.Match[str]) -> str:
            counts[kind] += 1
            return TAGS[kind]
        return sub

    text = _EMAIL.sub(tagger("email"), text)
    text = _RRN.sub(tagger("rrn"), text)

    text = _LICENSE.sub(tagger("license"), text)

    def card(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(0))
        grouped = _CARD_GROUPED.fullmatch(m.group(0).strip())
        if 13 <= len(digits) <= 19 and (_luhn(digits) or grouped):
            counts["card"] += 1
            return TAGS["card"]
        return m.group(0)

    text = _CARD.sub(card, text)

    def account(m: re.Match[str]) -> str:
        counts["account"] += 1
        return m.group(0)[: m.start(1) - m.start(0)] + TAGS["account"]

    text = _ACCOUNT.sub(account, text)

    def passport(m: re.Match[str]) -> str:
        counts["passport"] += 1
        return m.group(1) + TAGS["passport"]

    text = _PASSPORT.sub(passport, text)
    text = _PHONE.sub(tagger("phone"), text)
    return text, counts
