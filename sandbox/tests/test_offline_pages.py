"""The simulator's web pages behind its Naver Search links (``seedtune_sandbox.sim.pages``):
searched through the simulator, fetched with ``requests``, read as a crawler would."""

from __future__ import annotations

import html
import re
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
import trafilatura
from seedtune_sandbox.sim import SimConfig, SimServer, naver_api, pages

from seedtune.core.pii import mask

NAVER_HEADERS = {"X-Naver-Client-Id": "cid", "X-Naver-Client-Secret": "secret"}
DELAY = 0.3


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(SimConfig(page_delay_s=DELAY)) as s:
        yield s


def _items(
    sim: SimServer, category: str, query: str = "전세 사기 예방", display: int = 100
) -> list[dict[str, str]]:
    r = requests.get(
        f"{sim.naver_base_url}/v1/search/{category}.json",
        params={"query": query, "display": display},
        headers=NAVER_HEADERS,
        timeout=10,
    )
    r.raise_for_status()
    return r.json()["items"]


def _fetched(item: dict[str, str]) -> str:
    return item.get("originallink") or item["link"]


def _pick(sim: SimServer, category: str, fault: str | None, origin: str | None = None) -> str:
    for query in ("전세 사기 예방", "청약 가점 계산", "재개발 분담금", "전세 대출 한도"):
        for it in _items(sim, category, query):
            link = _fetched(it)
            if pages.fault(link) == fault and (
                origin is None or link.startswith(sim.page_origins[origin] + "/")
            ):
                return link
    raise AssertionError(f"no {category} link with fault {fault} on {origin}")


def _get(url: str, **kw: object) -> requests.Response:
    return requests.get(url, timeout=10, allow_redirects=False, **kw)  # type: ignore[arg-type]


def _text(r: requests.Response) -> str:
    """The page as text: UTF-8 when the header says so, else the EUC-KR its <meta> declares."""
    return r.content.decode("utf-8" if "charset=utf-8" in r.headers["Content-Type"] else "cp949")


def _snippets(items: list[dict[str, str]]) -> str:
    return " ".join(
        html.unescape(re.sub(r"</?b>", "", it["title"] + " " + it["description"])) for it in items
    )


def test_links_point_at_the_page_origins(sim: SimServer) -> None:
    """Naver's blog/news/kin link shapes (blog.naver.com/{id}/{logNo}, a publisher's
    articleView.html?idxno=, kin's detail.naver?d1id=&dirId=&docId=), on loopback origins."""
    origins = sim.page_origins
    assert set(origins) == set(pages.ORIGINS)
    assert len(set(origins.values())) == len(origins)
    blog = _items(sim, "blog")
    assert re.fullmatch(re.escape(origins["blog"]) + r"/land\d{5}/22\d{10}", blog[0]["link"])
    assert (
        blog[0]["bloggerlink"]
        == origins["blog"].removeprefix("http://") + "/" + blog[0]["link"].split("/")[3]
    )
    news = _items(sim, "news")[0]
    assert re.search(r"/news/articleView\.html\?idxno=\d+$", news["originallink"])
    assert news["link"].startswith(origins["news"] + "/mnews/article/")
    kin = _items(sim, "kin")[0]["link"]
    assert re.search(r"/qna/detail\.naver\?d1id=4&dirId=4020\d&docId=\d+$", kin)


def test_pages_off_keeps_naver_links() -> None:
    """With --no-pages the links are Naver's own hosts, as the real API returns them."""
    with SimServer(SimConfig(pages=False)) as s:
        assert s.page_origins == {}
        assert _items(s, "blog", display=5)[0]["link"].startswith("https://blog.naver.com/")
        assert "pages" in s.stats() and s.stats()["pages"]["requests"] == 0


def test_blog_frame_and_postview(sim: SimServer) -> None:
    """Naver blog's desktop URL is a frame page (iframe#mainFrame onto PostView.naver); the post
    is in SmartEditor ONE markup, which trafilatura extracts without comments, nav or footer."""
    link = _pick(sim, "blog", None, "blog")
    frame = _get(link)
    assert frame.status_code == 200 and frame.headers["Content-Type"] == "text/html; charset=utf-8"
    m = re.search(r'<iframe id="mainFrame" name="mainFrame" src="([^"]+)"', frame.text)
    assert m and "/PostView.naver?blogId=" in m.group(1) and "logNo=" in m.group(1)
    assert trafilatura.extract(frame.text) is None  # nothing to read on the frame itself
    assert not any(s in frame.text for s in pages.page_only_sentences(link))
    post = _get(sim.page_origins["blog"] + html.unescape(m.group(1)))
    assert post.status_code == 200 and 'class="se-main-container"' in post.text
    assert '<p class="se-text-paragraph' in post.text and "u_cbox_contents" in post.text
    text = trafilatura.extract(post.text, include_comments=False)
    assert text and all(s in text for s in pages.page_only_sentences(link))
    boilerplate = (
        "좋은 정보 감사합니다",
        "이웃 추가하고 갑니다",
        "저도 같은 고민",
        "블로그 홈",
        "이웃추가",
        "NAVER Corp",
        "카테고리",
        "공감",
    )
    for noise in boilerplate:
        assert noise not in text, noise
    assert pages.page_only_sentences(link) == pages.page_only_sentences(post.url)


