"""Benchmark: our polite concurrent crawler vs a plain sequential fetch, side by side.

Run: ``python bench/run.py crawl``. A loopback "web" of several hosts (one port each), every
response delayed by ``latency_ms`` as a real site's would be. The tutorial's way fetches the
pages one after another with ``requests.get``; ours (:class:`PageFetcher`) keeps at most
``per_host`` requests in flight and ``host_rps`` a second on each host, all hosts at once,
plus one robots.txt per host. Reported: pages/s both ways, the ratio, the busiest host's
measured request rate over its run (at or under ``host_rps``) and the shortest gap between
two requests to one host (``1000 / host_rps`` ms, less the server's own jitter), and a
cached rerun.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PAGE = (
    "<html><head><meta charset='utf-8'></head><body><article>"
    + "<p>전세 계약 전에 등기부등본의 근저당 설정액을 확인하세요. 확정일자를 받으세요.</p>" * 30
    + "</article></body></html>"
).encode()


def _site(latency_s: float, stamps: dict[int, list[float]]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            stamps[self.server.server_address[1]].append(time.perf_counter())
            time.sleep(latency_s)
            body = b"User-agent: *\nAllow: /\n" if self.path == "/robots.txt" else PAGE
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _rate_and_min_gap(stamps: list[float]) -> tuple[float, float]:
    """A host's request rate over its run, ``(n - 1) / span``, and the shortest gap
    between two of its consecutive requests (seconds)."""
    stamps = sorted(stamps)
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    return (len(gaps) / (stamps[-1] - stamps[0]) if gaps else 0.0), min(gaps, default=0.0)


def run(
    hosts: int = 6,
    pages_per_host: int = 20,
    latency_ms: float = 150,
    host_rps: float = 4.0,
    per_host: int = 2,
) -> dict[str, Any]:
    """Fetch ``hosts * pages_per_host`` pages both ways; pages/s and the politeness kept."""
    import requests

    from seedtune.core.cache import ResponseCache
    from seedtune.core.config import CrawlConfig
    from seedtune.retrieval.fetch import PageFetcher

    stamps: dict[int, list[float]] = defaultdict(list)
    servers = [_site(latency_ms / 1000, stamps) for _ in range(hosts)]
    # one host's links after another, as a crawl's links come (blog.naver.com's together):
    # a crawler that lets one host's waiting pages hold its slots would crawl host by host
    urls = [
        f"http://127.0.0.1:{s.server_address[1]}/post/{i}"
        for s in servers
        for i in range(pages_per_host)
    ]
    try:
        t0 = time.perf_counter()
        with requests.Session() as session:
            for url in urls:  # the tutorial's way: one page after another
                session.get(url, timeout=10).raise_for_status()
        sequential_s = time.perf_counter() - t0
        stamps.clear()
        settings = CrawlConfig(
            user_agent="seedtune-bench/1",
            concurrency=32,
            per_host=per_host,
            host_rps=host_rps,
            timeout_s=10,
            max_retries=0,
            allow_networks=tuple(f"127.0.0.1:{s.server_address[1]}" for s in servers),
        )
        with tempfile.TemporaryDirectory() as tmp:
            fetcher = PageFetcher(settings, ResponseCache(tmp), desc="bench crawl")
            t0 = time.perf_counter()
            out = fetcher.fetch_all(urls)
            ours_s = time.perf_counter() - t0
            assert all(o["status"] == "ok" for o in out.values())
            measured = [_rate_and_min_gap(v) for v in stamps.values()]
            busiest = max(rate for rate, _ in measured)
            min_gap_ms = min(gap for _, gap in measured) * 1000
            t0 = time.perf_counter()
            PageFetcher(settings, ResponseCache(tmp), desc="bench crawl").fetch_all(urls)
            cached_s = time.perf_counter() - t0
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
    n = len(urls)
    # the fastest a polite crawler can go: each host's pages at host_rps, hosts in parallel
    floor_s = (pages_per_host + 1) / host_rps
    return {
        "pages": n,
        "hosts": hosts,
        "latency_ms": latency_ms,
        "host_rps": host_rps,
        "sequential_pages_per_s": n / sequential_s,
        "ours_pages_per_s": n / ours_s,
        "speedup_vs_sequential": sequential_s / ours_s,
        "ours_over_polite_floor": ours_s / floor_s,
        "busiest_host_rps_measured": busiest,
        "min_gap_same_host_ms": min_gap_ms,
        "cached_rerun_s": cached_s,
    }
