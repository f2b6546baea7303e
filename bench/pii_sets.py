"""Labelled Korean personal-data sets that the masker's author did not write, and how a
masker scores on them (used by ``bench_pii``; the data and its sources are in
``tests/data/pii/``, see its SOURCE.md).

- ``labelled_documents.jsonl``: 100 Korean documents (forms, logs, notices, posts) with
  every personal value labelled as written. Recall per kind is the share of labelled values
  gone from the masked text, over all values and over the *ordinary* written forms only
  (digits and the usual separators: no OCR letter swaps, no Hangul numerals, no values the
  document had already starred out). A masked region that overlaps no labelled value is a
  false positive: ``false_pos_identifier`` when it was masked as a number that identifies
  a person (registration, licence, passport, card, account number: every such region
  there is an order, invoice, serial, product or company number), ``masked_contact_
  unlabelled`` when it is a phone number or e-mail address the set counts as a business's
  (seedtune masks every one on purpose). Two documents (TC099, TC100) also write out the
  real values beside the labelled obfuscated ones ("원본 추정", "정규화 결과"): masking those
  shows as ``false_pos_identifier`` here though they are personal.
- ``presidio_kr.jsonl``: Presidio's Korean recognizer test cases, each a short text that is
  or is not a registration, passport or licence number. Scored as written, and with the
  word (여권번호, 운전면허번호) put before the passport and licence cases that lack it
  (recall only: after the word a string is claimed to be that number).
"""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "pii"
#: The set's type names for the kinds seedtune masks.
KINDS = {
    "주민등록번호": "rrn",
    "전화번호": "phone",
    "이메일": "email",
    "여권번호": "passport",
    "운전면허번호": "license",
    "계좌번호": "account",
    "카드번호": "card",
}
TAG_KIND = {
    "[주민등록번호]": "rrn",
    "[전화번호]": "phone",
    "[이메일]": "email",
    "[카드번호]": "card",
    "[계좌번호]": "account",
    "[운전면허번호]": "license",
    "[여권번호]": "passport",
}
CONTACT = ("phone", "email")
WORD_BEFORE = {"passport": "여권번호 ", "license": "운전면허번호 "}

Masker = Callable[[str], tuple[str, Any]]


def load(name: str) -> list[dict[str, Any]]:
    """The rows of ``tests/data/pii/<name>.jsonl``."""
    with open(DATA / f"{name}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def ordinary(kind: str, value: str) -> bool:
    """Whether ``value`` is written the ordinary way: ASCII digits (and, for e-mail and
    passports, letters) with the usual separators, not obfuscated, misread or starred."""
    value = unicodedata.normalize("NFKC", value)
    if kind == "email":
        return re.fullmatch(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", value) is not None
    if kind == "passport":
        return re.fullmatch(r"[A-Z]{1,2}\d{3}[A-Z]?\d{3,5}", value) is not None
    return (
        re.fullmatch(r"[\d\s().+\-·]+", value) is not None and re.search(r"\d \d \d", value) is None
    )


def _masked_regions(text: str, masked: str) -> list[tuple[int, int, str]]:
    """``(start, end, kind)`` in ``text`` of each region the masker replaced by a tag."""
    out = []
    matcher = difflib.SequenceMatcher(None, text, masked, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            continue
        tags = [TAG_KIND[t] for t in re.findall(r"\[[^\[\]]+\]", masked[b1:b2]) if t in TAG_KIND]
        out.append((a1, a2, tags[0] if tags else "?"))
    return out


def score_documents(masker: Masker) -> dict[str, Any]:
    """Recall per kind (all values, ordinary forms) and false positives on the 100
    labelled documents."""
    hit, total, plain_hit, plain_total = Counter(), Counter(), Counter(), Counter()
    false_pos, contact = Counter(), 0
    for doc in load("labelled_documents"):
        text = doc["text"]
        masked, _ = masker(text)
        for item in doc["pii"]:
            kind = KINDS.get(item["type"])
            if kind is None:
                continue
            gone = item["value"] not in masked
            total[kind] += 1
            hit[kind] += gone
            if ordinary(kind, item["value"]):
                plain_total[kind] += 1
                plain_hit[kind] += gone
        labelled = [
            m.span() for item in doc["pii"] for m in re.finditer(re.escape(item["value"]), text)
        ]
        for start, end, kind in _masked_regions(text, masked):
            if any(s < end and start < e for s, e in labelled):
                continue
            if kind in CONTACT:
                contact += 1
            else:
                false_pos[kind] += 1
    out: dict[str, Any] = {}
    for kind in KINDS.values():
        out[f"recall_{kind}"] = f"{hit[kind]}/{total[kind]}"
        out[f"recall_{kind}_ordinary"] = f"{plain_hit[kind]}/{plain_total[kind]}"
    out["recall_all"] = sum(hit.values()) / sum(total.values())
    out["recall_all_ordinary"] = sum(plain_hit.values()) / sum(plain_total.values())
    out["false_pos_identifier"] = sum(false_pos.values())
    out["masked_contact_unlabelled"] = contact
    return out


def score_presidio(masker: Masker) -> dict[str, Any]:
    """Per kind: personal cases masked and non-personal cases changed, as written and with
    the word before the passport and licence cases that lack it."""
    out: dict[str, Any] = {}
    for with_word in (False, True):
        hit, total, changed, negatives = Counter(), Counter(), Counter(), Counter()
        for case in load("presidio_kr"):
            kind, text = case["kind"], case["text"]
            if (
                with_word
                and kind in WORD_BEFORE
                and not re.search("여권|면허|passport", text, re.IGNORECASE)
            ):
                text = WORD_BEFORE[kind] + text
            masked, _ = masker(text)
            if case["personal"]:
                total[kind] += 1
                hit[kind] += masked != text
            elif not with_word:  # after the word a string is claimed to be the number
                negatives[kind] += 1
                changed[kind] += masked != text
        suffix = "_after_word" if with_word else ""
        kinds = ("passport", "license") if with_word else ("rrn", "passport", "license")
        for kind in kinds:
            out[f"presidio_recall_{kind}{suffix}"] = f"{hit[kind]}/{total[kind]}"
            if not with_word:
                out[f"presidio_false_pos_{kind}"] = f"{changed[kind]}/{negatives[kind]}"
    return out


def baseline_masker(commit: str) -> Masker | None:
    """The masker as it was at ``commit`` (read with git), to measure beside today's; None
    when git or that commit is not there (a copy without history)."""
    root = DATA.parents[2]
    try:
        source = subprocess.run(
            ["git", "-C", str(root), "show", f"{commit}:src/seedtune/core/pii.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    namespace: dict[str, Any] = {"__name__": "pii_baseline"}
    exec(compile(source, f"pii.py@{commit}", "exec"), namespace)  # noqa: S102 - our own file
    return namespace["mask"]
