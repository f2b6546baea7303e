"""The crawl stage's pieces: decoding, frames, robots, politeness, the cache, passages.

The loopback site below behaves as the documents say real ones do: Naver blog's desktop
page is a frame onto ``/PostView.naver`` (the post body), Korean news sites declare EUC-KR
only in a ``<meta>`` tag, robots.txt follows RFC 9309 (a 404 allows everything), and a
server may answer 503 with ``Retry-After`` before it recovers.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from support import ROOT, bench_module, damage_line

from seedtune.core.cache import ResponseCache
from seedtune.core.config import CrawlConfig
from seedtune.retrieval import crawl as crawl_module
from seedtune.retrieval import pages as pages_module
from seedtune.retrieval.crawl import (
    CrawlResult,
    crawl_metrics,
    derived_rows,
    page_records,
    select_links,
)
from seedtune.retrieval.fetch import (
    HostQueues,
    PageFetcher,
    decode_html,
    frame_target,
)
from seedtune.retrieval.pages import page_text
from seedtune.retrieval.passages import split_passages, split_sentences

BODY = (
    "전세 계약 전에는 등기부등본으로 근저당 설정액을 확인해야 합니다. "
    "보증금이 시세의 70%를 넘으면 깡통전세 위험이 큽니다. "
    "확정일자는 전입신고와 함께 주민센터에서 받을 수 있습니다. "
)
PAGE = (
    "<html><head><meta charset='utf-8'><title>전세 체크리스트</title></head><body>"
    "<nav>홈 | 블로그 | 로그인</nav><article><h1>전세 체크리스트</h1>"
    + "".join(f"<p>{BODY}{i}번째 문단입니다. 문의 010-2345-6789.</p>" for i in range(4))
    + "</article><div class='comments'><p>좋은 글 감사합니다</p></div>"
    "<footer>Copyright NAVER</footer></body></html>"
)
# Naver blog's desktop page: a frame whose src is the address serving the post
FRAME = (
    '<html><head><title>블로그</title></head><body><iframe id="mainFrame" '
    'name="mainFrame" src="/PostView.naver?blogId=land1&amp;logNo=22&amp;redirect=Dlog"'
    ' width="100%"></iframe></body></html>'
)
EUCKR = (
    '<html><head><meta http-equiv="Content-Type" content="text/html; charset=euc-kr">'
    "</head><body><article>" + f"<p>{BODY}</p>" * 3 + "</article></body></html>"
).encode("cp949")


class _Site(BaseHTTPRequestHandler):
    hits: Counter[str] = Counter()
    order: list[str] = []
    in_flight = 0
    max_in_flight = 0
    lock = threading.Lock()
    flaky_left = 1
    robots_status = 200

    def log_message(self, *args: Any) -> None:
        pass

    def _send(
        self,
        code: int,
        body: bytes = b"",
        ctype: str = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        cls = type(self)
        with cls.lock:
            cls.hits[self.path] += 1
            cls.order.append(f"{self.server.server_address[1]}{self.path}")
            cls.in_flight += 1
            cls.max_in_flight = max(cls.max_in_flight, cls.in_flight)
        try:
            self._route()
        finally:
            with cls.lock:
                cls.in_flight -= 1

    def _route(self) -> None:
        path = self.path
        if path == "/robots.txt":
            self._send(
                type(self).robots_status, b"User-agent: *\nDisallow: /private/\n", "text/plain"
            )
        elif path.startswith("/page") or path.startswith("/PostView.naver"):
            time.sleep(0.05)
            self._send(200, PAGE.encode())
        elif path == "/blog/land1/22":
            self._send(200, FRAME.encode())
        elif path == "/euckr":
            self._send(200, EUCKR, "text/html")
        elif path == "/moved":
            self._send(301, headers={"Location": "/page-moved"})
        elif path == "/big":
            self._send(200, b"<html>" + b"x" * 200_000 + b"</html>")
        elif path == "/slow":
            time.sleep(1.5)
            self._send(200, PAGE.encode())
        elif path == "/flaky":
            cls = type(self)
            with cls.lock:
                fail, cls.flaky_left = cls.flaky_left > 0, cls.flaky_left - 1
            if fail:
                self._send(503, b"busy", headers={"Retry-After": "0"})
            else:
                self._send(200, PAGE.encode())
        elif path == "/file.pdf":
            self._send(200, b"%PDF-1.4", "application/pdf")
        else:
            self._send(404, b"not found")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    #: ``127.0.0.1:port`` of each server listening: the crawler refuses loopback addresses
    #: but these (``crawl.allow_networks``, see :func:`_fetcher`)
    live: set[str] = set()

    def server_activate(self) -> None:
        super().server_activate()
        _Server.live.add(f"127.0.0.1:{self.server_address[1]}")

    def server_close(self) -> None:
        _Server.live.discard(f"127.0.0.1:{self.server_address[1]}")
        super().server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up (timeout, size cap) is part of the test


@pytest.fixture
def site() -> Any:
    _Site.hits = Counter()
    _Site.order = []
    _Site.max_in_flight = 0
    _Site.flaky_left = 1
    _Site.robots_status = 200
    server = _Server(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _fetcher(tmp_path: Path, **kw: Any) -> PageFetcher:
    settings = CrawlConfig(
        **{
            "user_agent": "seedtune-test/1",
            "host_rps": 100.0,
            "per_host": 4,
            "timeout_s": 1.0,
            "max_retries": 1,
            "max_bytes": 100_000,
            "allow_networks": tuple(sorted(_Server.live)),
            **kw,
        }
    )
    return PageFetcher(settings, ResponseCache(tmp_path / "cache"))


def test_decoding_follows_header_then_meta_then_the_bytes() -> None:
    text = "전세 보증금 반환"
    assert decode_html(text.encode("utf-8"), "text/html; charset=UTF-8") == (text, "utf-8", 0)
    meta = f'<meta charset="EUC-KR"><p>{text}</p>'.encode("cp949")
    assert decode_html(meta, "text/html") == (meta.decode("cp949"), "cp949", 0)
    # declared UTF-8 but CP949 bytes (common on older Korean sites): decoded by what it is
    lying = f"<p>{text}</p>".encode("cp949")
    assert decode_html(lying, "text/html; charset=utf-8")[:2] == (f"<p>{text}</p>", "cp949")
    assert decode_html(b"\xef\xbb\xbf" + text.encode(), None) == (text, "utf-8", 0)
    # a few bad bytes in UTF-8 cost a character each; the page stays UTF-8
    broken = b"<p>\xff" + (text * 40 + "</p>").encode()
    decoded = decode_html(broken, "text/html; charset=utf-8")
    assert decoded.charset == "utf-8" and decoded.replaced == 1
    assert decoded.text.replace("\ufffd", "") == "<p>" + text * 40 + "</p>"
    assert decode_html(broken, None).charset == "utf-8"  # sniffed, not declared: the same


def test_naver_blog_links_go_straight_to_the_post() -> None:
    """blog.naver.com/{id}/{logNo} is a frame page onto PostView.naver (what a browser
    shows as the post); other addresses are left alone."""
    from seedtune.retrieval.fetch import post_address

    assert post_address("https://blog.naver.com/land00012/223456789012") == (
        "https://blog.naver.com/PostView.naver?blogId=land00012&logNo=223456789012"
    )
    assert post_address("https://m.blog.naver.com/kim_1/22/") == (
        "https://blog.naver.com/PostView.naver?blogId=kim_1&logNo=22"
    )
    for url in (
        "https://blog.naver.com/PostView.naver?blogId=a&logNo=1",
        "https://blog.naver.com/land00012",
        "https://cafe.naver.com/home/123",
        "http://127.0.0.1:8000/land00012/223456789012",
    ):
        assert post_address(url) == url


def test_frame_target_is_the_main_frame_only() -> None:
    assert frame_target(FRAME, "https://blog.naver.com/land1/22") == (
        "https://blog.naver.com/PostView.naver?blogId=land1&logNo=22&redirect=Dlog"
    )
    ad = '<p>본문</p><iframe src="https://ads.example/x" id="ad"></iframe>'
    assert frame_target(ad, "https://example.kr/a") is None
    bare = "<frameset><frame src='/PostView.naver?blogId=a&logNo=1'></frameset>"
    assert frame_target(bare, "http://h/a/1") == "http://h/PostView.naver?blogId=a&logNo=1"


def test_pages_are_fetched_politely_and_every_outcome_is_kept(site: str, tmp_path: Path) -> None:
    urls = {
        name: f"{site}{path}"
        for name, path in {
            "page": "/page",
            "frame": "/blog/land1/22",
            "euckr": "/euckr",
            "moved": "/moved",
            "big": "/big",
            "slow": "/slow",
            "flaky": "/flaky",
            "missing": "/gone",
            "private": "/private/secret",
            "pdf": "/file.pdf",
        }.items()
    }
    fetcher = _fetcher(tmp_path)
    out = fetcher.fetch_all(list(urls.values()))
    status = {name: out[url]["status"] for name, url in urls.items()}
    assert status == {
        "page": "ok",
        "frame": "ok",
        "euckr": "ok",
        "moved": "ok",
        "big": "too_large",
        "slow": "timeout",
        "flaky": "ok",
        "missing": "http_404",
        "private": "robots",
        "pdf": "not_html",
    }
    assert out[urls["frame"]]["final_url"] == (
        f"{site}/PostView.naver?blogId=land1&logNo=22&redirect=Dlog"
    )
    assert "근저당" in out[urls["frame"]]["html"]
    assert out[urls["moved"]]["final_url"] == f"{site}/page-moved"
    assert out[urls["euckr"]]["charset"] == "cp949" and "깡통전세" in out[urls["euckr"]]["html"]
    assert _Site.hits["/private/secret"] == 0  # robots.txt was honoured
    assert _Site.hits["/robots.txt"] == 1  # once per origin
    assert _Site.hits["/flaky"] == 2  # a 503 with Retry-After is retried
    # a rerun fetches nothing: every outcome, failures included, is in the cache
    before = sum(_Site.hits.values())
    again = _fetcher(tmp_path)
    assert {u: o["status"] for u, o in again.fetch_all(list(urls.values())).items()} == {
        urls[n]: s for n, s in status.items()
    }
    assert sum(_Site.hits.values()) == before and again.fetched == 0
    assert again.cached == len(urls)


def test_a_larger_cap_or_robots_off_fetches_those_pages_again(site: str, tmp_path: Path) -> None:
    urls = [f"{site}/big", f"{site}/private/secret", f"{site}/page"]
    _fetcher(tmp_path).fetch_all(urls)
    out = _fetcher(tmp_path, max_bytes=1_000_000, respect_robots=False).fetch_all(urls)
    assert [out[u]["status"] for u in urls] == ["ok", "http_404", "ok"]
    assert _Site.hits["/page"] == 1  # the page already kept was not fetched again
    smaller = _fetcher(tmp_path, max_bytes=20_000).fetch_all(urls)
    assert smaller[urls[0]]["status"] == "too_large" and smaller[urls[0]]["html"] is None


def test_a_failing_robots_txt_blocks_the_site_for_this_run_only(site: str, tmp_path: Path) -> None:
    """RFC 9309: a robots.txt answering 5xx means complete disallow; a 404 allows all.
    Neither the failed robots.txt nor the pages it blocked are cached."""
    _Site.robots_status = 503
    out = _fetcher(tmp_path, max_retries=0).fetch_all([f"{site}/page"])
    assert out[f"{site}/page"]["status"] == "robots_unavailable" and _Site.hits["/page"] == 0
    _Site.robots_status = 404  # the next run asks again, and a missing robots.txt allows all
    out = _fetcher(tmp_path, max_retries=0).fetch_all([f"{site}/page"])
    assert out[f"{site}/page"]["status"] == "ok"
    assert _Site.hits["/robots.txt"] == 2


def test_per_host_rate_and_concurrency_are_kept(site: str, tmp_path: Path) -> None:
    urls = [f"{site}/page{i}" for i in range(8)]
    started = time.perf_counter()
    fetcher = _fetcher(tmp_path, host_rps=10.0, per_host=2, concurrency=8)
    out = fetcher.fetch_all(urls)
    elapsed = time.perf_counter() - started
    assert all(o["status"] == "ok" for o in out.values())
    # 9 requests (robots.txt first) spaced 0.1 s apart: at least 0.8 s
    assert elapsed >= 0.8
    assert _Site.max_in_flight <= 2


def test_a_busy_host_does_not_hold_up_the_others(site: str, tmp_path: Path) -> None:
    """Pages waiting for their host's turn hold no slot of ``crawl.concurrency``: with most
    links on one host (as blog.naver.com is), another host's pages go out meanwhile."""
    other = _Server(("127.0.0.1", 0), _Site)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        port = other.server_address[1]
        busy = [f"{site}/page{i}" for i in range(8)]
        quiet = [f"http://127.0.0.1:{port}/page-b{i}" for i in range(2)]
        _fetcher(tmp_path, host_rps=5.0, per_host=1, concurrency=2).fetch_all(busy + quiet)
    finally:
        other.shutdown()
        other.server_close()
    busy_port = site.rsplit(":", 1)[1]
    # the quiet host's pages are done before the busy host is half way through its eight
    last_quiet = max(i for i, hit in enumerate(_Site.order) if hit.startswith(f"{port}/page"))
    assert last_quiet < _Site.order.index(f"{busy_port}/page4"), _Site.order