def test_page_only_sentences_are_not_in_the_snippets(sim: SimServer) -> None:
    """A crawler must add text the search snippet lacks: page-only sentences never appear in
    any title/description, while the page is still about the query that found it."""
    items = [it for c in ("blog", "news", "kin") for it in _items(sim, c, display=30)]
    snippets = _snippets(items)
    found = 0
    for it in items:
        only = pages.page_only_sentences(_fetched(it))
        found += len(only)
        assert not any(s in snippets for s in only)
    assert found > 100
    link = _pick(sim, "news", None, "press")
    body = trafilatura.extract(_get(link).text)
    assert "전세 사기 예방" in body and all(s in body for s in pages.page_only_sentences(link))


def test_euckr_publisher(sim: SimServer) -> None:
    """Korean publishers still on EUC-KR: CP949 bytes, declared only in a <meta> (charset= or
    http-equiv), with a bare text/html header; others UTF-8 with the charset in the header."""
    metas = set()
    for _ in range(2):
        link = _pick(sim, "news", None, "press_euckr")
        r = _get(link)
        assert r.status_code == 200 and r.headers["Content-Type"] == "text/html"
        with pytest.raises(UnicodeDecodeError):
            r.content.decode("utf-8")
        page = r.content.decode("cp949")
        meta = re.search(
            r'<meta (charset="euc-kr"|http-equiv="Content-Type" '
            r'content="text/html; charset=euc-kr")>',
            page,
        )
        assert meta and "무단전재 및 재배포 금지" in page and "관련기사" in page
        assert re.search(r"기자 [a-z]+\d+@[a-z.]+", page)  # byline with the reporter's e-mail
        metas.add(meta.group(1)[:4])
        text = trafilatura.extract(r.content)
        assert all(s in text for s in pages.page_only_sentences(link))
    utf8 = _get(_pick(sim, "news", None, "press"))
    assert utf8.headers["Content-Type"] == "text/html; charset=utf-8"
    sample = [f"/news/articleView.html?idxno={n}" for n in range(1000, 1400, 20)]
    kinds = {
        re.search(rb"<meta (charset|http-equiv)", pages.respond("press_euckr", p).body).group(1)
        for p in sample
    }
    assert kinds == {b"charset", b"http-equiv"}


def test_kin_and_portal_pages(sim: SimServer) -> None:
    """kin.naver.com Q&A (a question and 1-2 답변) and n.news.naver.com's article view."""
    link = _pick(sim, "kin", None, "kin")
    page = _get(link).text
    assert "_questionContentsArea" in page and "님 답변" in page and "전세 사기 예방" in page
    news = next(
        it
        for it in _items(sim, "news")
        if pages.fault(it["link"]) is None and it["link"].startswith(sim.page_origins["news"])
    )
    portal = _get(news["link"]).text
    assert 'id="dic_area"' in portal
    assert pages.page_only_sentences(news["link"]) == pages.page_only_sentences(
        news["originallink"]
    )  # the same article


def test_redirect_404_robots_oversized_and_unknown_paths(sim: SimServer) -> None:
    """Crawler edge cases on fixed paths: legacy URLs that 301/302 on the same origin (Naver's
    .nhn -> .naver move, read.naver -> mnews), deleted posts (404), robots.txt Disallow, a page
    over 3 MB, and an unknown article id that still gets a page."""
    moved = 0
    for category in ("blog", "news", "kin"):
        link = _pick(sim, category, "redirect")
        r = _get(link)
        assert r.status_code in (301, 302)
        origin = link.split("/", 3)[:3]
        assert r.headers["Location"].startswith("/".join(origin) + "/")
        final = _get(r.headers["Location"])
        assert final.status_code == 200
        assert pages.page_only_sentences(link) == pages.page_only_sentences(final.url)
        assert all(s in _text(final) for s in pages.page_only_sentences(link))
        moved += 1
    assert moved == 3
    gone = _pick(sim, "blog", "404")
    assert _get(gone).status_code == 404 and pages.planted_pii(gone) == []
    robots = {name: _get(url + "/robots.txt").text for name, url in sim.page_origins.items()}
    assert all(t.startswith("User-agent: *\n") for t in robots.values())
    assert "Disallow: /private/" in robots["web"]
    assert not any("Disallow" in t for name, t in robots.items() if name != "web")
    private = _pick(sim, "news", "robots")
    assert private.startswith(sim.page_origins["web"] + "/private/")
    big = _pick(sim, "blog", "oversized")
    frame = _get(big).text
    src = html.unescape(re.search(r'src="([^"]+)"', frame).group(1))
    r = _get(sim.page_origins["blog"] + src)
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(r.content) > 3_000_000
    unknown = _get(sim.page_origins["web"] + "/board/1234567890123")
    assert unknown.status_code == 200 and "post-content" in unknown.text
    assert _get(sim.page_origins["web"] + "/board/1234567890123").content == unknown.content
    assert _get(sim.page_origins["blog"] + "/favicon.ico").status_code == 404


