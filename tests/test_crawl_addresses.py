"""The crawler connects only to public addresses, and to what ``crawl.allow_networks`` lets
through: a hostile page, redirect, frame or robots.txt cannot make it fetch an internal
service (loopback servers stand in for a cloud metadata service and an admin page).

Server A is the page host the settings allow (by its exact ``127.0.0.1:port``); server B,
on another loopback port, is "internal" and holds a secret. Every way a link can lead to B
must end as ``blocked_address`` with B never asked anything and its secret nowhere.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support import last_line

from seedtune.core.cache import ResponseCache
from seedtune.core.config import CrawlConfig
from seedtune.core.errors import ConfigError
from seedtune.retrieval.addresses import AddressPolicy, refusal
from seedtune.retrieval.fetch import PageFetcher

SECRET = "AKIA-internal-secret-7f3a9c"
BODY = "<p>전세 계약 전에는 등기부등본으로 근저당 설정액을 확인해야 합니다.</p>" * 8
PAGE = f"<html><head><meta charset='utf-8'></head><body><article>{BODY}</article></body></html>"


class _Handler(BaseHTTPRequestHandler):
    """Records every request; ``routes`` maps a path to ``(status, headers, body)``."""

    routes: dict[str, tuple[int, dict[str, str], str]] = {}

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        server: _Server = self.server  # type: ignore[assignment]
        with server.lock:
            server.requests.append(self.path)
        code, headers, body = server.route(self.path)
        data = body.encode()
        self.send_response(code)
        for key, value in {
            "Content-Type": "text/html; charset=utf-8",
            "Content-Length": str(len(data)),
            **headers,
        }.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, route: Any, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), _Handler)
        self.route, self.lock, self.requests = route, threading.Lock(), []
        self.address = f"{host}:{self.server_address[1]}"
        self.url = f"http://{self.address}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def _internal(path: str) -> tuple[int, dict[str, str], str]:
    """An internal service: the secret on every path, robots.txt included."""
    if path == "/robots.txt":
        return 200, {"Content-Type": "text/plain"}, "User-agent: *\nAllow: /\n# " + SECRET
    return 200, {}, f"<html><body><article><p>{SECRET}</p>{BODY}</article></body></html>"


@pytest.fixture
def servers() -> Iterator[tuple[_Server, _Server]]:
    """``(A, B)``: A the allowed page host, whose routes point at B, the internal one."""
    internal = _Server(_internal)
    b = internal.url

    def page_host(path: str) -> tuple[int, dict[str, str], str]:
        routes = {
            "/robots.txt": (200, {"Content-Type": "text/plain"}, "User-agent: *\nAllow: /\n"),
            "/page": (200, {}, PAGE),
            "/to-metadata": (
                302,
                {"Location": f"{b}/latest/meta-data/iam/security-credentials/"},
                "",
            ),
            "/hop1": (301, {"Location": "/hop2"}, ""),
            "/hop2": (307, {"Location": f"http://localhost:{b.rsplit(':', 1)[1]}/admin/"}, ""),
            "/frame": (
                200,
                {},
                '<html><body><iframe id="mainFrame" '
                f'src="{b}/PostView.naver?blogId=a&amp;logNo=1"></iframe>'
                "</body></html>",
            ),
            "/to-ipv6": (
                302,
                {"Location": f"http://[::ffff:127.0.0.1]:{b.rsplit(':', 1)[1]}/admin/"},
                "",
            ),
        }
        return routes.get(path, (404, {}, "not found"))

    allowed = _Server(page_host)
    yield allowed, internal
    allowed.stop()
    internal.stop()


def _fetcher(tmp_path: Path, *allow: str, **kw: Any) -> PageFetcher:
    settings = CrawlConfig(
        user_agent="seedtune-test/1",
        host_rps=100.0,
        per_host=4,
        timeout_s=2.0,
        max_retries=0,
        allow_networks=allow,
        **kw,
    )
    return PageFetcher(settings, ResponseCache(tmp_path / "cache"))


def _cache_text(root: Path) -> str:
    return "".join(
        p.read_text(encoding="utf-8", errors="replace") for p in root.rglob("*") if p.is_file()
    )


def _hostile_links(a: str, b: str) -> dict[str, str]:
    port_b = b.rsplit(":", 1)[1]
    return {
        "link to B": f"{b}/admin/",
        "redirect to B": f"{a}/to-metadata",
        "redirect chain to B by name": f"{a}/hop1",
        "redirect to B as IPv4-mapped IPv6": f"{a}/to-ipv6",
        "frame on B": f"{a}/frame",
        "localhost": f"http://localhost:{port_b}/admin/",
        "IPv6 loopback": f"http://[::1]:{port_b}/admin/",
        "IPv4-mapped loopback": f"http://[::ffff:127.0.0.1]:{port_b}/",
        "metadata service": "http://169.254.169.254/latest/meta-data/",
        "unspecified": f"http://0.0.0.0:{port_b}/",
        "unique local IPv6": "http://[fd00::1]/",
        "link-local IPv6": "http://[fe80::1]/",
        "private": "http://10.0.0.1/",
        "shared": "http://100.64.0.1/",
    }


def test_no_link_redirect_or_frame_reaches_an_internal_address(servers, tmp_path: Path) -> None:
    a, b = servers
    links = _hostile_links(a.url, b.url)
    fetcher = _fetcher(tmp_path, a.address)
    out = fetcher.fetch_all([f"{a.url}/page", *links.values()])
    assert out[f"{a.url}/page"]["status"] == "ok"  # the allowed host is fetched as ever
    assert {name: out[url]["status"] for name, url in links.items()} == {
        name: "blocked_address" for name in links
    }
    assert b.requests == []  # the internal service was never asked anything
    # the hops on A were made (each checked before the next), nothing else was requested
    assert sorted(a.requests) == [
        "/frame",
        "/hop1",
        "/hop2",
        "/page",
        "/robots.txt",
        "/to-ipv6",
        "/to-metadata",
    ]
    assert fetcher.fetched == len(a.requests)
    assert out[links["redirect to B"]]["final_url"].startswith(b.url)
    assert SECRET not in _cache_text(tmp_path / "cache")
    assert fetcher.counts["blocked_address"] == len(links)
    # a refusal is an outcome like any other: cached, a rerun asks nothing
    again = _fetcher(tmp_path, a.address)
    assert {u: o["status"] for u, o in again.fetch_all(list(links.values())).items()} == {
        u: "blocked_address" for u in links.values()
    }
    assert again.fetched == 0 and b.requests == []


def test_a_robots_txt_on_an_internal_address_blocks_the_page(servers, tmp_path: Path) -> None:
    """A name that resolves to a refused address is refused when its robots.txt is asked
    for (the first request to it), and its page with it."""
    a, b = servers
    url = f"http://localhost:{b.url.rsplit(':', 1)[1]}/page"
    out = _fetcher(tmp_path, a.address).fetch_all([url])
    assert out[url]["status"] == "blocked_address" and b.requests == []
    # without robots.txt the page request itself is the one the resolver refuses
    out = _fetcher(tmp_path / "no-robots", a.address, respect_robots=False).fetch_all([url])
    assert out[url]["status"] == "blocked_address" and b.requests == []


def test_a_robots_txt_redirecting_to_an_internal_address_blocks_the_site(
    servers, tmp_path: Path
) -> None:
    a, b = servers
    site = _Server(
        lambda path: (
            (301, {"Location": f"{b.url}/robots.txt"}, "")
            if path == "/robots.txt"
            else (200, {}, PAGE)
        )
    )
    try:
        out = _fetcher(tmp_path, a.address, site.address).fetch_all([f"{site.url}/page"])
        assert out[f"{site.url}/page"]["status"] == "blocked_address"
        assert b.requests == [] and site.requests == ["/robots.txt"]
        assert SECRET not in _cache_text(tmp_path / "cache")
    finally:
        site.stop()


def test_allow_networks_lets_exactly_what_it_names_through(servers, tmp_path: Path) -> None:
    a, b = servers
    port_b = b.url.rsplit(":", 1)[1]
    links = [f"{b.url}/admin/", f"http://localhost:{port_b}/x", f"{a.url}/to-metadata"]
    out = _fetcher(tmp_path, a.address, b.address).fetch_all(links)
    assert [out[u]["status"] for u in links] == ["ok"] * 3  # localhost is 127.0.0.1 here
    assert SECRET in out[links[0]]["html"]
    # a network lets any port of it through; the stored refusals are asked again
    fresh = tmp_path / "fresh"
    assert _fetcher(fresh, a.address).fetch_all(links[:1])[links[0]]["status"] == (
        "blocked_address"
    )
    assert _fetcher(fresh, "127.0.0.0/8").fetch_all(links[:1])[links[0]]["status"] == "ok"
    by_name = _fetcher(tmp_path / "name", f"localhost:{port_b}").fetch_all(links[:2])
    assert [by_name[u]["status"] for u in links[:2]] == ["blocked_address", "ok"]


# ------------------------------------------------------------------------- the classifier

REFUSED = {
    "127.0.0.1": "loopback",
    "127.255.0.9": "loopback",
    "0.0.0.0": "unspecified",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.0.1": "private",
    "169.254.169.254": "link-local",
    "100.64.0.1": "shared",
    "224.0.0.251": "multicast",
    "239.255.255.250": "multicast",
    "255.255.255.255": "private",
    "240.0.0.1": "private",
    "192.0.2.1": "private",
    "198.18.0.1": "private",
    "::1": "loopback",
    "::": "unspecified",
    "::ffff:127.0.0.1": "loopback",
    "::ffff:169.254.169.254": "link-local",
    "::127.0.0.1": "IPv4-compatible",
    "2002:7f00:1::": "loopback",
    "2002:a00:1::": "private",
    "64:ff9b::a9fe:a9fe": "link-local",
    "64:ff9b:1::1": "NAT64",
    "fd00::1": "private",
    "fc00::1": "private",
    "fe80::1": "link-local",
    "fe80::1%1": "link-local",
    "fec0::1": "site-local",
    "ff02::1": "multicast",
    "ff0e::1": "multicast",
    "2001:db8::1": "private",
    "2001::1": "private",
    "100::1": "private",
}
PUBLIC = (
    "8.8.8.8",
    "93.184.215.14",
    "223.130.195.95",
    "1.1.1.1",
    "::ffff:8.8.8.8",
    "2002:808:808::1",
    "64:ff9b::808:808",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
)


@pytest.mark.parametrize("address", sorted(REFUSED))
def test_non_public_addresses_are_refused(address: str) -> None:
    why = refusal(address)
    assert why is not None and why.startswith(REFUSED[address]), why


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(address) is None


def test_allow_entries_are_networks_or_exact_addresses() -> None:
    policy = AddressPolicy.parse(
        ["10.0.0.0/8", "::1/128", "127.0.0.1:8080", "[::1]:81", "wiki.corp:443", " 192.168.1.7 "]
    )
    assert policy.refusal("10.9.8.7", 22) is None and policy.refusal("::1", 5) is None
    assert policy.refusal("127.0.0.1", 8080) is None
    assert policy.refusal("::ffff:127.0.0.1", 8080) is None  # the same address
    assert policy.refusal("127.0.0.1", 8081) == "loopback address 127.0.0.1"
    assert policy.refusal("127.0.0.2", 8080) is not None
    assert policy.refusal("192.168.1.7", 1) is None and policy.refusal("192.168.1.8", 1)
    assert policy.refusal("172.16.0.1", 443, host="wiki.corp.") is None  # by name
    assert policy.refusal("172.16.0.1", 80, host="wiki.corp") is not None
    assert policy.literal_refusal("127.1", 8080) is None  # as the C library reads it
    assert policy.literal_refusal("2130706434", 80) == "loopback address 127.0.0.2"
    assert policy.refusal("8.8.8.8", 53) is None


@pytest.mark.parametrize(
    "entry",
    [
        "127.0.0.1:0",
        "127.0.0.1:70000",
        "localhost",
        "x y",
        "[127.0.0.1]:80",
        "::1:80:",
        "300.1.1.1:80",
        "10.0.0.0/33",
        "",
        8080,
        None,
    ],
)
def test_a_bad_allow_entry_is_one_line_naming_the_setting(entry: Any) -> None:
    with pytest.raises(ConfigError, match=r"^crawl\.allow_networks: ") as err:
        AddressPolicy.parse([entry])
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="expected a list"):
        AddressPolicy.parse("127.0.0.1:8080")


# -------------------------------------------------------------------------------- proxies


class _Proxy(BaseHTTPRequestHandler):
    """A forward proxy: relays requests for the hosts in ``server.forward`` (loopback test
    servers) as they answer, and answers for every other host itself (nothing leaves the
    machine): a page saying "via proxy", a 404 for robots.txt."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        import http.client
        from urllib.parse import urlsplit

        server: Any = self.server
        with server.lock:
            server.requests.append(self.path)
        target = urlsplit(self.path)
        if target.netloc in server.forward:
            conn = http.client.HTTPConnection(target.netloc, timeout=5)
            conn.request("GET", target.path or "/")
            resp = conn.getresponse()
            code, data = resp.status, resp.read()
            headers = {k: v for k, v in resp.getheaders() if k.lower() != "content-length"}
            conn.close()
        else:
            missing = target.path == "/robots.txt"
            code = 404 if missing else 200
            data = (
                b"not found"
                if missing
                else f"<html><body><article><p>via proxy</p>{BODY}</article></body></html>".encode()
            )
            headers = {"Content-Type": "text/html; charset=utf-8"}
        self.send_response(code)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    server.daemon_threads = True
    server.lock, server.requests = threading.Lock(), []  # type: ignore[attr-defined]
    server.forward = set()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name in (
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "NO_PROXY",
        "ALL_PROXY",
        "HTTPS_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
    yield server  # type: ignore[misc]
    server.shutdown()
    server.server_close()


def test_pages_go_through_the_proxy_the_environment_names(proxy, servers, tmp_path: Path) -> None:
    """HTTP_PROXY is honoured as by the other clients; through it a literal refused IP, or
    a name that resolves here to one, is still refused; a name this machine cannot resolve
    is the proxy's to resolve."""
    a, b = servers
    port_b = b.url.rsplit(":", 1)[1]
    public = "http://93.184.215.14/page"  # never reached: the proxy answers for it
    unresolvable = "http://seedtune-test.invalid/page"
    refused = [
        f"{b.url}/admin/",
        f"http://localhost:{port_b}/admin/",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data/",
        f"{a.url}/to-metadata",
    ]
    proxy.forward.add(a.address)  # type: ignore[attr-defined]
    out = _fetcher(tmp_path, a.address).fetch_all([public, unresolvable, *refused])
    assert out[public]["status"] == "ok" and "via proxy" in out[public]["html"]
    assert out[unresolvable]["status"] == "ok"
    assert [out[u]["status"] for u in refused] == ["blocked_address"] * len(refused)
    asked = proxy.requests  # type: ignore[attr-defined]
    assert {"http://93.184.215.14/robots.txt", public, unresolvable} <= set(asked)
    assert not [u for u in asked if port_b in u or "169.254" in u or "::1" in u]
    # the allowed host was asked through the proxy too, its redirect refused there
    assert f"{a.url}/to-metadata" in asked and a.requests == ["/robots.txt", "/to-metadata"]
    assert b.requests == []


def test_no_proxy_hosts_are_fetched_directly(
    proxy, servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = servers
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    out = _fetcher(tmp_path, a.address).fetch_all([f"{a.url}/page", f"{b.url}/x"])
    assert (
        out[f"{a.url}/page"]["status"] == "ok" and "via proxy" not in out[f"{a.url}/page"]["html"]
    )
    assert out[f"{b.url}/x"]["status"] == "blocked_address"
    assert proxy.requests == [] and a.requests == ["/robots.txt", "/page"]  # type: ignore
    assert b.requests == []


# ------------------------------------------------------------------------------ the stage


def test_the_crawl_stage_records_refused_links_as_rejects(servers, workspace) -> None:
    """End to end: a bad entry is one line; refused links are rejects with their reason,
    counted in the metrics, their secret in no output or cache; the allow list set by
    environment variable (as a machine setting may be), and widened, fetches them."""
    a, b = servers
    links = [
        f"{a.url}/page",
        f"{b.url}/admin/",
        f"{a.url}/to-metadata",
        f"{a.url}/frame",
        "http://169.254.169.254/latest/meta-data/",
    ]
    ws = workspace.params(
        crawl={"per_question": len(links), "max_retries": 0, "timeout_s": 3, "host_rps": 100}
    )
    ws.write(
        "data/documents.jsonl",
        [
            {
                "question": "전세 계약 주의점?",
                "documents": [
                    {"category": "blog", "title": "t", "description": "d", "link": link}
                    for link in links
                ],
            }
        ],
    )
    env = "SEEDTUNE_CRAWL_ALLOW_NETWORKS"
    proc = ws.run("crawl", keys={env: '["127.0.0.1:80:80"]'})
    assert proc.returncode == 2
    assert last_line(proc.stderr).startswith("crawl: error: crawl.allow_networks: ")

    proc = ws.run("crawl", keys={env: json.dumps([a.address])})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = ws.rows("data/pages.jsonl")
    assert [r["status"] for r in rows] == ["ok"] + ["blocked_address"] * 4
    rejects = ws.rows("data/rejects/crawl.jsonl")
    assert [r["reason"] for r in rejects] == ["blocked_address"] * 4
    assert ws.metrics("crawl")["pages"] == {"blocked_address": 4, "ok": 1}
    assert b.requests == []
    assert SECRET not in _cache_text(ws.path / "data")

    proc = ws.run("crawl", keys={env: json.dumps([a.address, b.address])})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [r["status"] for r in ws.rows("data/pages.jsonl")] == ["ok"] * 4 + ["blocked_address"]
    assert sorted(b.requests) == [
        "/PostView.naver?blogId=a&logNo=1",
        "/admin/",
        "/latest/meta-data/iam/security-credentials/",
        "/robots.txt",
    ]


def test_a_proxy_named_by_a_loopback_name_is_connected_to(
    proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy the environment names is reached whatever its address (a corporate proxy
    is often on a private network), without allowing anything else on that host."""
    port = proxy.server_address[1]  # type: ignore[attr-defined]
    monkeypatch.setenv("HTTP_PROXY", f"http://localhost:{port}")
    public, other_port = "http://93.184.215.14/page", f"http://localhost:{port + 1}/admin/"
    out = _fetcher(tmp_path).fetch_all([public, other_port])
    assert out[public]["status"] == "ok" and "via proxy" in out[public]["html"]
    assert out[other_port]["status"] == "blocked_address"
    assert other_port not in proxy.requests  # type: ignore[attr-defined]
    assert public in proxy.requests  # type: ignore[attr-defined]