def _crawl(tmp_path: Path, links: list[str], **kw: Any) -> tuple[CrawlResult, list[dict]]:
    c = CrawlConfig(**{"max_bytes": 100_000, **kw})
    root = tmp_path / "cache"
    fetcher = _fetcher(tmp_path, max_bytes=c.max_bytes, respect_robots=c.respect_robots)
    result = CrawlResult(links, derived_rows(root, c), fetcher, c.min_chars).run()
    return result, list(result)


def test_a_rerun_derives_only_the_pages_it_has_not_derived(
    site: str, tmp_path: Path, monkeypatch
) -> None:
    """A new seed word's rerun reads the rows of pages it already has instead of extracting
    every cached page again; other settings derive again from the stored pages, free."""
    calls: list[str] = []
    real = crawl_module.page_text
    monkeypatch.setattr(
        crawl_module, "page_text", lambda html, url, n: calls.append(url) or real(html, url, n)
    )
    links = [f"{site}/page{i}" for i in range(4)] + [f"{site}/gone"]
    first, rows = _crawl(tmp_path, links)
    assert len(calls) == 4 and first.fetcher.fetched == 6  # robots.txt + 5 pages
    assert [r["status"] for r in rows] == ["ok"] * 4 + ["http_404"]

    calls.clear()
    again, more = _crawl(tmp_path, [*links, f"{site}/page9"])
    assert calls == [f"{site}/page9"] and again.fetcher.fetched == 1
    assert more[:5] == rows and again.from_rows == 5

    calls.clear()
    other, shorter = _crawl(tmp_path, links, min_chars=30)  # derived again, nothing fetched
    assert len(calls) == 4 and other.fetcher.fetched == 0
    assert [r["status"] for r in shorter] == [r["status"] for r in rows]
    assert [p.name for p in (tmp_path / "cache").glob("rows-*")] == [other.rows.root.name]


