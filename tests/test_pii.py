"""Personal data masking (seedtune.core.pii) on the forms real Korean text writes, and on
labelled sets its author did not write (tests/data/pii/, sources in its SOURCE.md): a
100-document labelled Korean set and Presidio's Korean recognizer tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import ROOT

from seedtune.core.pii import TAGS, find, fold, labelled_not_personal, mask

DATA = ROOT / "tests" / "data" / "pii"


def _rows(name: str) -> list[dict]:
    with open(DATA / f"{name}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


DOCS = {d["id"]: d for d in _rows("labelled_documents")}
PRESIDIO = _rows("presidio_kr")
KINDS = {
    "주민등록번호": "rrn",
    "전화번호": "phone",
    "이메일": "email",
    "여권번호": "passport",
    "운전면허번호": "license",
    "계좌번호": "account",
    "카드번호": "card",
}


@pytest.mark.parametrize(
    "text,value,kind",
    [
        # passports: the current format (2021-) and the older one, a few characters after 여권
        ("여권번호는 M123A4567 입니다", "M123A4567", "passport"),
        ("분실된 여권번호는\nM87654321이며", "M87654321", "passport"),
        ("구 여권번호 RP5432109도 말소", "RP5432109", "passport"),
        ("My passport number is M123A4567", "M123A4567", "passport"),
        ("여권번호: 567890123 (미국)", "567890123", "passport"),
        # driver's licences: any separator or none (then only next to 면허)
        ("운전면허번호 112212345612", "112212345612", "license"),
        ("면허번호 28 22 123456 12", "28 22 123456 12", "license"),
        ("운전면허: 13-07-654321-58", "13-07-654321-58", "license"),
        # phones: middle dots, dots, spaces, +82 and other international forms
        ("통역 김나래 (연락처: 010·8901·2345)", "010·8901·2345", "phone"),
        ("임시번호: 010.2345.6789", "010.2345.6789", "phone"),
        ("휴대폰: +82-10-2345-6789", "+82-10-2345-6789", "phone"),
        ("사무실: +82-2-3456-7890", "+82-2-3456-7890", "phone"),
        ("미국 휴대폰: +1-202-555-0123", "+1-202-555-0123", "phone"),
        ("미국 번호: (202) 555-0147", "(202) 555-0147", "phone"),
        # e-mails written to dodge scrapers
        ("이메일: macbook.seller[at]gmail[dot]com", "macbook.seller[at]gmail[dot]com", "email"),
        ("macbook.seller 골뱅이 gmail 닷 com 으로", "macbook.seller 골뱅이 gmail 닷 com", "email"),
        ("보조 메일: sell_mac (at) naver . com", "sell_mac (at) naver . com", "email"),
        ("hong . gildong @ naver . com 이렇게", "hong . gildong @ naver . com", "email"),
        ("mseller(a)daum.net 으로도", "mseller(a)daum.net", "email"),
        # full-width forms, Greek look-alike letters, numbers spelled in Hangul, OCR spacing
        ("０１０－１２３４－５６７８ 로 연락", "０１０－１２３４－５６７８", "phone"),
        (
            "ｔｅｓｔｕｓｅｒ＠ｇｍａｉｌ．ｃｏｍ 메일",
            "ｔｅｓｔｕｓｅｒ＠ｇｍａｉｌ．ｃｏｍ",
            "email",
        ),
        ("여권번호: Μ１２３４５６７８", "Μ１２３４５６７８", "passport"),
        ("전화번호는 공일공-일이삼사-오육칠팔", "공일공-일이삼사-오육칠팔", "phone"),
        ("주민번호 8 5 0 3 1 5 - 1 2 3 4 5 6 7", "8 5 0 3 1 5 - 1 2 3 4 5 6 7", "rrn"),
        ("주민등록번호: 88 07 15 - 1234567", "88 07 15 - 1234567", "rrn"),
    ],
)
def test_written_forms_are_masked(text: str, value: str, kind: str) -> None:
    masked, found = mask(text)
    assert value not in masked and found == {kind: 1}, masked
    assert TAGS[kind] in masked


@pytest.mark.parametrize(
    "text",
    [
        # order, invoice and serial numbers shaped like registration or licence numbers
        "주문번호: 240422-1000234 / 송장번호: 951023-3847561 / 상태: 배송완료",
        "시리얼: 12-34-567890-12",
        "제품코드: 44-55-667788-99",
        "S12-34-567890-12 유통코드",
        "법인등록번호: 110111-0234567",
        "사업자등록번호: 214-87-45231",
        "바코드 번호: 8801234567890",
        "P850315-2K4R7 블루투스 스피커",
        "930101-PROD-V2",
        # not a licence region, not a date, not a Korean passport without the word
        "99-22-123456-12",
        "001332-1234567",
        "960121+1021413",
        "모델명 M123A4567 보일러",
        # versions, IPs, dates, business numbers, SNS handles
        "버전 4.2.1.3892, 빌드번호 10.3.48.1024",
        "서버 192.168.1.105:8080",
        "기간: 2024.06.01 ~ 2024.06.30",
        "고객센터 1588-1234, ARS 1544-5678",
        "인스타그램 @koreabeauty_official: 팔로워 12.5만",
        "5.5억 집을 매수하고 싶은데 3.3㎡당 분양가는",
    ],
)
def test_look_alikes_stay(text: str) -> None:
    assert mask(text) == (text, {})


def test_a_personal_word_after_a_label_wins() -> None:
    text = "주문번호 없음, 주민번호 900101-1234567"
    assert mask(text)[0] == "주문번호 없음, 주민번호 [주민등록번호]"
    assert labelled_not_personal("주문번호: 240422-1000234", len("주문번호: "))
    assert not labelled_not_personal("주문자 주민번호 900101-1234567", len("주문자 주민번호 "))


def test_spans_found_on_folded_text_point_into_the_original() -> None:
    text = "연락 ０１０·１２３４·５６７８ 또는 kim＠naver．com 끝"
    assert len(fold(text)) == len(text)
    spans = find(text)
    assert [(text[s:e], kind) for s, e, kind in spans] == [
        ("０１０·１２３４·５６７８", "phone"),
        ("kim＠naver．com", "email"),
    ]
    assert mask(text)[0] == "연락 [전화번호] 또는 [이메일] 끝"


@pytest.mark.parametrize(
    "doc_id", ["TC031", "TC033", "TC035", "TC037", "TC045", "TC060", "TC063", "TC070", "TC079"]
)
def test_labelled_documents_lose_every_value_of_the_kinds_masked(doc_id: str) -> None:
    """Documents of the labelled set whose values are all in forms seedtune masks: none of
    them is left in the masked text."""
    doc = DOCS[doc_id]
    masked, _ = mask(doc["text"])
    values = [p["value"] for p in doc["pii"] if p["type"] in KINDS]
    assert values and [v for v in values if v in masked] == []


@pytest.mark.parametrize("doc_id", ["TC028", "TC038", "TC069", "TC092", "TC097"])
def test_labelled_look_alike_documents_keep_their_identifiers(doc_id: str) -> None:
    """Order, invoice, serial, product and company numbers shaped like personal ones: no
    registration, licence, passport, card or account tag where the set labels nothing."""
    doc = DOCS[doc_id]
    masked, found = mask(doc["text"])
    labelled = {KINDS[p["type"]] for p in doc["pii"] if p["type"] in KINDS}
    identifiers = {k for k in found if k not in ("phone", "email")}
    assert identifiers <= labelled, masked


def test_presidio_registration_numbers_and_their_look_alikes() -> None:
    """Presidio's Korean RRN/FRN cases: every number masked, every malformed one left."""
    cases = [c for c in PRESIDIO if c["kind"] == "rrn"]
    assert len(cases) == 36
    wrong = [c["text"] for c in cases if (mask(c["text"])[0] != c["text"]) != c["personal"]]
    assert wrong == []


@pytest.mark.parametrize("kind,word", [("passport", "여권번호 "), ("license", "운전면허번호 ")])
def test_presidio_passports_and_licences_next_to_their_word(kind: str, word: str) -> None:
    cases = [c for c in PRESIDIO if c["kind"] == kind]
    for c in cases:
        text = c["text"]
        masked, found = mask(text if "여권" in text or "passport" in text.lower() else word + text)
        if c["personal"]:
            assert found.get(kind), masked
    # alone, malformed ones are never masked (and the well-formed ones only in groups)
    assert [c["text"] for c in cases if not c["personal"] and mask(c["text"])[1]] == []


def test_the_data_keeps_its_source(tmp_path: Path) -> None:
    source = (DATA / "SOURCE.md").read_text(encoding="utf-8")
    assert "gkswns0531/pii-detection-test" in source and "microsoft/presidio" in source
    assert len(DOCS) == 100
