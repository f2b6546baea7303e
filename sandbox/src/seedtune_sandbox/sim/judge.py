"""The simulator's reference judge: prefers the answer that is non-empty, longer and shares
more words with the reference answer, deterministically.

A stand-in for an LLM judge (MT-Bench-style pairwise verdicts and 1-10 scores) that has the
biases real judges are documented to have toward longer, reference-like answers, so that
the tuned model's win rate moves in ``make demo``. It reads the prompt's sections the way
seedtune's judge and score templates write them (``[답변 A]``, ``[답변 B]``, ``[답변]``,
``[참고 답변]``).
"""

from __future__ import annotations

import re
from typing import Any

_SECTION = re.compile(r"^\[([^\]\n]+)\]\s*$", re.MULTILINE)
_WORD = re.compile(r"[0-9A-Za-z가-힣]+")
_EMPTY = ("", "(빈 답변)", "(참고 답변 없음)")
#: Quality differences below this are a tie.
TIE = 0.02


def sections(prompt: str) -> dict[str, str]:
    """``{heading: text}`` of the ``[heading]`` sections of a prompt."""
    parts = _SECTION.split(prompt)
    return {
        parts[i].strip(): parts[i + 1].strip().split("\n\n")[0].strip()
        for i in range(1, len(parts) - 1, 2)
    }


def quality(answer: str, reference: str) -> float:
    """0 for an empty answer; else word overlap with the reference (or its length alone when
    there is no reference) and length, in [0, 1]."""
    if answer.strip() in _EMPTY:
        return 0.0
    words = set(_WORD.findall(answer))
    length = min(len(answer), 400) / 400
    ref = set(_WORD.findall(reference)) if reference.strip() not in _EMPTY else set()
    if not ref:
        return 0.2 + 0.8 * length
    return 0.2 + 0.5 * len(words & ref) / len(ref) + 0.3 * length


def judge(prompt: str, value: dict[str, Any]) -> dict[str, Any]:
    """``value`` (a generated verdict or score) with the verdict or score a reference-minded
    judge would give; other answers are returned as they are."""
    found = sections(prompt)
    reference = found.get("참고 답변", "")
    if "verdict" in value and "답변 A" in found and "답변 B" in found:
        qa, qb = quality(found["답변 A"], reference), quality(found["답변 B"], reference)
        verdict = "tie" if abs(qa - qb) < TIE else "A" if qa > qb else "B"
        return {**value, "verdict": verdict}
    if "score" in value and "답변" in found:
        return {**value, "score": max(1, min(10, 1 + round(9 * quality(found["답변"], reference))))}
    return value