def test_a_damaged_page_row_is_derived_again_from_the_stored_page(
    site: str, tmp_path: Path
) -> None:
    links = [f"{site}/page{i}" for i in range(3)]
    first, rows = _crawl(tmp_path, links)
    first.rows.close()
    segment = next(first.rows.root.glob("seg-*.jsonl"))
    damage_line(segment)  # the first row's entry no longer matches its checksum
    again, reread = _crawl(tmp_path, links)
    assert reread == rows and again.fetcher.fetched == 0


def test_an_error_while_handling_a_page_is_raised_as_itself(site: str, tmp_path: Path) -> None:
    """Not wrapped in the task group's ExceptionGroup: the stage's one-line errors and
    tracebacks stay what they were; the page itself is kept before it is handled."""

    def handle(url: str, outcome: dict[str, Any]) -> None:
        raise OSError(28, "No space left on device")

    fetcher = _fetcher(tmp_path)
    with pytest.raises(OSError, match="No space left"):
        fetcher.fetch_each([f"{site}/page"], handle)
    assert _fetcher(tmp_path).fetch_all([f"{site}/page"])[f"{site}/page"]["status"] == "ok"
    assert _Site.hits["/page"] == 1


def test_the_busiest_host_is_the_one_with_most_pages_left() -> None:
    queues = HostQueues(
        [f"https://blog.naver.com/u{i}/{i}" for i in range(3)]
        + ["https://kin.naver.com/qna/1", "http://127.0.0.1:8000/a"]
    )
    assert queues.busiest() == "blog.naver.com 3" and queues.pending == 5
    assert queues.wants_worker("blog.naver.com", 2) and queues.wants_worker("blog.naver.com", 2)
    assert not queues.wants_worker("blog.naver.com", 2)  # per_host workers at most
    url = queues.take("blog.naver.com")
    assert url == "https://blog.naver.com/u0/0" and queues.left("blog.naver.com") == 3
    queues.finish("blog.naver.com")
    assert queues.left("blog.naver.com") == 2 and queues.pending == 4


