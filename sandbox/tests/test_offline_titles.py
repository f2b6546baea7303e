"""The simulator's forum titles and its answer to the titles prompt, over HTTP.

Search side: Naver Search API docs (developers.naver.com, 검색 > 카페글 / 지식iN): cafearticle
items have title, link, description, cafename, cafeurl; kin items title, link, description;
query words in ``<b>`` and HTML entities in the title. The titles look like real forum titles
(the tutorial's ``questions_cafe.json``, a real-estate Naver cafe's, as in
tests/data/questions/tutorial_sample.jsonl): bracketed prefixes, emoticons and ``ㅠㅠ``,
ellipses, ``??``/``!!``, prices, all-caps Latin, ``A vs B``, and ads, notices, chit-chat,
political and personal posts among them.

LLM side: OpenAI structured outputs (``response_format`` ``json_schema``, strict): the answer
to seedtune's titles prompt validates against ``TitleVerdicts``, one verdict per numbered
title, in order.
"""

from __future__ import annotations

import html
import json
import random
import re
from typing import Any

import openai
import pytest
import requests
from seedtune_sandbox.demo import SIM_ENV
from seedtune_sandbox.sim import SimServer, forum, titles
from support import ROOT

from seedtune.llm.client import response_format
from seedtune.retrieval.documents import clean_text
from seedtune.tasks.titles import FORMS, TitleVerdicts, template

HEADERS = {
    "X-Naver-Client-Id": SIM_ENV["NAVER_CLIENT_ID"],
    "X-Naver-Client-Secret": SIM_ENV["NAVER_CLIENT_SECRET"],
}
SEEDS = ("전세", "청약", "재건축", "주택담보대출")

PREFIX = re.compile(r"^\s*[\[(]|^\S{1,4}\)")
EMOTICON = re.compile(r"ㅠ|ㅜ|\^\^|ㅎㅎ|ㅋㅋ|;;|[\U0001F300-\U0001FAFF]")
ELLIPSIS = re.compile(r"\.\.|…")
REPEATED = re.compile(r"\?\?|!!|\?!")
PRICE = re.compile(r"\d+(?:\.\d+)?\s*(?:억|평|㎡|%)")
LATIN = re.compile(r"(?<![A-Za-z])[A-Z]{2,}")
ADS = re.compile(r"광고|공지")
POLITICAL = re.compile(
    r"좌파|우파|민주당|국민의힘|선거|탄핵|정치인|수꼴|조선족|19금"
    r"|(?:전라|경상|충청)도 사람"
)
PERSONAL = re.compile(r"제 경우|제 상황|저희|저는|남편|와이프|퇴직|육아휴직|미혼|외벌이")


