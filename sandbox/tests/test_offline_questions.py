"""The simulator's questions for the shipped queries prompt: about the seed word, in the
forms the prompt asks for, never about the prompt's own form hints."""

from __future__ import annotations

import json

import pytest
from seedtune_sandbox.sim import openai_api
from support import ROOT

from seedtune.core.records import read_lines
from seedtune.tasks.queries import FORMS, QuestionList, template

SEEDS = list(dict.fromkeys(read_lines(ROOT / "data" / "seed_words.txt")))
HINTS = ("~알려 주세요", "~설명해 주세요", "~인가요")


def _questions(seed: str, forms: str, n: int = 4) -> list[str]:
    body = {
        "model": "sim-gpt",
        "messages": template().render(seed=seed, n=n, forms=forms),
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "QuestionList", "schema": QuestionList.model_json_schema()},
        },
    }
    content = openai_api.chat_completion(body)["choices"][0]["message"]["content"]
    return json.loads(content)["questions"]


@pytest.mark.parametrize("mix", sorted(FORMS))
def test_every_question_is_about_its_seed_word_not_a_form_hint(mix: tuple[str, ...]) -> None:
    assert len(SEEDS) >= 40  # the shipped list, Latin acronyms (LTV, DSR) among them
    for seed in SEEDS:
        for q in _questions(seed, FORMS[mix]):
            assert seed in q, (seed, q)
            assert "~" not in q and not any(h.lstrip("~") in q[:8] for h in HINTS), (seed, q)


def test_questions_come_in_the_forms_the_prompt_asks_for() -> None:
    def requests(mix: tuple[str, ...]) -> list[str]:
        return [q for seed in SEEDS[:10] for q in _questions(seed, FORMS[mix])]

    assert all(q.endswith("?") for q in requests(("question",)))
    instructions = requests(("instruction",))
    assert all(q.endswith(("알려 주세요.", "설명해 주세요.")) for q in instructions)
    both = requests(("instruction", "question"))
    asked = sum(q.endswith("?") for q in both)
    assert 0.3 * len(both) <= asked <= 0.7 * len(both)  # a mix of both forms
