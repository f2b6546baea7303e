"""Personal data in crawled Korean text, masked before it reaches a prompt or training data.

Blog and Q&A posts carry phone numbers, e-mail addresses, resident registration numbers,
card and bank account numbers. Each kind is replaced by a bracketed tag (``[전화번호]``)
where the text enters the pipeline (search results and crawled pages), and synthesized
answers are masked again. :func:`find` returns the spans, :func:`mask` replaces them.

Matching runs on a folded copy of the text, one character for one, so full-width forms
(``０１０－１２３４``, ``ｋｉｍ＠ｎａｖｅｒ``), every dash a Korean IME types (``－``, ``–``),
middle dots (``010·8901·2345``) and Greek/Cyrillic letters that look Latin (``Μ12345678``)
are read as what they look like, and the spans still point into the original text.

Covered, and why:

- resident and alien registration numbers (주민등록번호, 외국인등록번호):
  ``YYMMDD-GNNNNNN`` whose birth date exists (the century from the gender digit 1-8) in
  any spacing (also spaced out digit by digit, as OCR output and posts that dodge filters
  write it) or in one run. The check digit is not asked for: numbers issued since October
  2020 have none, and the example numbers people write fail it;
- phone numbers: mobile ``010``-``019``, Seoul ``02`` and area codes ``031``-``064``,
  ``070``/``050x`` virtual numbers, ``+82`` and other international forms, area codes in
  parentheses, Japanese ``090``/``080`` mobiles; separated by hyphens, dots, middle dots,
  spaces or nothing. ``1588-xxxx`` style numbers are businesses' and kept;
- e-mail addresses, also written to dodge scrapers (``kim [at] naver [dot] com``,
  ``kim 골뱅이 daum 닷 net``, ``kim(at)naver . com``, ``hong . gildong @ naver . com``);
- card numbers: 13-19 digits (4-4-4-4 or Amex's 4-6-5) that pass the Luhn check, and any
  four groups of four digits (``1234-5678-9012-3456``: written only for cards, so masked
  even when Luhn fails);
- driver's licence numbers (운전면허번호): ``RR-YY-NNNNNN-CC`` with a hyphen, space, dot
  or no separator, whose region code ``RR`` exists (11-26, 28), the one-run form only next
  to 면허; and the region-name form ``서울 12-345678-90``;
- passport numbers, only next to 여권 (alone they look like model numbers): the current
  format ``M123A4567`` (since 2021) and the older ``M12345678``, a few characters after the
  word (particles and a line break may sit between: ``여권번호는\\nM87654321``); right
  after ``여권번호:`` any 8-9 letters and digits, as foreign passports are;
- bank account numbers: digit groups like ``110-123-456789`` next to a word that says
  account (계좌, 입금, 은행 names), since without one they look like lot numbers.

Not masked, on purpose: prices (``3억 5천만 원``, ``1,200,000원``), dates (``2024-05-01``),
areas (``84.97㎡``), lot numbers (``산12-3번지``, ``123-45``), unit numbers (``101동 1203호``),
and any number right after a label that says what else it is (주문번호, 송장번호, 시리얼,
제품코드, 사업자등록번호, ...: :data:`NOT_PERSONAL_LABELS`), unless a personal word such as
주민번호 sits between the label and the number.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator

TAGS = {
    "rrn": "[주민등록번호]",
    "phone": "[전화번호]",
    "email": "[이메일]",
    "card": "[카드번호]",
    "account": "[계좌번호]",
    "license": "[운전면허번호]",
    "passport": "[여권번호]",
}

Span = tuple[int, int, str]


# -- folding: one character for one, so spans found in the folded text fit the original ----
def _fold_table() -> dict[int, str]:
    table = {cp: chr(cp - 0xFEE0) for cp in range(0xFF01, 0xFF5F)}  # full-width ASCII
    table[0x3000] = " "  # ideographic space
    for dash in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d\u30fc":
        table[ord(dash)] = "-"
    for dot in "\u00b7\u2027\u2219\u22c5\u30fb\uff65\u2022":  # middle dots, as in 010·8901
        table[ord(dot)] = "."
    # Greek and Cyrillic letters drawn like Latin ones (Μ12345678, раrk@nаvеr.cоm)
    look_alike = {
        "Α": "A",
        "Β": "B",
        "Ε": "E",
        "Ζ": "Z",
        "Η": "H",
        "Ι": "I",
        "Κ": "K",
        "Μ": "M",
        "Ν": "N",
        "Ο": "O",
        "Ρ": "P",
        "Τ": "T",
        "Υ": "Y",
        "Χ": "X",
        "ο": "o",
        "А": "A",
        "В": "B",
        "Е": "E",
        "К": "K",
        "М": "M",
        "Н": "H",
        "О": "O",
        "Р": "P",
        "С": "C",
        "Т": "T",
        "Х": "X",
        "а": "a",
        "е": "e",
        "о": "o",
        "р": "p",
        "с": "c",
        "у": "y",
        "х": "x",
        "і": "i",
        "ј": "j",
        "ѕ": "s",
    }
    table.update({ord(k): v for k, v in look_alike.items()})
    return table


_FOLD = _fold_table()
_NUMERALS = dict(zip("공영일이삼사오육칠팔구", "00123456789", strict=True))
# numbers spelled in Hangul to dodge filters (공일공-일이삼사-오육칠팔): only long hyphenated
# runs of numeral syllables, which ordinary words never form
_NUMERAL_RUN = re.compile(r"[공영일이삼사오육칠팔구]{2,4}(?:-[공영일이삼사오육칠팔구]{2,6}){2,3}")


def fold(text: str) -> str:
    """``text`` with full-width forms, dashes, middle dots, Latin look-alike letters and
    hyphenated numbers spelled in Hangul replaced by the ASCII characters they stand for;
    always the same length."""
    text = text.translate(_FOLD)
    return _NUMERAL_RUN.sub(lambda m: "".join(_NUMERALS.get(c, c) for c in m.group(0)), text)


# -- context: what the words before a number say it is -----------------------------------
#: Labels that say a number is something else (orders, parcels, products, companies, cases).
NOT_PERSONAL_LABELS = (
    "주문번호",
    "주문 번호",
    "주문코드",
    "송장",
    "운송장",
    "배송번호",
    "시리얼",
    "일련번호",
    "제품코드",
    "제품 코드",
    "제품번호",
    "상품코드",
    "상품번호",
    "모델명",
    "모델번호",
    "품번",
    "바코드",
    "관리번호",
    "관리 코드",
    "관리코드",
    "접수번호",
    "사건번호",
    "승인번호",
    "거래번호",
    "예약번호",
    "인보이스",
    "사업자등록번호",
    "사업자번호",
    "법인등록번호",
    "계약번호",
    "증권번호",
    "고객번호",
    "회원번호",
    "쿠폰",
    "invoice",
    "order",
    "serial",
    "s/n",
    "sku",
    "tracking",
)
_NOT_PERSONAL = re.compile("|".join(re.escape(w) for w in NOT_PERSONAL_LABELS), re.IGNORECASE)
#: Words that say a number is a person's: one between a label above and the number wins.
_PERSONAL = re.compile(
    r"주민|외국인|등록번호|생년|신분|면허|여권|전화|연락|휴대|핸드폰|"
    r"계좌|카드|rrn|passport|phone",
    re.IGNORECASE,
)
#: How far back (same line) a label still describes the number.
LABEL_WINDOW = 24


def _line_before(text: str, start: int, width: int = LABEL_WINDOW) -> str:
    before = text[max(0, start - width) : start]
    return before.rsplit("\n", 1)[-1]


def labelled_not_personal(text: str, start: int) -> bool:
    """Whether the nearest label before ``start`` on its line says the number is not
    personal data (``주문번호: 240422-1000234``, ``시리얼: 12-34-567890-12``)."""
    before = _line_before(text, start)
    labels = list(_NOT_PERSONAL.finditer(before))
    if not labels:
        return False
    return _PERSONAL.search(before, labels[-1].end()) is None


def _near(words: re.Pattern[str], text: str, start: int, width: int = 40) -> bool:
    return words.search(text[max(0, start - width) : start]) is not None


# -- checks --------------------------------------------------------------------------------
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_CENTURY = {"1": 1900, "2": 1900, "5": 1900, "6": 1900, "3": 2000, "4": 2000, "7": 2000, "8": 2000}


def _birth_date_exists(yymmdd: str, gender: str) -> bool:
    year = _CENTURY[gender] + int(yymmdd[:2])
    month, day = int(yymmdd[2:4]), int(yymmdd[4:6])
    if not (1 <= month <= 12 and 1 <= day <= _DAYS[month - 1]):
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return not (month == 2 and day == 29 and not leap)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


# -- the patterns (on folded text: every dash is "-", every middle dot ".") ----------------
_D = r"(?<![\d-])"  # not inside a longer digit run
_HY = r"\s?-\s?"
# 900101-1234567, 900101 - 1234567, 9001011234567, and digits spaced out with the hyphen kept
# (8 5 0 3 1 5 - 1 2 3 4 5 6 7, 88 07 15 - 1234567), as OCR output and posts that dodge filters
_RRN = re.compile(
    r"(?<![\d-])(\d{6}|\d(?: \d){5}|\d\d \d\d \d\d)(\s?-\s?| |)"
    r"(\d{7}|\d(?: \d){6})(?![\d-])"
)
_SEP = r"(?:\s?-\s?|[ .])"
# 080/090 with a four-digit middle: Japanese mobiles as visitors write them (090.1234.5678);
# Korea's toll-free 080 numbers have a three-digit one (080-000-1234) and stay
_KR_PHONE = (
    r"(?<![\d.+-])\(?(?:01[016789]|02|0[3-6][1-5]|070|050\d|0[89]0(?=[ .-]?\d{4}\D))"
    r"(?:\)\s?|" + _SEP + r")?\d{3,4}" + _SEP + r"?\d{4}(?![\d-]|\.\d)"
)
_PLUS82 = (
    r"\+\s?82[\s.-]?\(?0?\)?(?:1[016789]|2|[3-6][1-5]|70|50\d)[\s.-]?\d{3,4}"
    r"[\s.-]?\d{4}(?!\d)"
)
_INTL = r"\+(?!82)\d{1,3}(?:[\s.-]\(?\d{1,4}\)?){2,4}(?!\d)"
_PARENS = r"(?<![\d(])\(\d{3}\)\s?\d{3}[-.]\d{4}(?!\d)"  # (202) 555-0147
_PHONE = re.compile("|".join((_PLUS82, _INTL, _KR_PHONE, _PARENS)))
_AT = r"(?:\s?@\s?|\s?[\[({<]\s?(?:at|AT|At|a|골뱅이)\s?[\])}>]\s?|\s?골뱅이\s?)"
_SPACED_DOT = r"(?:\s\.\s|\s?[\[({<]\s?(?:dot|DOT|Dot|점|닷)\s?[\])}>]\s?|\s(?:닷|점|dot)\s)"
_DOT = r"(?:\.|" + _SPACED_DOT + ")"
# the user part's own class holds the plain dot, so only spaced dots join its pieces, and at
# most a few: one way to read each string, and no scan to the end of a long dotted run
_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]+(?:" + _SPACED_DOT + r"[A-Za-z0-9._%+-]+)"
    r"{0,3}"
    + _AT
    + r"[A-Za-z0-9-]+(?:"
    + _DOT
    + r"[A-Za-z0-9-]+){0,4}"
    + _DOT
    + r"[A-Za-z]{2,}(?![A-Za-z0-9])"
)
_CARD = re.compile(_D + r"(?:(?:\d{4}[\s-]?){3}\d{1,7}|\d{4}[\s-]\d{6}[\s-]\d{4,5})(?!\d)")
# four groups of four with one separator are written only for cards: masked even when the
# number fails the Luhn check (a typo, or an example number, is still a card number)
_CARD_GROUPED = re.compile(r"\d{4}(\s|-)\d{4}\1\d{4}\1\d{4}")
_ACCOUNT_WORDS = (
    r"(?:계좌|입금|송금|이체|예금주|국민|신한|우리|하나|농협|기업|카카오뱅크|"
    r"토스뱅크|새마을|우체국|케이뱅크|은행)"
)
_ACCOUNT = re.compile(
    _ACCOUNT_WORDS + r"[^\d\n]{0,12}" + r"(" + _D + r"\d{2,6}-\d{2,6}-"
    r"\d{2,7}(?:-\d{1,3})?(?!\d)|" + _D + r"\d{10,14}(?!\d))"
)
_REGION_CODES = frozenset({f"{n}" for n in range(11, 27)} | {"28"})
_REGIONS = "서울|부산|경기|강원|충북|충남|전북|전남|경북|경남|제주|대구|인천|광주|대전|울산|세종"
# the same separator throughout (hyphen, space, dot, or none): 11-22-123456-12, 112212345612
_LICENSE = re.compile(
    r"(?<![A-Za-z0-9-])(\d{2})(\s?-\s?| |\.|)(\d{2})\2(\d{6})\2(\d{2})"
    r"(?![\d-])|(?:" + _REGIONS + r")\s?\d{2}" + _HY + r"\d{6}" + _HY + r"\d{2}(?!\d)"
)
_LICENSE_WORD = re.compile("면허")
_PASSPORT_WORD = r"(?:여권|passport)"  # the patterns below ignore case: m12345678 too
_KR_PASSPORT = r"[MSRODG](?:\d{3}[A-Z]\d{4}|\d{8})"  # current (2021-) and older formats
# a few characters after the word: "여권번호: ", "여권번호는\n", "passport number is ", no digit
_PASSPORT_NEAR = re.compile(
    _PASSPORT_WORD + r"(?:[^\dA-Za-z.!?。]|number|no|is){0,12}?"
    r"(?<![A-Za-z0-9])(" + _KR_PASSPORT + r"|[A-Z]{2}\d{7})(?![\dA-Za-z])",
    re.IGNORECASE,
)
# right after "여권번호:" any passport's shape: 8-9 letters and digits, at least 4 digits
_PASSPORT_FIELD = re.compile(
    _PASSPORT_WORD + r"\s?(?:번호|No\.?|number)\s?[:：]?\s?"
    r"((?=(?:[A-Z]*\d){4})[A-Z0-9]{8,9})(?![\dA-Za-z])",
    re.IGNORECASE,
)


# -- finders: (start, end) of each value, on folded text ----------------------------------
def _emails(text: str) -> Iterator[tuple[int, int]]:
    for m in _EMAIL.finditer(text):
        yield m.span()


def _rrns(text: str) -> Iterator[tuple[int, int]]:
    for m in _RRN.finditer(text):
        front, sep, back = m.group(1).replace(" ", ""), m.group(2), m.group(3).replace(" ", "")
        if " " in m.group(1) + m.group(3) and "-" not in sep:
            continue  # spaced-out digits without the hyphen: a phone or a table row
        if back[0] not in _CENTURY or not _birth_date_exists(front, back[0]):
            continue
        yield m.span()


def _licenses(text: str) -> Iterator[tuple[int, int]]:
    for m in _LICENSE.finditer(text):
        if m.group(1) is not None:
            if m.group(1) not in _REGION_CODES:
                continue
            if m.group(2) == "" and not _near(_LICENSE_WORD, text, m.start()):
                continue  # twelve digits in a run: only next to the word
        yield m.span()


def _cards(text: str) -> Iterator[tuple[int, int]]:
    for m in _CARD.finditer(text):
        value = m.group(0)
        digits = re.sub(r"\D", "", value)
        if 13 <= len(digits) <= 19 and (_luhn(digits) or _CARD_GROUPED.fullmatch(value.strip())):
            yield m.span()


def _accounts(text: str) -> Iterator[tuple[int, int]]:
    for m in _ACCOUNT.finditer(text):
        yield m.span(1)


def _passports(text: str) -> Iterator[tuple[int, int]]:
    for pattern in (_PASSPORT_FIELD, _PASSPORT_NEAR):
        for m in pattern.finditer(text):
            yield m.span(1)


def _phones(text: str) -> Iterator[tuple[int, int]]:
    for m in _PHONE.finditer(text):
        value = m.group(0)
        if value.startswith("+") and not 8 <= len(re.sub(r"\D", "", value)) <= 15:
            continue  # E.164 numbers have at most 15 digits
        yield m.span()


#: In priority order: a span found earlier wins over an overlapping later one.
_FINDERS: tuple[tuple[str, Callable[[str], Iterator[tuple[int, int]]], bool], ...] = (
    ("email", _emails, False),
    ("rrn", _rrns, True),
    ("license", _licenses, True),
    ("card", _cards, True),
    ("account", _accounts, True),
    ("passport", _passports, True),
    ("phone", _phones, False),
)


def find(text: str) -> list[Span]:
    """``(start, end, kind)`` of every piece of personal data in ``text``, in order, no two
    overlapping."""
    folded = fold(text)
    taken: list[Span] = []
    for kind, finder, labelled in _FINDERS:
        for start, end in finder(folded):
            # trailing spaces a separator-tolerant pattern took belong to the text
            while end > start and folded[end - 1].isspace():
                end -= 1
            if labelled and labelled_not_personal(folded, start):
                continue
            if any(s < end and start < e for s, e, _ in taken):
                continue
            taken.append((start, end, kind))
    return sorted(taken)


def mask(text: str) -> tuple[str, Counter[str]]:
    """``text`` with personal data replaced by tags, and how many of each kind."""
    counts: Counter[str] = Counter()
    out, last = [], 0
    for start, end, kind in find(text):
        out += [text[last:start], TAGS[kind]]
        counts[kind] += 1
        last = end
    out.append(text[last:])
    return "".join(out), counts


#: The columns of an instruction row that carry text people wrote (links, models and ids do
#: not): what training and a published dataset show.
ROW_TEXT_COLUMNS = ("question", "answer", "passages")


def unmasked_in_row(row: dict[str, object]) -> Counter[str]:
    """Personal data :func:`find` still finds in a row's :data:`ROW_TEXT_COLUMNS` (tags are
    not matched): what masking missed, per kind. The card stage counts it for every row and
    ``seedtune publish`` refuses a dataset where it finds any."""
    found: Counter[str] = Counter()
    for column in ROW_TEXT_COLUMNS:
        value = row.get(column)
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                found.update(kind for _, _, kind in find(text))
    return found