def test_page_records_mask_personal_data_and_drop_empty_pages() -> None:
    outcomes = {
        "a": {"status": "ok", "html": PAGE, "final_url": "a"},
        "b": {"status": "ok", "html": "<html><body><p>짧음</p></body></html>"},
        "c": {"status": "http_404"},
    }
    rows = {r["link"]: r for r in page_records(outcomes, min_chars=100)}
    assert rows["a"]["status"] == "ok" and "근저당" in rows["a"]["text"]
    assert "010-2345-6789" not in rows["a"]["text"] and rows["a"]["pii_masked"]["phone"] == 4
    assert "좋은 글 감사합니다" not in rows["a"]["text"]  # comments are boilerplate
    assert "Copyright" not in rows["a"]["text"]
    assert rows["b"]["status"] == "empty" and "text" not in rows["b"]
    assert rows["c"]["status"] == "http_404"


# ---------------------------------------------------- real pages: extraction and decoding

EXTRACTION = ROOT / "tests" / "data" / "extraction"
CHARSETS = ROOT / "tests" / "data" / "charsets"
KOREAN = (
    "0ec95c7261d122f304728e90c983450ef1ce1e0b423546835c397d50aaf0d0f2",
    "9da36ae4714bfccc72374c6c146e9d1cd3cca39e2110bd67ccdbcc806f4cf139",
)
#: wired.com: trafilatura keeps 3,168 of its 9,842 visible characters (truth: 8,640)
PARTIAL = "d48aeb9cf2f2ff15769a57513249b4a6a669159f3e50b335e741d4206a824e88"


