"""data/instructions.html in a real browser: a 10k-row page, rendered by the card stage's
own function, opened from disk in headless Chromium (skipped without it: ``apt-get install
chromium``; ``make setup`` tries as root). How fast it opens is bench/bench_card_page.py's;
here only what a user sees and that hostile text stays text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import bench_module, need_browser

from seedtune.synthesis.browse import PAGE_ROWS, write_html

need_browser()

bench = bench_module("bench_card_page")
ROWS = 10_000
DEEP = 9_876
SCRIPT = "</script><script>window.pwned=1</script>"
IMG = '<img src=x onerror="window.pwned=2">'
HOSTILE = f'{SCRIPT}{IMG} <!-- 질문 & "인용"'


def _rows() -> list[dict[str, Any]]:
    rows = list(bench.make_rows(ROWS))
    # row 3: hostile question, answer and links; row 5 (a titles row): hostile post
    rows[2].update(
        question=HOSTILE,
        answer=f"답변 {SCRIPT} <!-- <script>window.pwned=3",
        sources=["javascript:window.pwned=4", "https://ok.example.kr/a"],
        passages=[f"근거 {IMG}", "정상 근거"],
        source_categories=["blog", "news"],
        source_kinds=["page", "snippet"],
    )
    rows[4].update(post_title=f"원글 {SCRIPT}", post_link="javascript:window.pwned=5")
    return rows


REJECTS = {
    "queries": [
        {"title": f"광고 {IMG}", "link": "javascript:window.pwned=6", "reason": "off_topic"},
        {"title": "정상 제목", "link": "https://cafe.naver.com/x/1", "reason": "personal"},
    ]
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    rows = _rows()
    path = tmp_path_factory.mktemp("page") / "instructions.html"
    assert write_html(path, rows, REJECTS) == ROWS
    return path, rows


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with bench.browser() as b:
        yield b


@pytest.fixture()
def page(browser: Any, site: tuple[Path, list[dict[str, Any]]]) -> Iterator[Any]:
    """The page opened from disk, its first rows shown; page errors fail the test."""
    p = browser.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    # generous: usable at all, not a timing (that is the bench's)
    p.goto(site[0].as_uri(), wait_until="load", timeout=120_000)
    p.wait_for_selector("article.row", timeout=60_000)
    yield p
    p.close()
    assert not errors


def _shown(page: Any) -> list[int]:
    return [
        int(n)
        for n in page.eval_on_selector_all(
            "article.row", "rows => rows.map(r => r.getAttribute('data-n'))"
        )
    ]


def test_first_rows_show_and_the_dom_stays_small(page: Any, site: Any) -> None:
    rows = site[1]
    assert page.text_content('article.row[data-n="1"] h2.q') == rows[0]["question"]
    assert rows[0]["answer"] in page.text_content('article.row[data-n="1"]')
    assert _shown(page) == list(range(1, PAGE_ROWS + 1))
    assert page.text_content("#count") == f"{ROWS} / {ROWS}"
    assert page.locator("nav.pager .pg").first.text_content() == f"page 1 / {ROWS // PAGE_ROWS}"
    # passages are not in the DOM until a row is opened
    assert page.locator("ol.src").count() == 0
    assert rows[0]["passages"][0] not in page.text_content("#rows")
    page.locator("nav.pager").first.get_by_text("next").click()
    assert _shown(page) == list(range(PAGE_ROWS + 1, 2 * PAGE_ROWS + 1))
    assert page.locator("article.row").count() == PAGE_ROWS


def test_clicking_a_row_shows_its_passages(page: Any, site: Any) -> None:
    row = site[1][1]
    article = page.locator('article.row[data-n="2"]')
    assert (
        article.locator("summary").text_content()
        == f"근거 {len(row['passages'])}개 (passages and sources)"
    )
    article.locator("h2.q").click()
    items = article.locator("ol.src li")
    items.first.wait_for(timeout=30_000)
    assert items.count() == len(row["passages"])
    assert row["passages"][0] in items.first.text_content()
    link = items.first.locator("a")
    assert link.get_attribute("href") == row["sources"][0]
    assert link.get_attribute("rel") == "noopener noreferrer"
    assert link.get_attribute("target") == "_blank"
    kinds = items.first.locator(".badge").all_text_contents()
    assert kinds == [row["source_categories"][0], row["source_kinds"][0]]
    article.locator("h2.q").click()  # and closes them again
    assert not items.first.is_visible()


def test_search_and_filters_reach_rows_deep_in_the_list(page: Any, site: Any) -> None:
    rows = site[1]
    page.fill("#q", f"사례 {DEEP}번")
    page.wait_for_selector(f'article.row[data-n="{DEEP}"]', timeout=30_000)
    assert _shown(page) == [DEEP] and page.text_content("#count") == f"1 / {ROWS}"
    page.locator(f'article.row[data-n="{DEEP}"] summary').click()
    first = page.locator(f'article.row[data-n="{DEEP}"] ol.src li').first
    first.wait_for(timeout=30_000)
    assert rows[DEEP - 1]["passages"][0] in first.text_content()
    # words of an answer find it too; "#n" goes to row n
    words = rows[DEEP - 1]["answer"][:60]
    page.fill("#q", words)
    expected = [i + 1 for i, r in enumerate(rows) if words in r["question"] + "\n" + r["answer"]]
    page.wait_for_function(
        "n => document.getElementById('count').textContent.startsWith(n + ' /')",
        arg=str(len(expected)),
        timeout=30_000,
    )
    assert _shown(page) == expected[:PAGE_ROWS] and DEEP in expected
    page.fill("#q", f"#{DEEP}")
    page.wait_for_function(
        f"document.getElementById('count').textContent === '1 / {ROWS}'", timeout=30_000
    )
    assert _shown(page) == [DEEP]
    page.fill("#q", "")
    page.select_option("#split", "eval")
    page.select_option("#source", "titles")
    want = [
        i + 1
        for i, r in enumerate(rows)
        if r["split"] == "eval" and r["question_source"] == "titles"
    ]
    assert page.text_content("#count") == f"{len(want)} / {ROWS}"
    assert _shown(page) == want[:PAGE_ROWS]
    assert set(page.locator("article.row .badge.qs-titles").all_text_contents()) == {"titles"}


def test_hostile_text_shows_as_text_and_runs_nothing(page: Any, site: Any) -> None:
    rows = site[1]
    article = page.locator('article.row[data-n="3"]')
    assert article.locator("h2.q").text_content() == HOSTILE
    assert rows[2]["answer"] in article.text_content()
    article.locator("summary").click()
    items = article.locator("ol.src li")
    items.first.wait_for(timeout=30_000)
    # the javascript: source is shown, not linked; the https one is linked
    assert items.nth(0).locator("a").count() == 0
    assert "javascript:window.pwned=4" in items.nth(0).text_content()
    assert IMG in items.nth(0).text_content()
    assert items.nth(1).locator("a").get_attribute("href") == "https://ok.example.kr/a"
    post = page.locator('article.row[data-n="5"] p.post')
    assert post.locator("a").count() == 0 and f"원글 {SCRIPT}" in post.text_content()
    assert "javascript:window.pwned=5" in post.text_content()
    page.locator("details.rej summary").click()
    cells = page.locator("details.rej tbody td")
    assert cells.nth(0).text_content() == f"광고 {IMG}" and cells.nth(0).locator("a").count() == 0
    assert cells.nth(2).locator("a").get_attribute("href") == "https://cafe.naver.com/x/1"
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.locator("img").count() == 0
    hrefs = page.eval_on_selector_all("a[href]", "as => as.map(a => a.getAttribute('href'))")
    assert hrefs and all(re.match(r"(https?://|#)", h) for h in hrefs)
    # no script was added: the page's own, all but one of them inert data
    kinds = page.eval_on_selector_all("script", "s => s.map(x => x.type)")
    assert kinds.count("") == 1 and set(kinds) == {"", "application/json"}


def _rejects_top(page: Any) -> tuple[float, float]:
    """(top of the rejects section, bottom of the sticky header), in viewport px."""
    return page.evaluate("""() => [document.getElementById('rejects').getBoundingClientRect().top,
        document.querySelector('header.top').getBoundingClientRect().bottom]""")


@pytest.mark.parametrize("width", [1280, 420])
def test_the_rejects_link_lands_on_the_first_click(browser: Any, site: Any, width: int) -> None:
    p = browser.new_page(viewport={"width": width, "height": 800})
    try:
        p.goto(site[0].as_uri(), wait_until="load", timeout=120_000)
        p.wait_for_selector("html[data-ready]", timeout=60_000)
        p.click('header.top a[href="#rejects"]')
        p.wait_for_function("scrollY > 0", timeout=10_000)
        top, header = _rejects_top(p)
        # right below the sticky header (which wraps taller in a narrow window), not under it
        # and not short of it
        assert abs(top - header) <= 2, (top, header)
        assert p.is_visible("#rejects h2")
    finally:
        p.close()


def test_the_page_declares_fonts_with_hangul(page: Any) -> None:
    fonts = page.evaluate("getComputedStyle(document.body).fontFamily")
    # the fonts with Hangul that macOS, Windows, Linux and Android ship, before the fallback
    for family in (
        "Apple SD Gothic Neo",
        "Malgun Gothic",
        "Noto Sans KR",
        "NanumGothic",
        "Noto Sans CJK KR",
    ):
        assert family in fonts
    assert fonts.rstrip().endswith("sans-serif")
