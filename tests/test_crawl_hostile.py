"""The crawler against hostile pages: no page, header, charset, URL or robots.txt ends the
crawl, each is a per-link outcome kept in the cache, so a rerun neither crashes nor asks
again.

A raw loopback server writes whatever bytes a case says (garbage status lines, junk headers,
bogus charsets), as a broken or hostile site would; the real web's cases named in issue 25
(robots.txt behind a redirect, a 3 MB robots.txt, ``charset=base64``, ``http://[::1/x``,
a huge Crawl-delay) each have a test, and a seeded fuzz run mixes them.
"""

from __future__ import annotations

import gzip
import random
import socketserver
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from seedtune.core.cache import ResponseCache
from seedtune.core.config import CrawlConfig
from seedtune.retrieval.crawl import CrawlResult, check_reachable, derived_rows, write_pages
from seedtune.retrieval.fetch import (
    NOT_CACHED,
    PageFetcher,
    clean_url,
    decode_html,
    page_host,
)

LOOPBACK = ("127.0.0.0/8", "::1/128")
TEXT = "전세 계약 전에는 등기부등본으로 근저당 설정액을 확인해야 합니다. " * 8
PAGE = f"<html><head><title>전세</title></head><body><p>{TEXT}</p></body></html>"


def response(
    code: int = 200,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    ctype: str | None = "text/html; charset=utf-8",
    reason: str = "OK",
) -> bytes:
    """An HTTP/1.1 response, written as bytes (so a test can also write what is not)."""
    lines = [f"HTTP/1.1 {code} {reason}"]
    if ctype is not None:
        lines.append(f"Content-Type: {ctype}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines.append("Connection: close")  # the server answers one request per connection
    if not any(k.lower() == "content-length" for k in headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
    return head + body


class RawSite(socketserver.ThreadingTCPServer):
    """A loopback HTTP server answering each path with the bytes in ``routes`` (a callable
    is called with the site's base URL), counting requests per path; unknown paths 404,
    and ``/robots.txt`` 404s unless routed."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.routes: dict[str, bytes | Callable[[str], bytes]] = {}
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _RawHandler)
        self.base = f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up early (a size cap) is part of the test


class _RawHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: RawSite = self.server  # type: ignore[assignment]
        line = self.rfile.readline(65537)
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass  # the request's headers: read, not looked at
        parts = line.split()
        path = parts[1].decode("latin-1") if len(parts) > 1 else ""
        with server.lock:
            server.hits[path] += 1
        answer = server.routes.get(path)
        if callable(answer):
            answer = answer(server.base)
        if answer is None:
            answer = response(404, b"not found", ctype="text/plain")
        self.wfile.write(answer)


@pytest.fixture
def raw_site() -> Iterator[RawSite]:
    server = RawSite()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _fetcher(tmp_path: Path, **kw: Any) -> PageFetcher:
    settings = CrawlConfig(
        **{
            "user_agent": "seedtune-test/1",
            "host_rps": 200.0,
            "per_host": 4,
            "timeout_s": 2.0,
            "max_retries": 0,
            "max_bytes": 100_000,
            "allow_networks": LOOPBACK,
            **kw,
        }
    )
    return PageFetcher(settings, ResponseCache(tmp_path / "cache"))


def _status(out: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {url: o["status"] for url, o in out.items()}


# -- robots.txt ---------------------------------------------------------------------------
def test_robots_txt_behind_redirects_is_honoured(raw_site: RawSite, tmp_path: Path) -> None:
    """http->https style and /robots.txt -> /robots.txt/ moves, across hosts (RFC 9309
    §2.3.1.2): the file at the end of the chain rules the first site."""
    other = RawSite()
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        raw_site.routes["/robots.txt"] = response(301, headers={"Location": "/robots.txt/"})
        raw_site.routes["/robots.txt/"] = response(302, headers={"Location": f"{other.base}/rules"})
        other.routes["/rules"] = response(
            200, b"User-agent: *\nDisallow: /private/\n", ctype="text/plain"
        )
        raw_site.routes["/page"] = response(200, PAGE.encode())
        links = [f"{raw_site.base}/page", f"{raw_site.base}/private/secret"]
        out = _fetcher(tmp_path).fetch_all(links)
        assert list(_status(out).values()) == ["ok", "robots"]
        assert raw_site.hits["/private/secret"] == 0 and other.hits["/rules"] == 1
    finally:
        other.shutdown()
        other.server_close()


def test_more_than_five_robots_redirects_mean_no_robots_txt(
    raw_site: RawSite, tmp_path: Path
) -> None:
    """RFC 9309: after five consecutive redirects the file MAY be taken as unavailable,
    which (§2.3.1.3, as a 4xx) allows everything; the answer is kept like a 404's."""
    raw_site.routes["/robots.txt"] = response(301, headers={"Location": "/r1"})
    for i in range(1, 10):
        raw_site.routes[f"/r{i}"] = response(302, headers={"Location": f"/r{i + 1}"})
    raw_site.routes["/page"] = response(200, PAGE.encode())
    out = _fetcher(tmp_path).fetch_all([f"{raw_site.base}/page"])
    assert _status(out) == {f"{raw_site.base}/page": "ok"}
    assert raw_site.hits["/robots.txt"] == 1 and raw_site.hits["/r5"] == 1
    assert raw_site.hits["/r6"] == 0  # six requests: the file and five hops
    _fetcher(tmp_path).fetch_all([f"{raw_site.base}/other"])
    assert raw_site.hits["/robots.txt"] == 1  # kept, as a 404 is


def test_a_3_mb_robots_txt_is_honoured_from_its_first_500_kib(
    raw_site: RawSite, tmp_path: Path
) -> None:
    """A 3 MB robots.txt with ``Disallow: /`` on line 2 used to allow everything."""
    filler = b"# " + b"x" * 97 + b"\n"
    raw_site.routes["/robots.txt"] = response(
        200, b"User-agent: *\nDisallow: /\n" + filler * 30_000, ctype="text/plain"
    )
    out = _fetcher(tmp_path).fetch_all([f"{raw_site.base}/page"])
    assert _status(out) == {f"{raw_site.base}/page": "robots"}
    assert raw_site.hits["/page"] == 0


def test_rules_past_the_first_500_kib_are_not_honoured(raw_site: RawSite, tmp_path: Path) -> None:
    """Only the first 500 KiB count, and a line cut at the limit is no rule."""
    filler = b"# " + b"x" * 97 + b"\n"
    head = b"User-agent: *\nDisallow: /early\n" + filler * 5119 + b"#" + b"y" * 56 + b"\n"
    assert len(head) + len(b"Disallow: /") == 500 * 1024
    # cut at the limit, "Disallow: /private" would be "Disallow: /": the partial line goes
    raw_site.routes["/robots.txt"] = response(
        200, head + b"Disallow: /private\nDisallow: /page\n" + filler * 100, ctype="text/plain"
    )
    raw_site.routes["/page"] = response(200, PAGE.encode())
    out = _fetcher(tmp_path).fetch_all([f"{raw_site.base}/early/x", f"{raw_site.base}/page"])
    assert list(_status(out).values()) == ["robots", "ok"]


# -- Crawl-delay ----------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_a_huge_crawl_delay_skips_the_host_for_this_run(
    raw_site: RawSite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A host asking for more than ``crawl.max_crawl_delay_s`` does not stall the crawl:
    its links are ``crawl_delay_too_long`` (one warning), not cached, and a run allowing
    that delay fetches them; the stage does not mistake it for no network."""
    raw_site.routes["/robots.txt"] = response(
        200, b"User-agent: *\nCrawl-delay: 86400\nDisallow: /private/\n", ctype="text/plain"
    )
    for i in range(3):
        raw_site.routes[f"/page{i}"] = response(200, PAGE.encode())
    links = [f"{raw_site.base}/page{i}" for i in range(3)] + [f"{raw_site.base}/private/x"]
    fetcher = _fetcher(tmp_path)
    with caplog.at_level("WARNING"):
        out = fetcher.fetch_all(links)
    assert list(_status(out).values()) == ["crawl_delay_too_long"] * 3 + ["robots"]
    assert sum(raw_site.hits[f"/page{i}"] for i in range(3)) == 0 and fetcher.fetched == 1
    assert sum("Crawl-delay" in r.getMessage() for r in caplog.records) == 1

    c = CrawlConfig(max_bytes=100_000)
    result = CrawlResult(
        links[:3], derived_rows(tmp_path / "cache", c), _fetcher(tmp_path), c.min_chars
    ).run()
    check_reachable(result)  # the site's answer, not this machine's network: no error
    assert {row["status"] for row in result} == {"crawl_delay_too_long"}


def test_links_skipped_for_their_crawl_delay_are_fetched_under_a_higher_cap(
    raw_site: RawSite, tmp_path: Path
) -> None:
    raw_site.routes["/robots.txt"] = response(
        200, b"User-agent: *\nCrawl-delay: 0.2\n", ctype="text/plain"
    )
    for i in range(3):
        raw_site.routes[f"/page{i}"] = response(200, PAGE.encode())
    links = [f"{raw_site.base}/page{i}" for i in range(3)]
    out = _fetcher(tmp_path, max_crawl_delay_s=0.1).fetch_all(links)
    assert set(_status(out).values()) == {"crawl_delay_too_long"}
    again = _fetcher(tmp_path, max_crawl_delay_s=10.0).fetch_all(links)
    assert set(_status(again).values()) == {"ok"}  # nothing skipped was kept
    assert raw_site.hits["/robots.txt"] == 1  # the robots.txt answer was


# -- charsets -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "ctype",
    [
        "text/html; charset=base64",
        "text/html; charset=rot13",
        "text/html; charset=hex",
        "text/html; charset=zlib",
        "text/html; charset=undefined",
        "text/html; charset=utf-7",
        "text/html; charset=idna",
        "text/html; charset=" + "x" * 300,
        'text/html; charset=""',
        "text/html; charset=utf-32",
        "text/html; charset=utf-16",
        "text/html;;;charset==;=",
        "text/html; charset=unicode_escape",
        "text/html; charset=\udcff\udcfe",
    ],
)
def test_a_bogus_declared_charset_is_ignored(ctype: str) -> None:
    """WHATWG: a label no browser knows is ignored; Python's bytes-to-bytes and odd text
    codecs are no web encodings. A UTF-8 page stays readable."""
    decoded = decode_html(PAGE.encode(), ctype)
    assert decoded.text == PAGE and decoded.charset == "utf-8"


@pytest.mark.parametrize("meta", ["undefined", "base64", "utf-16", "UTF-16LE", "utf-32", "rot13"])
def test_a_bogus_or_utf16_meta_charset_reads_utf8(meta: str) -> None:
    """WHATWG's prescan: a ``<meta>`` saying UTF-16 means UTF-8 (it was read as ASCII)."""
    page = PAGE.replace("<head>", f'<head><meta charset="{meta}">').encode()
    decoded = decode_html(page, "text/html")
    assert decoded.text == page.decode() and decoded.charset == "utf-8"


def test_utf16_pages_are_read_by_their_bom_or_bytes() -> None:
    assert decode_html(PAGE.encode("utf-16"), "text/html").text == PAGE  # BOM
    assert decode_html(PAGE.encode("utf-16-le"), "text/html; charset=utf-16").text == PAGE
    # the BOM beats the header (WHATWG's order)
    assert decode_html(b"\xef\xbb\xbf" + PAGE.encode(), "text/html; charset=cp949").text == PAGE


def test_charsets_through_the_fetcher(raw_site: RawSite, tmp_path: Path) -> None:
    cases = {
        "/b64": response(200, PAGE.encode(), ctype="text/html; charset=base64"),
        "/rot13": response(200, PAGE.encode(), ctype="text/html; charset=rot13"),
        "/undef": response(
            200,
            PAGE.replace("<head>", '<head><meta charset="undefined">').encode(),
            ctype="text/html",
        ),
        "/u16meta": response(
            200, PAGE.replace("<head>", '<head><meta charset="utf-16">').encode(), ctype="text/html"
        ),
        "/u16hdr": response(200, PAGE.encode(), ctype="text/html; charset=utf-16"),
        "/noise": response(200, random.Random(7).randbytes(20_000), ctype="text/html"),
    }
    raw_site.routes.update(cases)
    links = [f"{raw_site.base}{path}" for path in cases]
    out = _fetcher(tmp_path).fetch_all(links)
    assert list(_status(out).values()) == ["ok"] * 5 + ["bad_charset"]
    for link in links[:5]:
        assert TEXT in out[link]["html"] and out[link]["charset"] == "utf-8"
    before = sum(raw_site.hits.values())
    assert _status(_fetcher(tmp_path).fetch_all(links)) == _status(out)
    assert sum(raw_site.hits.values()) == before  # bad_charset is kept too


# -- URLs and headers ----------------------------------------------------------------------
BAD_URLS = [
    "http://[::1/x",
    "http://exa mple.com/",
    "http://a:99999/",
    "http://",
    "http:///x",
    "//no-scheme/x",
    "http://a\x01b.com/",
    "http://a.com/\x00x",
    "http://a..b/",
    "http://256.1.1.1/",
    "http://2130706433/",
    "http://xn--zz.com/",
    "http://a.com\\@b.com/",
    "http://a.com/" + "x" * 9000,
    "ftp://a.com/",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "",
    "   ",
    "http://:80/",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_malformed_url_is_no_address(url: str) -> None:
    assert clean_url(url) is None and page_host(url) is None


def test_urls_are_cleaned_as_browsers_read_them() -> None:
    assert clean_url(12345) is None and page_host(12345) is None  # type: ignore[arg-type]
    assert clean_url("http://한국.kr/경로?q=가") == "http://한국.kr/경로?q=가"
    assert page_host("http://한국.kr/경로") == "한국.kr"
    assert clean_url(" \thttp://User:pw@EXAMPLE.com:80/a\nb#top ") == "http://example.com/ab"
    assert clean_url("https://[::1]:8443/x") == "https://[::1]:8443/x"
    assert clean_url("http://127.0.0.1:8000/p?a=1") == "http://127.0.0.1:8000/p?a=1"


def test_malformed_links_redirects_and_headers_are_outcomes(
    raw_site: RawSite, tmp_path: Path
) -> None:
    raw_site.routes.update(
        {
            "/to-bad-v6": response(301, headers={"Location": "http://[::1/x"}),
            "/to-space": response(302, headers={"Location": "http://exa mple.com/"}),
            "/to-bytes": response(302, headers={"Location": "\udcff\udcfe/x"}),
            "/to-empty": response(301, headers={"Location": ""}),
            "/relative": response(307, headers={"Location": "page"}),
            "/page": response(200, PAGE.encode()),
            "/len-neg": response(200, PAGE.encode(), headers={"Content-Length": "-5"}),
            "/len-junk": response(200, PAGE.encode(), headers={"Content-Length": "12abc"}),
            "/retry-junk": response(503, b"busy", headers={"Retry-After": "soon, maybe\x7f"}),
            "/ctype": response(200, PAGE.encode(), ctype="text/html; charset; ;=;\udcff"),
            "/status": b"HTTP/1.1 abc Nope\r\n\r\n",
            "/garbage": b"\x00\x01\x02 hello\r\n\r\n",
            "/frame": response(
                200, b'<iframe id="mainFrame" src="http://[::1/x"></iframe>' + PAGE.encode()
            ),
        }
    )
    pages = {path: f"{raw_site.base}{path}" for path in raw_site.routes}
    links = [*pages.values(), *BAD_URLS]
    out = _fetcher(tmp_path).fetch_all(links)
    status = _status(out)
    assert {p: status[u] for p, u in pages.items()} == {
        "/to-bad-v6": "bad_url",
        "/to-space": "bad_url",
        "/to-bytes": "bad_url",
        "/to-empty": "http_301",
        "/relative": "ok",
        "/page": "ok",
        "/len-neg": "bad_response",
        "/len-junk": "bad_response",
        "/retry-junk": "http_503",
        "/ctype": "ok",
        "/status": "bad_response",
        "/garbage": "bad_response",
        "/frame": "ok",
    }
    assert out[pages["/to-bad-v6"]]["final_url"] == pages["/to-bad-v6"]
    assert {status[u] for u in BAD_URLS} == {"bad_url"}
    before = raw_site.hits.copy()
    again = _fetcher(tmp_path)
    assert _status(again.fetch_all(links)) == status and again.fetched == 0
    assert raw_site.hits == before


def test_an_unexpected_error_is_the_links_outcome_and_logged(
    raw_site: RawSite, tmp_path: Path, monkeypatch, caplog
) -> None:
    """A bug met on one page (here, a decoder that raises) ends as that link's
    ``fetch_error``, named in a warning; the other pages are fetched, and fixed code (a new
    code identity) asks again."""
    import seedtune.retrieval.fetch as fetch_module

    raw_site.routes["/page"] = response(200, PAGE.encode())
    raw_site.routes["/boom"] = response(200, PAGE.encode())
    real = fetch_module.decode_html

    def decode(body: bytes, ctype: str | None = None) -> Any:
        if b"boom" in body:
            raise KeyError("boom")
        return real(body, ctype)

    raw_site.routes["/boom"] = response(200, b"<p>boom</p>" + PAGE.encode())
    monkeypatch.setattr(fetch_module, "decode_html", decode)
    links = [f"{raw_site.base}/boom", f"{raw_site.base}/page"]
    with caplog.at_level("WARNING"):
        out = _fetcher(tmp_path).fetch_all(links)
    assert list(_status(out).values()) == ["fetch_error", "ok"]
    assert out[links[0]]["error"] == "KeyError"
    assert any(links[0] in r.getMessage() and "KeyError" in r.getMessage() for r in caplog.records)
    assert _fetcher(tmp_path).fetch_all(links[:1])[links[0]]["status"] == "fetch_error"
    assert raw_site.hits["/boom"] == 1  # kept under the same code
    # the crawl stage's derived row is not kept either: it would outlive the fix
    c = CrawlConfig(max_bytes=100_000)
    rows = derived_rows(tmp_path / "cache", c)
    result = CrawlResult(links[:1], rows, _fetcher(tmp_path), c.min_chars).run()
    assert [r["status"] for r in result] == ["fetch_error"]
    assert raw_site.hits["/boom"] == 1

    monkeypatch.setattr(fetch_module, "_CODE_ID", ["another"])
    monkeypatch.setattr(fetch_module, "decode_html", real)
    result = CrawlResult(links[:1], rows, _fetcher(tmp_path), c.min_chars).run()
    assert [r["status"] for r in result] == ["ok"] and raw_site.hits["/boom"] == 2


# -- fuzz ------------------------------------------------------------------------------------
LABELS = [
    "utf-8",
    "UTF8",
    "euc-kr",
    "cp949",
    "base64",
    "rot13",
    "hex",
    "zlib",
    "bz2",
    "uu",
    "undefined",
    "utf-7",
    "utf-16",
    "utf-16be",
    "utf-32",
    "idna",
    "punycode",
    "latin1",
    "x-user-defined",
    "'\"",
    "",
    "%00",
    "utf-8\x7f",
    "a" * 200,
    "iso-2022-kr",
    "unicode_escape",
    "koi8-r",
    "big5",
    "\udcc3\udca9",
]
FUZZ_URLS = [
    *BAD_URLS,
    "http://[::1]x/",
    "http://[",
    "http://]/",
    "http://a:b@/",
    "http://a:-1/",
    "http://a:80:80/",
    "https://%zz/",
    "http://a%2fb/",
    "HtTp://",
    "http://\u200b/",
    "http://☃.net/",
    "http://a.com:99999999999999999999/",
    "http://0x7f.1/",
    "http://[::1]:0/",
    "\x00http://x/",
    "http://x/\r\nHost: y",
]


def _fuzz_response(rng: random.Random, base: str, paths: list[str]) -> bytes:
    """A response made of pieces, each valid or broken at random."""
    code = rng.choice([200, 200, 200, 301, 302, 307, 404, 503, 999, 204, 100])
    body = rng.choice(
        [
            PAGE.encode(),
            PAGE.encode("cp949"),
            PAGE.encode("utf-16"),
            rng.randbytes(rng.randint(0, 3000)),
            b"",
            PAGE.encode()[:77],
            f"<meta charset='{rng.choice(LABELS)}'>{PAGE}".encode("utf-8", "surrogateescape"),
            gzip.compress(PAGE.encode()),
        ]
    )
    headers: dict[str, str] = {}
    if code in (301, 302, 307):
        headers["Location"] = rng.choice(
            [
                *FUZZ_URLS,
                "",
                "/",
                f"{base}{rng.choice(paths)}",
                rng.choice(paths),
                "?x",
                "#",
                "../../..",
                "\udcff",
            ]
        )
    if rng.random() < 0.3:
        headers["Content-Length"] = rng.choice(
            ["-1", "x", "1e3", " 12 ", "99999999999999", str(len(body) + 5), "0", "²"]
        )
    if rng.random() < 0.2:
        headers["Retry-After"] = rng.choice(["", "-5", "nan", "inf", "1e400", "Mon, 99 Foo", "0"])
    if rng.random() < 0.2:
        headers["Content-Encoding"] = rng.choice(["gzip", "br", "deflate", "zstd", "x"])
    if rng.random() < 0.2:
        headers["Transfer-Encoding"] = rng.choice(["chunked", "gzip, chunked", "bogus"])
    ctype = rng.choice(
        [
            "text/html",
            None,
            "",
            "application/pdf",
            "text/html;;",
            f"text/html; charset={rng.choice(LABELS)}",
            f'TEXT/HTML ; CHARSET="{rng.choice(LABELS)}"',
        ]
    )
    raw = response(code, body, headers, ctype)
    garble = rng.random()
    if garble < 0.1:
        return rng.randbytes(rng.randint(1, 200)) + b"\r\n\r\n"
    if garble < 0.2:  # a header line of raw bytes
        cut = raw.index(b"\r\n") + 2
        return raw[:cut] + rng.randbytes(rng.randint(1, 60)) + b"\r\n" + raw[cut:]
    if garble < 0.25:
        return raw.replace(
            b"HTTP/1.1", rng.choice([b"HTTP/2", b"HTTP/1.1 ", b"ICY", b"HTTP/9.9"]), 1
        )
    return raw


def test_fuzzed_pages_headers_urls_and_charsets_never_fail_the_crawl(
    raw_site: RawSite, tmp_path: Path
) -> None:
    """Seeded: every link gets an outcome, the crawl stage writes its rows, rejects and
    metrics, and a second run with the same cache asks the server nothing for any kept
    outcome and gives the same outcomes."""
    rng = random.Random(25)
    paths = [f"/f{i}" for i in range(120)]
    for path in paths:
        raw_site.routes[path] = _fuzz_response(rng, raw_site.base, paths)
    links = [f"{raw_site.base}{p}" for p in paths] + FUZZ_URLS
    rng.shuffle(links)

    c = CrawlConfig(max_bytes=100_000)
    first = CrawlResult(
        links, derived_rows(tmp_path / "cache", c), _fetcher(tmp_path), c.min_chars
    ).run()
    rows = list(first)
    assert [r["link"] for r in rows] == list(dict.fromkeys(links))
    assert all(isinstance(r["status"], str) for r in rows)
    tally = write_pages(first, tmp_path / "pages.jsonl", tmp_path / "rejects.jsonl")
    metrics = tally.metrics(first.fetcher)
    assert sum(metrics["pages"].values()) == metrics["links"] == len(rows)
    rejects = (tmp_path / "rejects.jsonl").read_text().splitlines()
    assert len(rejects) == sum(r["status"] != "ok" for r in rows)
    assert {"bad_url", "bad_response", "ok"} <= set(metrics["pages"])

    asked_again = {
        urlpath
        for r in rows
        if r["status"] in NOT_CACHED
        for urlpath in [r["link"].removeprefix(raw_site.base)]
    }
    before = raw_site.hits.copy()
    fetcher = _fetcher(tmp_path)
    out = fetcher.fetch_all(links)
    # a row is "empty" where its page was fetched "ok" but had too little text
    assert {u: o["status"] for u, o in out.items()} == {
        r["link"]: "ok" if r["status"] == "empty" else r["status"] for r in rows
    }
    changed = {p for p in raw_site.hits if raw_site.hits[p] != before[p]}
    assert changed <= asked_again, changed