def _truth() -> dict[str, dict[str, str]]:
    return json.loads((EXTRACTION / "ground-truth.json").read_text(encoding="utf-8"))


def _raw(page_id: str) -> bytes:
    return gzip.decompress((EXTRACTION / "html" / f"{page_id}.html.gz").read_bytes())


def _html(page_id: str) -> str:
    return decode_html(_raw(page_id)).text


def test_korean_news_pages_come_out_with_their_text() -> None:
    bench = bench_module("bench_extract")
    for page_id in KOREAN:
        page = page_text(_html(page_id), _truth()[page_id]["url"], min_chars=100)
        assert page.extractor == "trafilatura"
        assert bench.recall(_truth()[page_id]["articleBody"], page.text) > 0.9, page_id


def test_a_page_gives_the_same_text_whatever_was_extracted_before() -> None:
    first = page_text(_html(KOREAN[0]), None, 100).text
    assert len(first) > 2000
    for page_id in _truth():  # every other page, then the same one again, three times
        page_text(_html(page_id), None, 100)
    assert [page_text(_html(KOREAN[0]), None, 100).text for _ in range(3)] == [first] * 3


def test_a_short_first_pass_on_a_long_page_falls_back_and_says_so() -> None:
    bench = bench_module("bench_extract")
    page_id = PARTIAL
    truth, html = _truth()[page_id]["articleBody"], _html(page_id)
    plain = page_text(html, None, min_chars=100)
    assert plain.extractor == "trafilatura" and len(plain.text) < 3200
    page = page_text(html, None, min_chars=3200)  # more than trafilatura found
    assert page.extractor == "baseline" and len(page.text) >= 3200
    assert bench.recall(truth, page.text) > bench.recall(truth, plain.text) + 0.3
    # another long page trafilatura reads whole enough; this one's outcome counted 2 bad bytes
    other = _html("2f42ef1d3ea0c96e56355d3db93d0e06b47e760b74f6f4261278b8cd1c246dd6")
    outcomes = {
        "a": {"status": "ok", "html": html, "final_url": "a", "charset": "utf-8"},
        "b": {"status": "ok", "html": other, "final_url": "b", "replaced_chars": 2},
    }
    rows = page_records(outcomes, min_chars=3200)
    assert [r["extractor"] for r in rows] == ["baseline", "trafilatura"]
    fetcher = SimpleNamespace(fetched=2, cached=0, retries=0)
    metrics = crawl_metrics(rows, fetcher)  # type: ignore[arg-type]
    assert metrics["extractors"] == {"trafilatura": 1, "favor_recall": 0, "baseline": 1}
    assert metrics["replaced_chars"] == 2 and metrics["pages_with_replaced_chars"] == 1