def _items(sim: SimServer, category: str, query: str, **params: Any) -> list[dict[str, str]]:
    r = requests.get(
        f"{sim.naver_base_url}/v1/search/{category}.json",
        params={"query": query, "display": 100, **params},
        headers=HEADERS,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()["items"]


def _share(pattern: re.Pattern[str], texts: list[str]) -> float:
    return sum(1 for t in texts if pattern.search(t)) / len(texts)


@pytest.mark.parametrize("category", ["cafearticle", "kin"])
def test_forum_titles_look_real_and_keep_the_api(sim: SimServer, category: str) -> None:
    by_seed = {seed: _items(sim, category, seed) for seed in SEEDS}
    raw = [it for items in by_seed.values() for it in items]
    fields = {"title", "link", "description"} | (
        {"cafename", "cafeurl"} if category == "cafearticle" else set()
    )
    assert all(set(it) == fields for it in raw)
    plain = [clean_text(it["title"]) for it in raw]
    assert len(plain) >= 200
    shares = {
        name: _share(rx, plain)
        for name, rx in (
            ("prefix", PREFIX),
            ("emoticon", EMOTICON),
            ("ellipsis", ELLIPSIS),
            ("repeated", REPEATED),
            ("price", PRICE),
            ("latin", LATIN),
            ("vs", re.compile(" vs ")),
            ("political", POLITICAL),
            ("personal", PERSONAL),
        )
    }
    floor = {
        "prefix": 0.05 if category == "cafearticle" else 0.03,
        "emoticon": 0.04,
        "ellipsis": 0.04,
        "repeated": 0.04,
        "price": 0.08,
        "latin": 0.04,
        "vs": 0.02,
        "political": 0.01,
        "personal": 0.04,
    }
    assert all(shares[k] >= v for k, v in floor.items()), shares
    assert shares["prefix"] < 0.5 and shares["emoticon"] < 0.4  # most titles are plain
    if category == "cafearticle":
        assert _share(ADS, plain) >= 0.03  # ads and cafe notices
    # the query words are highlighted in most titles; entities and tags are Naver's
    for seed, items in by_seed.items():
        mine = [it["title"] for it in items if seed in clean_text(it["title"])]
        assert len(mine) >= 0.7 * len(items)
        assert all(f"<b>{seed}</b>" in t for t in mine)
    assert all("<" not in re.sub(r"</?b>", "", it["title"]) for it in raw)
    assert any("&quot;" in it["title"] or "&#39;" in it["title"] for it in raw)
    # deterministic per (category, query, rank), also in a fresh simulator
    assert _items(sim, category, SEEDS[0]) == by_seed[SEEDS[0]]
    with SimServer(sim.config) as other:  # the links name the page servers' own ports
        assert [it["title"] for it in _items(other, category, SEEDS[0])] == [
            it["title"] for it in by_seed[SEEDS[0]]
        ]
    # blog titles are no forum titles
    blog = [clean_text(it["title"]) for it in _items(sim, "blog", SEEDS[0])]
    assert _share(EMOTICON, blog) == 0


def test_generated_kind_shows_in_the_words() -> None:
    """What the generator wrote a title as is what the judge reads from its text alone."""
    expect = {
        "question": None,
        "personal": "personal",
        "vague": "not_answerable",
        "off_topic": "off_topic",
        "unsafe": "unsafe",
    }
    for seed in ("전세", "LTV", "임장", "전세보증보험 가입 조건은 무엇인가요?"):
        seeds = titles.seeds_of(f'아래는 "{seed}"(으)로 검색한 제목입니다.')
        for category in forum.CATEGORIES:
            kinds = set()
            for i in range(400):
                kind, title = forum.generate(random.Random(i), category, seed)
                kinds.add(kind)
                question, drop = titles.verdict(title, "question", random.Random(i), seeds)
                assert drop == expect[kind], (kind, title, question)
            assert kinds == set(expect)


def _prompt(seed: str, lines: list[str], forms: tuple[str, ...]) -> list[dict[str, str]]:
    numbered = "\n".join(f"{i}. {t}" for i, t in enumerate(lines, start=1))
    return template().render(seed=seed, n=len(lines), titles=numbered, forms=FORMS[forms])


def _ask(
    sim: SimServer, messages: list[dict[str, str]], model: str = "gpt-4o-mini"
) -> tuple[str, TitleVerdicts]:
    client = openai.OpenAI(
        base_url=sim.openai_base_url, api_key=SIM_ENV["OPENAI_API_KEY"], max_retries=0, timeout=10
    )
    done = client.chat.completions.create(
        model=model,
        messages=messages,  # type: ignore[arg-type]
        response_format=response_format(TitleVerdicts, model.startswith("ft:")),  # type: ignore[arg-type]
        temperature=0.2,
    )
    assert done.choices[0].finish_reason == "stop"
    content = done.choices[0].message.content or ""
    return content, TitleVerdicts.model_validate(json.loads(content))


KNOWN = [
    ("[급질] 5.5억 LTV 70%면 전세 대출 한도 얼마나 나오나요?? ㅠㅠ", None),
    ("좌파들이 전세 시장 다 망쳐 놨네요", "unsafe"),
    ("[광고] 전세 대출 최저금리 비교 무료 상담 ☎ [전화번호]", "off_topic"),
    ("[공지] 게시판 운영 가이드 (2026.9.3 수정)", "off_topic"),
    ("오늘 점심 다들 뭐 드셨어요 ㅎㅎ", "off_topic"),
    ("제 경우 전세 갈아타는 게 맞을까요? ㅜㅜ", "personal"),
    ("50대 초반인데 퇴직하고 전세 놓고 지방 가도 될까요..", "personal"),
    ("매도 하려고 하는데요", "not_answerable"),
    ("아마추어 ? 라고요 ?", "not_answerable"),
    ("ì „ì„¸ ëŒ€ì¶œ ì§ˆë¬¸", "not_answerable"),
    ("헬리오시티 34평 vs 잠실엘스 33평 🥳", None),
    ("(급질)목동 신시가지 7단지 전세 12-13억이면 싼 건가요...", None),
    ("[질문]GTX-A 개통되면 동탄 전세 오를까요?!", None),
]


@pytest.mark.parametrize("forms", [("question",), ("instruction",), ("instruction", "question")])
def test_titles_prompt_answered_per_index(sim: SimServer, forms: tuple[str, ...]) -> None:
    searched = [clean_text(it["title"]) for it in _items(sim, "cafearticle", "전세")[:20]]
    lines = [t for t, _ in KNOWN] + searched
    content, verdicts = _ask(sim, _prompt("전세", lines, forms))
    items = verdicts.items
    assert [v.index for v in items] == list(range(1, len(lines) + 1))
    assert all((v.question is None) != (v.drop is None) for v in items)
    for (title, drop), v in zip(KNOWN, items, strict=False):
        assert v.drop == drop, (title, v)
    kept = [(t, v.question) for t, v in zip(lines, items, strict=True) if v.question]
    assert len(kept) >= 0.4 * len(lines)
    for title, q in kept:
        assert q != title  # rewritten, as an LLM does, never the title word for word
        assert not re.match(r"\s*[\[(]", q) and not re.search(r"[ㄱ-ㅎㅏ-ㅣ]", q), q
        assert not re.search(r"\.\.|\?\?|!|[\U0001F300-\U0001FAFF]|\[전화번호\]", q), q
        assert all(n in q for n in re.findall(r"\d+(?:\.\d+)?(?:억|평|%)", title)), (title, q)
        assert all(a in q for a in LATIN.findall(title) if a != "Q"), (title, q)
    ends = {
        "?" if q.endswith("?") else "instruction" if q.endswith("주세요.") else q for _, q in kept
    }
    assert ends == (
        {"?"}
        if forms == ("question",)
        else {"instruction"}
        if forms == ("instruction",)
        else {"?", "instruction"}
    )
    first = items[0].question or ""
    assert "5.5억" in first and "LTV 70%" in first and "전세 대출" in first
    assert "헬리오시티 34평" in (items[10].question or "")
    assert _ask(sim, _prompt("전세", lines, forms))[0] == content  # deterministic


def test_titles_schema_shapes_and_tutorial_titles(sim: SimServer) -> None:
    """Fine-tuned models get the schema without bounds; real titles (the tutorial's) are
    answered too, every one once; a prompt with no numbered title still gets a valid answer."""
    sample = ROOT / "tests" / "data" / "questions" / "tutorial_sample.jsonl"
    rows = [json.loads(line) for line in sample.read_text("utf-8").splitlines() if line]
    real = [html.unescape(r["text"]) for r in rows if r["source"] == "questions_cafe.json"][:60]
    for start in range(0, len(real), 20):
        chunk = real[start : start + 20]
        _, verdicts = _ask(
            sim,
            _prompt("부동산", chunk, ("instruction", "question")),
            model="ft:gpt-4o-mini:seedtune::abc",
        )
        assert [v.index for v in verdicts.items] == list(range(1, len(chunk) + 1))
    nothing = "<참고자료>\n</참고자료>\n제목을 판단하세요."
    _, empty = _ask(sim, [{"role": "user", "content": nothing}])
    assert [(v.index, v.drop) for v in empty.items] == [(1, "not_answerable")]
    assert titles.is_titles_schema(response_format(TitleVerdicts)["json_schema"]["schema"])
    assert not titles.is_titles_schema(
        {
            "type": "object",
            "properties": {"questions": {"type": "array", "items": {"type": "string"}}},
        }
    )