def test_slow_origin(sim: SimServer) -> None:
    """A slow web server: every response of the slow origin waits page_delay_s."""
    link = _pick(sim, "blog", None, "slow")
    started = time.perf_counter()
    assert _get(link).status_code == 200
    assert time.perf_counter() - started >= DELAY


def test_fault_shares_in_a_demo_sized_run() -> None:
    """20 questions x 3 categories x 10 results: mostly plain pages, every fault present."""
    origins = {name: f"http://127.0.0.1:{9000 + i}" for i, name in enumerate(pages.ORIGINS)}
    links = [
        _fetched(it)
        for q in range(20)
        for c in ("blog", "news", "kin")
        for it in naver_api.search(c, f"전세 계약 질문 {q}", 10, origins=origins, empty_rate=0)[
            "items"
        ]
    ]
    assert len(links) == 600
    counts = Counter(pages.fault(link) for link in links)
    counts["slow"] = sum(link.startswith(origins["slow"]) for link in links)
    assert counts[None] > 400
    for kind in ("redirect", "404", "robots", "slow"):
        assert 15 <= counts[kind] <= 70, (kind, counts)
    assert 1 <= counts["oversized"] <= 15


def test_planted_pii_is_masked_and_lookalikes_are_not(sim: SimServer) -> None:
    """Blog and Q&A posts carry phone numbers, e-mails, resident registration, card and bank
    account numbers next to prices, dates, areas, lot/unit and 1588 numbers that are not
    personal: seedtune.core.pii.mask must catch exactly the former."""
    kinds: Counter[str] = Counter()
    with_pii = 0
    links = [_fetched(it) for c in ("blog", "news", "kin") for it in _items(sim, c)]
    for link in links:
        planted, looks = pages.planted_pii(link), pages.lookalikes(link)
        if pages.fault(link) == "404":
            assert planted == [] and looks == []
            continue
        text = "\n".join(pages.content(link, sim.page_registry).paragraphs)
        with_pii += bool(planted)
        masked, counts = mask(text)
        kinds.update(counts)
        for value in planted:
            if "@" not in value or value in text:  # the reporter's e-mail is in the byline
                assert value in text and value not in masked, (link, value)
        for value in looks:
            assert value in text and value in masked, (link, value, masked)
        masked_one_line, _ = mask(" ".join(text.split("\n")))
        assert all(v in masked_one_line for v in looks)
    assert with_pii > 0.7 * len(links)
    assert set(kinds) == {"rrn", "phone", "email", "card", "account"}
    served = _get(_pick(sim, "kin", None, "kin"))
    link = served.url
    planted = [v for v in pages.planted_pii(link)]
    assert planted and all(v in served.text for v in planted)
    assert all(v not in mask(served.text)[0] for v in planted)
    mobile = [v for link in links for v in pages.planted_pii(link) if v.startswith("010")]
    assert {v[3] for v in mobile} >= {"-", ".", " "}


def test_stats_count_page_requests_and_reset() -> None:
    """What a crawler fetched, per URL, so a rerun can be checked to fetch nothing twice."""
    with SimServer(SimConfig(page_delay_s=0)) as s:
        link = _pick(s, "kin", None, "kin")
        _get(link)
        _get(link)
        _get(s.page_origins["kin"] + "/robots.txt")
        stats = requests.get(f"{s.url}/_sim/stats", timeout=5).json()["pages"]
        assert stats["requests"] == 2 and stats["by_url"] == {link: 2}
        assert stats["robots"] == 1 and stats["robots_by_origin"] == {"kin": 1}
        assert stats["status"] == {"200": 2}
        assert s.stats()["pages"] == stats
        requests.post(f"{s.url}/_sim/reset", timeout=5)
        assert s.stats()["pages"] == {
            "requests": 0,
            "by_url": {},
            "status": {},
            "robots": 0,
            "robots_by_origin": {},
        }