def test_short_pages_stay_empty_and_no_fallback_keeps_a_menu(monkeypatch) -> None:
    menu = "".join(f'<li><a href="/c{i}">카테고리 {i}번 게시판</a></li>' for i in range(40))
    pages = {
        "short": "<html><body><nav>홈 | 로그인</nav><p>삭제된 게시물입니다.</p>"
        "<footer>Copyright NAVER</footer></body></html>",
        "menu": f"<html><body><ul>{menu}</ul><ul>{menu}</ul></body></html>",
    }
    # an old cached outcome has no replaced_chars: nothing known, no crash
    rows = page_records({k: {"status": "ok", "html": v} for k, v in pages.items()}, 100)
    assert [r["status"] for r in rows] == ["empty", "ok"]  # trafilatura's menu is its text
    assert rows[1]["extractor"] == "trafilatura"
    # when trafilatura finds nothing, its fallbacks' menu is not taken either
    monkeypatch.setitem(pages_module._PASSES, "trafilatura", lambda html, url: "")
    assert page_text(pages["menu"], None, 100).text == ""
    long_page = _html(PARTIAL)
    assert page_text(long_page, None, 100).extractor in ("favor_recall", "baseline")


@pytest.mark.parametrize("name", sorted(p.name for p in CHARSETS.iterdir() if p.suffix != ".md"))
def test_real_euc_kr_pages_decode_as_cp949_however_declared(name: str) -> None:
    bench = bench_module("bench_extract")
    body = (CHARSETS / name).read_bytes()
    text = body.decode("cp949")
    for ctype in (None, "text/html", "text/html; charset=euc-kr", "text/html; charset=utf-8"):
        assert decode_html(body, ctype) == (text, "cp949", 0), ctype
    # one byte lost under the wrong header: still CP949, a few characters changed (a lost
    # lead byte pairs its trail byte with the next character's until the pairs fall in step)
    decoded = decode_html(bench.one_bad_byte(body), "text/html; charset=utf-8")
    assert decoded.charset == "cp949" and 1 <= decoded.replaced <= 2
    assert bench.changed_chars(decoded.text, text) <= 5


