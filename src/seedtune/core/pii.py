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
- card numbers: 13-19 digits in groups that pass the Luhn check;
- bank account numbers: digit groups like ``110-123-456789`` next to a word that says
  account (계좌, 입금, 은행 names), since without one they look like lot numbers.

Not masked, on purpose: prices (``3억 5천만 원``, ``1,200,000원``), dates (``2024-05-01``),
areas (``84.97㎡``), lot numbers (``산12-3번지``, ``123-45``) and unit numbers (``101동 1203호``).
"""

from __future__ import annotations

import re
from collections import Counter

TAGS = {"rrn": "[주민등록번호]", "phone": "[전화번호]", "email": "[이메일]",
        "card": "[카드번호]", "account": "[계좌번호]"}

_D = r"(?<![\d-])"  # not inside a longer digit run
_RRN = re.compile(_D + r"\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\s?[-–]?\s?[1-8]\d{6}"
                  r"(?!\d)")
# the area code may be in parentheses: "(02) 123-4567"
_PHONE = re.compile(
    r"(?:(?<![\d-])\(?(?:\+82[\s-]?(?:0?1[0-9]|0?[2-6]\d?)|01[016789]|02|0[3-6][1-5]|070|"
    r"050\d)(?:\)\s?|[\s.-])?\d{3,4}[\s.-]?\d{4}(?!\d))")
# also the forms people write to dodge scrapers: "kim [at] naver.com", "kim(골뱅이)daum.net"
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+(?:@|\s?[\[(]\s?(?:at|AT|골뱅이)\s?[\])]\s?)"
                    r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(_D + r"(?:\d{4}[\s-]?){3}\d{1,7}(?!\d)")
_ACCOUNT_WORDS = (r"(?:계좌|입금|송금|이체|예금주|국민|신한|우리|하나|농협|기업|카카오뱅크|"
                  r"토스뱅크|새마을|우체국|케이뱅크|은행)")
_ACCOUNT = re.compile(_ACCOUNT_WORDS + r"[^\d\n]{0,12}" + r"(" + _D +
                      r"\d{2,6}-\d{2,6}-\d{2,7}(?:-\d{1,3})?(?!\d)|" + _D + r"\d{10,14}(?!\d))")


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

    def card(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and _luhn(digits):
            counts["card"] += 1
            return TAGS["card"]
        return m.group(0)

    text = _CARD.sub(card, text)

    def account(m: re.Match[str]) -> str:
        counts["account"] += 1
        return m.group(0)[: m.start(1) - m.start(0)] + TAGS["account"]

    text = _ACCOUNT.sub(account, text)
    text = _PHONE.sub(tagger("phone"), text)
    return text, counts
