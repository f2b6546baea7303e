"""card stage: the dataset card (metadata the Hub parses, fields that match the data, counts)
and the self-contained browser page (no external loads, everything escaped), run as DVC
runs it."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest
import yaml
from support import Workspace

from seedtune.synthesis.browse import render_html, safe_link
from seedtune.synthesis.card import (
    CardInputs,
    dataset_statistics,
    host,
    lengths,
    render_card,
    size_category,
)

INJECTION = '</script><script>alert(1)</script><img src=x onerror="alert(2)"> & "인용"'
#: A real person's post title, as hostile as a title can be.
HOSTILE_TITLE = '전세 사기 </script><b>급해요</b> "제발"'
POST_LINK = "https://cafe.naver.com/realestate/123?art=x&page=1"


def instruction_rows() -> list[dict[str, Any]]:
    """Rows as synthesize writes them after the crawl change: 6 rows, 5 train, 1 eval; three
    LLM questions, one of the user's, two from post titles (the eval one's link is
    ``javascript:``)."""
    rows = []
    for i in range(6):
        source = "llm" if i < 3 else "user" if i == 3 else "titles"
        rows.append(
            {
                "question": f"전세 계약 {i}번째 주의할 점은 무엇인가요?",
                "answer": f"전세 계약 전에는 등기부등본으로 근저당을 확인해야 합니다 {i}.",
                "sources": [
                    f"https://www.blog.example.com/post/{i}",
                    "https://news.example.kr/a/1",
                    f"https://kin.naver.com/qna/{i % 2}",
                ],
                "passages": [f"등기부등본 확인 {i}", "뉴스 본문", "지식인 답변"],
                "source_categories": ["blog", "news", "kin"],
                "source_kinds": ["page", "page" if i % 2 else "snippet", "snippet"],
                "question_source": source,
                "seed": None if source == "user" else "전세",
                "post_title": None,
                "post_link": None,
                "post_category": None,
                "model": "gpt-4o-mini",
                "template": "abc123",
                "split": "eval" if i == 5 else "train",
            }
        )
    rows[4].update(post_title=HOSTILE_TITLE, post_link=POST_LINK, post_category="cafearticle")
    rows[5].update(
        post_title="지식인 글 제목", post_link="javascript:alert(4)", post_category="kin"
    )
    rows[0]["answer"] = "전세 계약 전에는 확인하세요. " + INJECTION
    rows[1]["sources"][0] = "javascript:alert(3)"
    rows[2]["source_kinds"] = ["page", "page", "page"]
    return rows


def rejects() -> dict[str, list[dict[str, Any]]]:
    reasons = [f"answer shorter than synthesize.min_chars={i}" for i in range(12)]
    synth = [{"question": f"q{i}", "reason": r} for i, r in enumerate(reasons)]
    synth += [{"question": "qx", "reason": "empty answer"}] * 3
    titles = [
        {
            "title": "<i>이 글</i> 광고입니다",
            "link": "https://cafe.naver.com/ad/9",
            "category": "cafearticle",
            "seed": "전세",
            "reason": "off_topic",
        },
        {
            "title": "내 번호로 연락 주세요",
            "link": "javascript:alert(5)",
            "category": "kin",
            "seed": "전세",
            "reason": "personal",
        },
    ]
    return {
        "queries": [{"question": "짧음", "reason": "question too short"}] * 2 + titles,
        "crawl": [{"link": "https://x/1", "reason": "http_404"}],
        "synthesize": synth,
    }


METRICS = {
    "search": {"questions": 6, "documents": 40, "pii_masked": {"phone": 3, "email": 1}},
    "crawl": {
        "pages": {"ok": 10, "http_404": 2, "robots": 1},
        "pii_masked": {"phone": 2, "rrn": 1},
    },
    "synthesize": {
        "questions": 21,
        "answers": 6,
        "rejects": 15,
        "train": 5,
        "eval": 1,
        "pii_masked": {"email": 1},
    },
}
PARAMS = {
    "llm": {"model": "gpt-4o-mini"},
    "rank": {"model": "intfloat/multilingual-e5-small"},
    "search": {"categories": ["blog", "news", "kin"]},
}


def _workspace(ws: Workspace) -> Workspace:
    ws.write("params.yaml", yaml.safe_dump(PARAMS))
    ws.write("data/instructions.jsonl", instruction_rows())
    for stage, rows in rejects().items():
        ws.write(f"data/rejects/{stage}.jsonl", rows)
    for stage, values in METRICS.items():
        ws.write(f"metrics/{stage}.json", json.dumps(values))
    return ws


def _front_matter(card: str) -> dict[str, Any]:
    match = re.match(r"---\n(.*?)\n---\n", card, re.S)
    assert match, card[:200]
    return yaml.safe_load(match.group(1))


# --------------------------------------------------------------------------- statistics


def test_statistics_count_categories_hosts_kinds_pii_and_rejects() -> None:
    inputs = CardInputs(instruction_rows(), rejects(), METRICS, PARAMS)
    s = dataset_statistics(inputs)
    assert s["rows"] == 6 and s["splits"] == {"eval": 1, "train": 5}
    assert s["categories"] == [("blog", 6, 6), ("kin", 6, 2), ("news", 6, 1)]
    hosts = dict((h, (n, u)) for h, n, u in s["hosts"])
    assert hosts["blog.example.com"] == (5, 5) and hosts["kin.naver.com"] == (6, 2)
    assert hosts["(no host)"] == (1, 1)  # the javascript: link
    # kinds: page 6 + (odd rows 1,3,5 -> page) 3 + row 2 two more pages
    assert s["kinds"] == {"page": 11, "snippet": 7}
    assert s["pages_share"] == round(11 / 18, 4)
    assert s["grounding"] == {"pages and snippets": 5, "pages only": 1}
    assert s["pii"] == {
        "email": {"search": 1, "synthesize": 1},
        "phone": {"search": 3, "crawl": 2},
        "rrn": {"crawl": 1},
    }
    synth = s["rejects"]["synthesize"]
    assert synth["total"] == 15 and synth["reasons"][0] == ("empty answer", 3)
    assert len(synth["reasons"]) == 10 and synth["other"] == 3 and synth["other_reasons"] == 3


def test_helpers() -> None:
    assert host("https://WWW.Example.com/x") == "example.com"
    # another port is another site (the simulator's page hosts are loopback ports)
    assert host("https://WWW.Example.com:8080/x") == "example.com:8080"
    assert host("https://example.com:443/x") == "example.com"
    assert host("not a link") == "(no host)"
    assert lengths([5, 1, 3, 2, 4, 6, 7, 8, 9, 10]) == {
        "min": 1,
        "median": 5.5,
        "p90": 9,
        "max": 10,
    }
    assert lengths([])["median"] is None
    assert [size_category(n) for n in (0, 999, 1000, 54_321, 2_000_000)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "10K<n<100K",
        "1M<n<10M",
    ]
    assert (
        safe_link("javascript:alert(1)") is None and safe_link("https://a.kr/x") == "https://a.kr/x"
    )


def test_card_tolerates_missing_keys_and_files() -> None:
    inputs = CardInputs([{"question": "질문?"}, {"answer": "답"}, {}])
    card = render_card(inputs, dataset_statistics(inputs))
    assert _front_matter(card)["size_categories"] == ["n<1K"]
    assert "(no rejects files)" in card
    page = render_html(inputs.rows, {})
    data = page.split('id="rows-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(data) == [
        ["질문?", "", "", "", 0, ""],
        ["", "답", "", "", 0, ""],
        ["", "", "", "", 0, ""],
    ]


# --------------------------------------------------------------------------- stage


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


@pytest.fixture()
def built(workspace: Workspace) -> Workspace:
    ws = _workspace(workspace)
    proc = ws.run("card")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return ws


def test_card_metadata_parses_and_sections_carry_the_numbers(built: Workspace) -> None:
    card = (built.path / "data/instructions.md").read_text(encoding="utf-8")
    meta = _front_matter(card)
    assert meta["language"] == ["ko"] and meta["license"] == "other"
    assert meta["license_name"] and "authors" in meta["license_details"]
    assert meta["task_categories"] == ["text-generation"] and meta["tags"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["configs"] == [
        {
            "config_name": "default",
            "data_files": [{"split": "train", "path": "data/instructions.jsonl"}],
        }
    ]
    from huggingface_hub import DatasetCard

    hub = DatasetCard(card).data.to_dict()
    assert hub["license"] == "other" and hub["language"] == ["ko"]
    assert 'filter(lambda r: r["split"] == "train")' in card
    assert "| blog | 6 | 6 |" in card and "| kin.naver.com | 6 | 2 |" in card
    assert "| phone | [전화번호] | 3 | 2 | 0 | 5 |" in card  # search, crawl, synthesize
    assert "| email | [이메일] | 1 | 0 | 1 | 2 |" in card
    assert "| empty answer | 3 |" in card and "| other (3 reasons) | 3 |" in card
    assert "| question too short | 2 |" in card and "| http_404 | 1 |" in card
    assert "| robots | 1 |" in card  # crawl's fetch outcomes, whatever they are
    assert "| gpt-4o-mini | 6 |" in card and "intfloat/multilingual-e5-small" in card
    assert "belongs to its authors" in card and "terms" in card and "masked" in card
    assert "<script>" not in card  # the example row is in a code fence, tables escape
    assert built.metrics("card") == {
        "rows": 6,
        "train": 5,
        "eval": 1,
        "sources": {"llm": 3, "titles": 2, "user": 1},
        "unique_links": 9,
        "hosts": 4,
        "pages_share": 0.6111,
        "rejects": 20,
        "pii_unmasked": {},
    }
    assert (
        "Left unmasked in the rows (a scan of every text field after masking): none found." in card
    )


def test_card_counts_rows_per_source_and_shows_a_titles_example(built: Workspace) -> None:
    card = (built.path / "data/instructions.md").read_text(encoding="utf-8")
    stats = card.split("### Question sources\n", 1)[1].split("\n### ", 1)[0]
    assert "| source | rows | share | eval |" in stats
    assert "| llm | 3 | 50.0% | 0 |" in stats and "| titles | 2 | 33.3% | 1 |" in stats
    assert "| user | 1 | 16.7% | 0 |" in stats
    assert "| cafearticle | 1 | 50.0% |" in stats and "| kin | 1 | 50.0% |" in stats
    made = card.split("## How it was made\n", 1)[1].split("\n2. ", 1)[0]
    assert "for each seed word" in made and "지식iN post titles" in made
    for dropped in ("off-topic", "unanswerable", "unsafe", "personal"):
        assert dropped in made
    assert "question files" in made
    # the example is the titles train row: its post's title (escaped) and link
    example = card.split("An example row", 1)[1].split("## Statistics", 1)[0]
    assert (
        '"question_source": "titles"' in example
        and f'"post_link": "{POST_LINK}"' in example.replace("\\u0026", "&")
    )
    assert '"post_title": "전세 사기 \\u003c/script\\u003e\\u003cb\\u003e급해요' in example
    assert "<b>" not in card and "</script>" not in card
    section = card.split("## Fields\n", 1)[1].split("\n## ", 1)[0]
    for column in ("question_source", "seed", "post_title", "post_link", "post_category"):
        assert re.search(rf"^\| {column} \| [\w|]+ \| \S", section, re.M), column


def test_card_fields_match_the_columns_datasets_loads(built: Workspace, tmp_path) -> None:
    import datasets

    rows = datasets.load_dataset(
        "json",
        data_files=str(built.path / "data/instructions.jsonl"),
        split="train",
        cache_dir=str(tmp_path / "hf"),
    )
    card = (built.path / "data/instructions.md").read_text(encoding="utf-8")
    section = card.split("## Fields\n", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| (\w+) \| ", section, re.M)
    assert documented[0] == "field"
    assert documented[1:] == rows.column_names
    assert "not described" not in section
    assert len(rows.filter(lambda r: r["split"] == "train")) == 5


def _page(built: Workspace) -> tuple[str, _Tags, dict[str, Any]]:
    """The page, its tags, and its JSON blocks parsed (by id)."""
    page = (built.path / "data/instructions.html").read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(page)
    blocks = {
        a["id"]: json.loads(text)
        for (t, a), text in zip(
            [x for x in parser.tags if x[0] == "script"], parser.scripts, strict=True
        )
        if a.get("type") == "application/json"
    }
    return page, parser, blocks


def test_html_is_self_contained_and_data_cannot_break_out(built: Workspace) -> None:
    page, parser, blocks = _page(built)
    assert '<meta charset="utf-8">' in page and '<html lang="ko">' in page
    tags = parser.tags
    scripts = [a for t, a in tags if t == "script"]
    # one inline script of code, the rest inert JSON; none loads anything
    assert [a for a in scripts if a.get("type") != "application/json"] == [{}]
    assert not [a for a in scripts if "src" in a]
    assert not [t for t, _ in tags if t in ("img", "link", "iframe", "object", "embed", "b", "i")]
    assert not [a for _, a in tags if "src" in a or any(k.startswith("on") for k in a)]
    assert "url(" not in page.split("</style>")[0] and "@import" not in page
    # crawled text can neither end a data block nor open a comment in it
    texts = list(zip(scripts, parser.scripts, strict=True))
    data = [text for a, text in texts if a.get("type") == "application/json"]
    assert len(data) == 4 and not [d for d in data if "<" in d]  # rows, meta, rejects, d0
    assert "alert" not in [text for a, text in texts if a.get("type") != "application/json"][0]
    anchors = [a for t, a in tags if t == "a"]
    assert all(a["href"].startswith("#") for a in anchors)  # links come from the data
    assert "<noscript>" in page and "needs JavaScript" in page


def test_html_holds_every_row_once_with_safe_links(built: Workspace) -> None:
    page, _, blocks = _page(built)
    rows = instruction_rows()
    cards = blocks["rows-data"]
    assert [c[0] for c in cards] == [r["question"] for r in rows]
    assert [c[1] for c in cards] == [r["answer"] for r in rows]  # the injection, verbatim
    assert [c[2:4] for c in cards] == [[r["split"], r["question_source"]] for r in rows]
    assert [c[4] for c in cards] == [3] * 6 and cards[0][5] == "gpt-4o-mini · abc123"
    assert page.count("전세 계약 전에는 등기부등본으로") == 5  # each answer once
    # passages in blocks of rows after the code, parallel to the sources
    passages = [p for k in sorted(k for k in blocks if k.startswith("d")) for p in blocks[k]]
    assert len(passages) == 6
    assert passages[0][0] == [
        "https://www.blog.example.com/post/0",
        "blog",
        "page",
        "등기부등본 확인 0",
    ]
    assert passages[1][0][0] == ["javascript:alert(3)"]  # shown as text, never linked
    links = [s[0] for p in passages for s in p] + [c[7] for c in cards if len(c) > 6]
    assert all(re.match(r"https?://", x) for x in links if isinstance(x, str))
    # a titles row carries its post: the hostile title as data, the javascript: link as text
    assert cards[4][6:] == [HOSTILE_TITLE, POST_LINK, "cafearticle"]
    assert cards[5][6:] == ["지식인 글 제목", ["javascript:alert(4)"], "kin"]
    assert [len(c) for c in cards] == [6, 6, 6, 6, 9, 9]
    assert blocks["page-meta"]["sources"] == ["llm", "titles", "user"]
    assert blocks["page-meta"]["splits"] == ["eval", "train"]
    # rejects: the question, or the post title (linked only when http(s)), or the link
    rej = blocks["rejects-data"]
    assert rej["queries"][0] == ["짧음", None, "question too short"]
    assert rej["queries"][2] == [
        "<i>이 글</i> 광고입니다",
        "https://cafe.naver.com/ad/9",
        "off_topic",
    ]
    assert rej["queries"][3] == ["내 번호로 연락 주세요", ["javascript:alert(5)"], "personal"]
    assert rej["crawl"] == [[None, "https://x/1", "http_404"]]
    assert "synthesize: 15 rejects" in page


def test_html_survives_text_that_is_not_utf8_clean() -> None:
    """A lone surrogate (valid in a JSON escape, not in UTF-8) and JS line separators."""
    page = render_html([{"question": "질문\ud800", "answer": "a\u2028b</script><!--"}], {})
    parser = _Tags()
    parser.feed(page)
    cards = json.loads(parser.scripts[0])
    assert cards == [["질문\ud800", "a\u2028b</script><!--", "", "", 0, ""]]


def test_outputs_are_deterministic(built: Workspace) -> None:
    outs = ("data/instructions.md", "data/instructions.html", "metrics/card.json")
    first = {o: (built.path / o).read_bytes() for o in outs}
    assert built.run("card").returncode == 0
    assert {o: (built.path / o).read_bytes() for o in outs} == first


def test_missing_instructions_is_one_line(workspace: Workspace) -> None:
    proc = workspace.run("card")
    assert proc.returncode == 2
    assert (
        proc.stderr.strip().splitlines()[-1]
        == "card: error: data/instructions.jsonl: missing (run the upstream stage: `dvc repro`)"
    )


def test_page_script_parses(tmp_path) -> None:
    """The page's script is valid JS (node --check; skipped without node). What it does is
    tests/test_card_page.py's, in a real browser."""
    import shutil
    import subprocess

    from seedtune.synthesis.browse import JS

    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed")
    script = tmp_path / "page.js"
    script.write_text(JS, encoding="utf-8")
    proc = subprocess.run(
        [node, "--check", str(script)], text=True, capture_output=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr


def test_card_counts_personal_data_the_masking_missed() -> None:
    """What masking missed in a row's question, answer or passages is counted (metrics/
    card.json's ``pii_unmasked``, which `seedtune publish` refuses on) and named in the card;
    links and tags are not personal data."""
    from seedtune.synthesis.card import Tally, card_metrics

    tally = Tally()
    rows = [
        {
            "question": "전세 보증금은 언제 돌려받나요?",
            "answer": "집주인에게 010-1234-5678로 연락하세요. [이메일]로 보내도 됩니다.",
            "passages": ["문의: agent@example.co.kr", "등기부등본을 확인하세요."],
            "sources": ["https://blog.naver.com/u/223456789012"],
            "split": "train",
        },
        {"question": "월세는?", "answer": "[전화번호]로 문의하세요.", "split": "eval"},
    ]
    list(tally.feed(rows))
    stats = tally.statistics({}, {})
    assert card_metrics(stats)["pii_unmasked"] == {"email": 1, "phone": 1}