@pytest.mark.parametrize("page_id", KOREAN)
def test_one_bad_byte_in_a_real_korean_utf8_page_costs_one_character(page_id: str) -> None:
    bench = bench_module("bench_extract")
    body = _raw(page_id)
    text = body.decode("utf-8")
    hangul = sum("\uac00" <= ch <= "\ud7a3" for ch in text)
    removed = bench.one_bad_byte(body)
    corrupted = body[: len(body) // 2] + b"\xff" + body[len(body) // 2 + 1 :]
    for bad in (removed, corrupted):
        for ctype in ("text/html; charset=utf-8", None):
            decoded = decode_html(bad, ctype)
            assert decoded.charset == "utf-8" and 1 <= decoded.replaced <= 3  # its bytes
            assert bench.changed_chars(decoded.text, text) <= 1
            assert sum("\uac00" <= ch <= "\ud7a3" for ch in decoded.text) >= hangul - 1


def test_links_are_chosen_per_question_with_categories_interleaved() -> None:
    docs = [{"category": c, "link": f"{c}{i}"} for c in ("blog", "news") for i in range(3)]
    rows = [{"question": "q1", "documents": docs}, {"question": "q2", "documents": docs[:1]}]
    assert select_links(rows, 3) == ["blog0", "news0", "blog1"]
    assert select_links(rows, 0) == []


def _words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def test_passages_fit_the_budget_keep_sentences_and_overlap() -> None:
    sentences = [f"문장 {i} 은 다섯 단어입니다." for i in range(30)]
    text = " ".join(sentences[:15]) + "\n" + " ".join(sentences[15:])
    assert split_sentences(text) == sentences
    passages = split_passages(text, _words, max_tokens=20, overlap=5)
    assert all(_words([p])[0] <= 20 for p in passages)
    assert all(s in passages[i] for i, p in enumerate(passages) for s in split_sentences(p))
    for prev, nxt in zip(passages, passages[1:], strict=False):
        assert split_sentences(prev)[-1] == split_sentences(nxt)[0]  # one sentence shared
    assert all(any(s in p for p in passages) for s in sentences)  # nothing lost
    long = " ".join(["단어"] * 50)
    assert [_words([p])[0] for p in split_passages(long, _words, 20)] == [20, 20, 10]


# --------------------------------------------------------------------------- the stages


def _own(sim: Any) -> list[str]:
    """``crawl.allow_networks`` for the simulator's page origins, and only those."""
    from seedtune_sandbox.demo import host_port

    return [host_port(url) for url in sim.page_origins.values()]


@pytest.mark.slow
def test_pages_ground_the_prompts_without_personal_data_and_are_fetched_once(
    workspace, tiny_models
) -> None:
    """search -> crawl -> rank -> synthesize against the simulator, whose page hosts serve
    Naver blog's frame page, EUC-KR publishers, redirects, 404s, a slow host, an oversized
    page, a robots.txt Disallow and planted personal data (sandbox/.../sim/pages.py): passages
    carry text found only in the pages, no planted value reaches a prompt or the
    instructions, and a rerun fetches nothing."""
    from seedtune_sandbox.demo import SIM_ENV, sim_config
    from seedtune_sandbox.sim import SimServer, pages

    with SimServer(sim_config(page_delay_s=0.3)) as sim:
        ws = workspace.params(
            search={
                "base_url": sim.naver_base_url,
                "categories": ["blog", "news", "kin"],
                "display": 10,
                "rps": 1000,
            },
            crawl={
                "per_question": 4,
                "host_rps": 100,
                "per_host": 4,
                "timeout_s": 5,
                "allow_networks": _own(sim),
            },
            llm={"base_url": sim.openai_base_url, "model": "sim-gpt"},
            rank={"model": "intfloat/multilingual-e5-small", "device": "cpu", "passage_tokens": 96},
            models={"intfloat/multilingual-e5-small": str(tiny_models.e5)},
        )
        questions = [
            f"전세 계약 {w} 주의할 점은 무엇인가요?"
            for w in (
                "갱신",
                "보증금",
                "확정일자",
                "전입신고",
                "중개수수료",
                "특약",
                "등기부등본",
                "근저당",
                "보증보험",
                "묵시적 갱신",
                "월세 전환",
                "깡통전세",
            )
        ]
        ws.write("data/questions.jsonl", [{"question": q, "seed": "전세"} for q in questions])
        for stage in ("search", "crawl", "rank", "synthesize"):
            proc = ws.run(stage, keys=SIM_ENV)
            assert proc.returncode == 0, f"{stage}: {proc.stderr[-2000:]}"
        crawl = ws.metrics("crawl")
        fetched = sim.stats()["pages"]["by_url"]
        links = [r["link"] for r in ws.rows("data/pages.jsonl")]
        statuses = Counter(r["status"] for r in ws.rows("data/pages.jsonl"))
        assert statuses["ok"] >= len(links) // 2 and len(links) == crawl["links"]
        assert crawl["pages"] == dict(sorted(statuses.items()))
        # robots.txt was honoured: no /private/ page was requested
        assert not [u for u in fetched if "/private/" in u]
        # pages' own sentences reached the ranked passages and the prompts
        only = set().union(*(pages.page_only_sentences(u) for u in links))
        ranked = [d for r in ws.rows("data/ranked.jsonl") for d in r["documents"]]
        assert any(d["kind"] == "page" for d in ranked)
        assert any(s in d["passage"] for d in ranked for s in only)
        prompts = sim.prompts()
        assert any(s in p for p in prompts for s in only)
        # no planted personal value anywhere downstream of the crawl
        planted = {v for u in links for v in pages.planted_pii(u)}
        assert planted and crawl["pii_masked"]
        texts = [
            *prompts,
            (ws.path / "data/instructions.jsonl").read_text(encoding="utf-8"),
            (ws.path / "data/pages.jsonl").read_text(encoding="utf-8"),
            (ws.path / "data/ranked.jsonl").read_text(encoding="utf-8"),
        ]
        leaked = sorted(v for v in planted if any(v in t for t in texts))
        assert not leaked, leaked
        # a rerun (pages.jsonl gone, as after `dvc repro -f crawl`) fetches nothing
        before = sim.stats()["pages"]
        (ws.path / "data/pages.jsonl").unlink()
        proc = ws.run("crawl", keys=SIM_ENV)
        assert proc.returncode == 0, proc.stderr[-2000:]
        after = sim.stats()["pages"]
        assert (after["requests"], after["robots"]) == (before["requests"], before["robots"])
        assert ws.metrics("crawl")["requests"] == 0
        assert [r["link"] for r in ws.rows("data/pages.jsonl")] == links


@pytest.mark.slow
def test_kill_9_mid_crawl_then_rerun_refetches_at_most_what_was_in_flight(workspace) -> None:
    """Every page is cached the moment it arrives: after ``kill -9`` the rerun asks again
    only for the pages that were in flight (at most ``crawl.concurrency``, each with the
    hops of its chain)."""
    import signal

    from seedtune_sandbox.demo import SIM_ENV, sim_config
    from seedtune_sandbox.sim import SimServer

    concurrency = 3
    with SimServer(sim_config(page_delay_s=0.2)) as sim:
        ws = workspace.params(
            search={
                "base_url": sim.naver_base_url,
                "categories": ["blog", "news", "kin"],
                "display": 10,
                "rps": 1000,
            },
            crawl={
                "per_question": 6,
                "host_rps": 8,
                "per_host": 1,
                "concurrency": concurrency,
                "timeout_s": 5,
                "allow_networks": _own(sim),
            },
        )
        ws.write(
            "data/questions.jsonl",
            [{"question": f"아파트 청약 {i}순위 조건은?", "seed": "청약"} for i in range(8)],
        )
        assert ws.run("search", keys=SIM_ENV).returncode == 0
        proc = ws.popen("crawl", keys=SIM_ENV)
        deadline = time.monotonic() + 60
        while sim.stats()["pages"]["requests"] < 12 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (ws.path / "data/pages.jsonl").exists()  # nothing that looks complete
        proc2 = ws.run("crawl", keys=SIM_ENV)
        assert proc2.returncode == 0, proc2.stderr[-2000:]
        twice = [u for u, n in sim.stats()["pages"]["by_url"].items() if n > 1]
        # a page in flight may have been one hop into its chain (a redirect, blog's frame
        # page): up to two addresses each
        assert len(twice) <= 2 * concurrency, twice
        assert len(ws.rows("data/pages.jsonl")) == ws.metrics("crawl")["links"]


def test_no_host_reachable_is_one_line_and_no_output(workspace) -> None:
    """Not one page host answers (this machine's network): the stage fails with one line,
    writes no pages.jsonl and caches nothing, so a later run asks again."""
    from support import last_line

    ws = workspace.params(
        crawl={
            "per_question": 2,
            "max_retries": 0,
            "timeout_s": 2,
            "allow_networks": ["127.0.0.1:9"],
        }
    )
    ws.write(
        "data/documents.jsonl",
        [
            {
                "question": "전세 계약 주의점?",
                "documents": [
                    {
                        "category": "blog",
                        "title": "t",
                        "description": "d",
                        "link": f"http://127.0.0.1:9/p{i}",
                    }
                    for i in range(2)
                ],
            }
        ],
    )
    proc = ws.run("crawl")
    assert proc.returncode == 2
    assert last_line(proc.stderr).startswith(
        "crawl: error: no page could be reached (http://127.0.0.1:9/p0 and 1 more)"
    )
    assert not (ws.path / "data/pages.jsonl").exists()
    assert not list((ws.path / "data/cache/crawl").rglob("seg-*.jsonl"))
