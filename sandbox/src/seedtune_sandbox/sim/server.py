"""Loopback HTTP simulator for the OpenAI Chat Completions and Naver Search APIs.

Stdlib ``http.server`` only.  In-process use::

    from seedtune_sandbox.sim import SimConfig, SimServer
    with SimServer(SimConfig(port=0)) as sim:
        client = openai.OpenAI(base_url=sim.openai_base_url, api_key="k")

Command line (runs until SIGTERM/SIGINT)::

    python -m seedtune_sandbox.sim --port 0 --port-file /tmp/sim.port --fault-429-rate 0.1

Admin endpoints: ``GET /_sim/health``, ``GET /_sim/stats``, ``POST /_sim/reset``.

With ``SimConfig.pages`` (default on; ``--no-pages``) it also serves the web pages behind the
search links, one loopback listener per origin (:attr:`SimServer.page_origins`); see
:mod:`seedtune_sandbox.sim.pages` for the pages and their faults.
"""

from __future__ import annotations

import argparse
import copy
import errno
import html
import json
import os
import random
import signal
import socket
import socketserver
import sys
import threading
import time
import uuid
from dataclasses import dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from seedtune.core.records import atomic_write_text
from seedtune_sandbox.sim import batches, naver_api, openai_api, pages
from seedtune_sandbox.sim.workspace import workspace_sim

_MAX_BODY = 64 * 1024 * 1024
_FAULT_KINDS = (
    "429",
    "5xx",
    "timeout",
    "truncated",
    "fenced",
    "surrogate",
    "echo",
    "refusal",
    "quota",
)


@dataclass
class SimConfig:
    """Simulator settings; every rate is a probability in [0, 1] drawn per answered request."""

    host: str = "127.0.0.1"
    port: int = 0
    latency_ms: float = 0
    seed: int = 0
    openai_api_key: str | None = None
    naver_client_id: str | None = None
    naver_client_secret: str | None = None
    fault_429_rate: float = 0.0
    retry_after_s: float = 1.0
    fault_5xx_rate: float = 0.0
    fault_timeout_rate: float = 0.0
    timeout_s: float = 30.0
    fault_truncated_rate: float = 0.0
    fault_fenced_rate: float = 0.0
    # a lone surrogate escape ("\\ud83d", half an emoji) in a text field of a 200 answer
    fault_surrogate_rate: float = 0.0
    # a 400 whose error message echoes the request's credentials back (some proxies do)
    fault_echo_rate: float = 0.0
    # the model declines: message.refusal set, content null (OpenAI's structured outputs)
    fault_refusal_rate: float = 0.0
    openai_quota: int | None = None
    naver_quota: int | None = None
    empty_rate: float = 0.1
    judge: str = "hash"
    log_requests: bool = False  # one stderr line per request; the CLI turns it on (--quiet: off)
    # web pages behind the search links, on extra loopback listeners (see sim.pages)
    pages: bool = True
    page_delay_s: float = 1.0  # every response of the "slow" origin waits this long
    # page origin name -> port (0 or absent: a free one); `seedtune sim --workspace` brings a
    # demo workspace's page servers back where its crawl.allow_networks and cached links say
    page_ports: dict[str, int] | None = None
    # /v1/files and /v1/batches (False: 404 there, as most non-OpenAI servers answer); the
    # seconds a batch spends validating and in progress (see sim.batches for its faults)
    batches: bool = True
    batch_in_progress_s: float = 0.2

    def __post_init__(self) -> None:
        rates = [
            self.fault_429_rate,
            self.fault_5xx_rate,
            self.fault_timeout_rate,
            self.fault_truncated_rate,
            self.fault_fenced_rate,
            self.fault_surrogate_rate,
            self.fault_echo_rate,
            self.fault_refusal_rate,
            self.empty_rate,
        ]
        if any(not 0.0 <= r <= 1.0 for r in rates):
            raise ValueError("fault/empty rates must be within [0, 1]")
        if sum(rates[:-1]) > 1.0 + 1e-9:
            raise ValueError("the fault rates must sum to at most 1")
        if self.page_delay_s < 0:
            raise ValueError("page_delay_s must be >= 0")
        if self.judge not in ("hash", "first", "reference"):
            raise ValueError("judge must be 'hash', 'first' or 'reference'")


class _ApiState:
    def __init__(self, name: str, seed: int, quota: int | None) -> None:
        self.name = name
        self.seed = seed
        self.quota = quota
        self.reset()

    def reset(self) -> None:
        self.rng = random.Random(f"{self.seed}:{self.name}")
        self.ok = 0
        self.served = 0  # 200 answers, what the quota counts
        self.auth_fail = 0
        self.faults = dict.fromkeys(_FAULT_KINDS, 0)

    def snapshot(self) -> dict[str, Any]:
        return {"ok": self.ok, "faults": dict(self.faults), "auth_fail": self.auth_fail}


class _Stats:
    """Counters, quotas and the seeded fault RNGs, all behind one lock."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.lock = threading.Lock()
        self.apis = {
            "chat": _ApiState("chat", cfg.seed, cfg.openai_quota),
            "search": _ApiState("search", cfg.seed, cfg.naver_quota),
        }
        self.batches = batches.BatchStore(
            cfg.seed, cfg.judge, in_progress_s=cfg.batch_in_progress_s
        )
        self._reset_pages()

    def _reset_pages(self) -> None:
        self.prompts: list[str] = []
        self.page_requests = 0
        self.page_by_url: dict[str, int] = {}
        self.page_status: dict[str, int] = {}
        self.robots = 0
        self.robots_by_origin: dict[str, int] = {}

    def reset(self) -> None:
        with self.lock:
            for api in self.apis.values():
                api.reset()
            self._reset_pages()
        self.batches.reset()

    def prompt(self, request: Any) -> None:
        """Keep the text of every chat message received (tests check what prompts carry)."""
        if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
            return
        text = "\n".join(str(m.get("content")) for m in request["messages"] if isinstance(m, dict))
        with self.lock:
            self.prompts.append(text)

    def page_hit(self, origin: str, url: str, status: int, robots: bool) -> None:
        with self.lock:
            if robots:
                self.robots += 1
                self.robots_by_origin[origin] = self.robots_by_origin.get(origin, 0) + 1
                return
            self.page_requests += 1
            self.page_by_url[url] = self.page_by_url.get(url, 0) + 1
            self.page_status[str(status)] = self.page_status.get(str(status), 0) + 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            out: dict[str, Any] = {name: api.snapshot() for name, api in self.apis.items()}
            out["pages"] = {
                "requests": self.page_requests,
                "by_url": dict(self.page_by_url),
                "status": dict(self.page_status),
                "robots": self.robots,
                "robots_by_origin": dict(self.robots_by_origin),
            }
        out["batch"] = self.batches.snapshot()
        return out

    def auth_fail(self, api: str) -> None:
        with self.lock:
            self.apis[api].auth_fail += 1

    def take(self, api: str) -> tuple[str | None, int]:
        """Decide and count the outcome of an answerable request: (fault kind or None, 5xx
        status). Under one lock, so concurrent requests never overshoot a quota."""
        with self.lock:
            st = self.apis[api]
            kind, status = self._decide(st, api)
            if kind is None:
                st.ok += 1
            else:
                st.faults[kind] += 1
            if kind in (None, "timeout", "truncated", "fenced", "surrogate", "refusal"):
                st.served += 1
            return kind, status

    def _decide(self, st: _ApiState, api: str) -> tuple[str | None, int]:
        cfg = self.cfg
        if st.quota is not None and st.served >= st.quota:
            return "quota", 0
        u = st.rng.random()
        status = st.rng.choice((500, 502, 503))
        edge = 0.0
        fenced = cfg.fault_fenced_rate if api == "chat" else 0.0
        for kind, rate in (
            ("429", cfg.fault_429_rate),
            ("5xx", cfg.fault_5xx_rate),
            ("timeout", cfg.fault_timeout_rate),
            ("truncated", cfg.fault_truncated_rate),
            ("fenced", fenced),
            ("surrogate", cfg.fault_surrogate_rate),
            ("echo", cfg.fault_echo_rate),
            ("refusal", cfg.fault_refusal_rate if api == "chat" else 0.0),
        ):
            edge += rate
            if u < edge:
                return kind, status
        return None, 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        cfg: SimConfig,
        stats: _Stats,
        stop_event: threading.Event,
        handler: type[BaseHTTPRequestHandler] | None = None,
        port: int | None = None,
        origin: str = "",
        registry: pages.PageRegistry | None = None,
    ) -> None:
        self.cfg = cfg
        self.stats = stats
        self.stop_event = stop_event
        self.log_lock = threading.Lock()
        self.origin = origin  # the page origin this listener stands for ("" = the APIs)
        self.registry = registry or pages.PageRegistry()
        self.page_origins: dict[str, str] = {}
        if ":" in cfg.host:
            self.address_family = socket.AF_INET6
        super().__init__((cfg.host, cfg.port if port is None else port), handler or _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that hangs up (a crawler's size cap or timeout, a closed keep-alive) is
        # what clients do, not a simulator error worth a traceback
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def server_bind(self) -> None:
        # Skip HTTPServer's getfqdn(): a reverse DNS lookup can stall on machines without network.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "seedtune-sim/0.1"
    sys_version = ""
    timeout = 75  # idle keep-alive connections are closed after this many seconds
    # Headers and body go out in two writes; with Nagle's algorithm on, the second waits for
    # the client's delayed ACK (~40 ms), which would swamp any latency we simulate.
    disable_nagle_algorithm = True
    server: _Server

    # --- plumbing -------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the default access log (it would print the query string); see ``_log``."""

    def _log(self, status: int, started: float) -> None:
        if not self.server.cfg.log_requests:
            return
        path = urlsplit(self.path).path
        ms = (time.perf_counter() - started) * 1000
        with self.server.log_lock:
            sys.stderr.write(f"sim {self.command} {path} {status} {ms:.0f}ms\n")
            sys.stderr.flush()

    def _read_body(self) -> bytes:
        # a batch input file may be up to batches.MAX_BYTES (the API's limit), plus its form
        cap = batches.MAX_BYTES + (1 << 20) if self.path.startswith("/v1/files") else _MAX_BODY
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > cap:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > cap:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.server.stop_event.wait(seconds)

    def _send(
        self,
        status: int,
        payload: Any,
        *,
        headers: dict[str, str] | None = None,
        truncate: bool = False,
        content_type: str = "application/json",
    ) -> None:
        if isinstance(payload, bytes | str):
            body = payload.encode("utf-8") if isinstance(payload, str) else payload
        else:
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        if truncate:
            cut = max(len(body) // 2, 1)
            while cut > 1 and (body[cut] & 0xC0) == 0x80:
                cut -= 1
            body = body[:cut]
        self._sleep(self.server.cfg.latency_ms / 1000)
        try:
            self.send_response(status)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        self._log(status, self._started)

    # --- dispatch ---------------------------------------------------------------------------
    def _dispatch(self) -> None:
        self._started = time.perf_counter()
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._send(
                400,
                {
                    "error": {
                        "message": "Malformed request body.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
            )
            return
        path = urlsplit(self.path).path
        try:
            if path.startswith("/_sim/"):
                self._admin(path)
            elif path.startswith("/v1/search/"):
                self._naver(path)
            elif path.startswith("/v1/"):
                self._openai(path, body)
            else:
                self._send(404, {"error": "not found", "path": path})
        except Exception as exc:  # noqa: BLE001 - a simulator bug must not kill the connection thread
            sys.stderr.write(
                f"sim internal error on {self.command} {path}: {type(exc).__name__}: {exc}\n"
            )
            self._send(
                500,
                {
                    "error": {
                        "message": "simulator internal error",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                },
            )

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch

    def _admin(self, path: str) -> None:
        stats = self.server.stats
        if path == "/_sim/health" and self.command == "GET":
            self._send(200, {"ok": True})
        elif path == "/_sim/stats" and self.command == "GET":
            self._send(200, stats.snapshot())
        elif path == "/_sim/reset" and self.command == "POST":
            stats.reset()
            self._send(200, {"ok": True})
        else:
            self._send(404, {"error": "unknown admin endpoint"})

    def _echo_body(self, chat: bool) -> dict[str, Any]:
        """A 400 that repeats the request's credential headers in its message."""
        if chat:
            return openai_api.error_body(
                "Invalid request. Received headers: Authorization: "
                f"{self.headers.get('Authorization')}",
                code="invalid_request",
            )
        return {
            "errorMessage": "Invalid request (headers: X-Naver-Client-Id="
            f"{self.headers.get('X-Naver-Client-Id')}, X-Naver-Client-Secret="
            f"{self.headers.get('X-Naver-Client-Secret')})",
            "errorCode": "SE99",
        }

    # --- OpenAI -----------------------------------------------------------------------------
    def _openai_headers(self) -> dict[str, str]:
        return {
            "x-request-id": f"req_{uuid.uuid4().hex}",
            "openai-version": "2020-10-01",
            "openai-processing-ms": "1",
        }

    def _openai(self, path: str, body: bytes) -> None:
        cfg = self.server.cfg
        auth = self.headers.get("Authorization") or ""
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        # openai_api_key "" stands for a local server started without a key (vLLM, Ollama)
        if cfg.openai_api_key != "" and (
            not token or (cfg.openai_api_key is not None and token != cfg.openai_api_key)
        ):
            self.server.stats.auth_fail("chat")
            message = (
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                if not token
                else "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
            self._send(
                401,
                openai_api.error_body(message, code="invalid_api_key"),
                headers=self._openai_headers(),
            )
            return
        if path in ("/v1/models", "/v1/models/") and self.command == "GET":
            self._send(200, openai_api.models_list(), headers=self._openai_headers())
            return
        if path.startswith("/v1/models/") and self.command == "GET":
            self._send(
                200,
                openai_api.model_object(path.rsplit("/", 1)[-1]),
                headers=self._openai_headers(),
            )
            return
        if cfg.batches and path.startswith(("/v1/files", "/v1/batches")):
            status, payload, ctype = batches.handle(
                self.server.stats.batches,
                self.command,
                path.rstrip("/"),
                urlsplit(self.path).query,
                self.headers.get("Content-Type") or "",
                body,
            )
            self._send(status, payload, headers=self._openai_headers(), content_type=ctype)
            return
        if path.rstrip("/") != "/v1/chat/completions" or self.command != "POST":
            self._send(
                404,
                openai_api.error_body(f"Invalid URL ({self.command} {path})"),
                headers=self._openai_headers(),
            )
            return
        try:
            try:
                request = json.loads(body.decode("utf-8")) if body else None
            except (UnicodeDecodeError, json.JSONDecodeError):
                request = None
            self.server.stats.prompt(request)
            completion = openai_api.chat_completion(request, judge=cfg.judge)
        except openai_api.ChatError as err:
            self._send(err.status, err.payload, headers=self._openai_headers())
            return
        self._answer(
            "chat", completion, model=str(request.get("model")) if isinstance(request, dict) else ""
        )

    # --- Naver ------------------------------------------------------------------------------
    def _naver(self, path: str) -> None:
        cfg = self.server.cfg
        cid = self.headers.get("X-Naver-Client-Id") or ""
        secret = self.headers.get("X-Naver-Client-Secret") or ""
        if (
            not cid
            or not secret
            or (cfg.naver_client_id is not None and cid != cfg.naver_client_id)
            or (cfg.naver_client_secret is not None and secret != cfg.naver_client_secret)
        ):
            self.server.stats.auth_fail("search")
            self._send(401, naver_api.error_body("auth"))
            return
        if self.command not in ("GET", "HEAD"):
            self._send(
                405,
                {
                    "errorMessage": "Method not allowed (허용되지 않은 메서드입니다.)",
                    "errorCode": "405",
                },
            )
            return
        try:
            category, params = naver_api.parse_request(path, urlsplit(self.path).query)
        except naver_api.SearchApiError as err:
            self._send(err.status, err.payload)
            return
        origins = self.server.page_origins or None
        payload = naver_api.search(
            category,
            params["query"],
            params["display"],
            params["start"],
            params["sort"],
            empty_rate=cfg.empty_rate,
            origins=origins,
        )
        if origins:
            for rank, it in enumerate(payload["items"], start=params["start"]):
                title = html.unescape(it["title"].replace("<b>", "").replace("</b>", ""))
                for key in ("link", "originallink"):
                    if key in it:
                        self.server.registry.register(
                            it[key], category, params["query"], rank - 1, title
                        )
        self._answer("search", payload)

    # --- shared fault injection ---------------------------------------------------------------
    def _answer(self, api: str, payload: dict[str, Any], model: str = "") -> None:
        cfg = self.server.cfg
        stats = self.server.stats
        kind, status = stats.take(api)
        chat = api == "chat"
        extra = self._openai_headers() if chat else {}
        if kind == "quota":
            self._send(
                429,
                openai_api.quota_body() if chat else naver_api.error_body("quota"),
                headers=extra,
            )
        elif kind == "429":
            retry = {"Retry-After": f"{cfg.retry_after_s:g}"}
            if chat:
                retry["retry-after-ms"] = str(int(cfg.retry_after_s * 1000))
            body = (
                openai_api.rate_limit_body(model, cfg.retry_after_s)
                if chat
                else naver_api.error_body("rate")
            )
            self._send(429, body, headers={**extra, **retry})
        elif kind == "5xx":
            if status == 502:
                self._send(
                    502,
                    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad "
                    "Gateway</h1></center></body></html>",
                    headers=extra,
                    content_type="text/html",
                )
            elif chat:
                self._send(status, openai_api.server_error_body(status), headers=extra)
            else:
                self._send(status, naver_api.error_body("system"))
        elif kind == "timeout":
            self._sleep(cfg.timeout_s)
            self._send(200, payload, headers=extra)
        elif kind == "truncated":
            self._send(200, payload, headers=extra, truncate=True)
        elif kind == "fenced":
            openai_api.fence(payload)
            self._send(200, payload, headers=extra)
        elif kind == "surrogate":
            # ensure_ascii writes the lone surrogate as the escape "\ud83d", as a server
            # that cut an emoji's UTF-16 pair in half would
            _add_lone_surrogate(payload)
            self._send(200, json.dumps(payload).encode("ascii"), headers=extra)
        elif kind == "echo":
            self._send(400, self._echo_body(chat), headers=extra)
        elif kind == "refusal":
            message = payload["choices"][0]["message"]
            message.update(content=None, refusal="I'm sorry, but I can't help with that.")
            self._send(200, payload, headers=extra)
        else:
            self._send(200, payload, headers=extra)


class _PageHandler(_Handler):
    """One web origin: robots.txt and the pages of :func:`pages.respond`, counted in stats."""

    server_version = "nginx"

    def _dispatch(self) -> None:
        self._started = time.perf_counter()
        srv = self.server
        if srv.origin == "slow":
            self._sleep(srv.cfg.page_delay_s)
        path_qs = self.path if self.path.startswith("/") else pages._path_qs(self.path)
        base = srv.page_origins.get(srv.origin, "")
        try:
            self._read_body()  # drained, so a kept-alive connection stays in step
        except (ValueError, OSError):
            self.close_connection = True
        try:
            if self.command not in ("GET", "HEAD"):
                answer = pages.Response(
                    405,
                    {"Content-Type": "text/plain; charset=utf-8", "Allow": "GET, HEAD"},
                    b"Method Not Allowed",
                )
            else:
                answer = pages.respond(srv.origin, path_qs, srv.registry, base)
        except Exception as exc:  # noqa: BLE001 - a simulator bug must not kill the thread
            sys.stderr.write(
                f"sim page error on {srv.origin} {path_qs}: {type(exc).__name__}: {exc}\n"
            )
            answer = pages.Response(
                500, {"Content-Type": "text/plain; charset=utf-8"}, b"Internal Server Error"
            )
        srv.stats.page_hit(
            srv.origin,
            base + path_qs,
            answer.status,
            robots=urlsplit(path_qs).path == "/robots.txt",
        )
        try:
            self.send_response(answer.status)
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        self._log(answer.status, self._started)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch


def _add_lone_surrogate(payload: dict[str, Any]) -> None:
    """Append half an emoji to the answer's text: a chat message's content (inside its JSON,
    when it is JSON) or the first search item's description."""
    if "choices" in payload:
        message = payload["choices"][0]["message"]
        try:
            inner = json.loads(message["content"])
        except (TypeError, ValueError):
            message["content"] = (message["content"] or "") + "\ud83d"
            return
        if isinstance(inner, dict):
            for key, value in inner.items():
                if isinstance(value, str):
                    inner[key] = value + " \ud83d"
                    break
        message["content"] = json.dumps(inner)  # the escape rides inside the content
    elif payload.get("items"):
        payload["items"][0]["description"] += "\ud83d"


class SimServer:
    """The simulator in a background daemon thread; usable as a context manager."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self._stats = _Stats(self.config)
        self._stop_event = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._page_servers: dict[str, _Server] = {}
        self._page_threads: list[threading.Thread] = []
        self.page_registry = pages.PageRegistry()

    def start(self) -> SimServer:
        """Bind and start serving (idempotent); returns ``self``."""
        if self._httpd is None:
            self._stop_event.clear()
            httpd = _Server(self.config, self._stats, self._stop_event, registry=self.page_registry)
            try:
                if self.config.pages:
                    for name in pages.ORIGINS:
                        self._page_servers[name] = _Server(
                            self.config,
                            self._stats,
                            self._stop_event,
                            _PageHandler,
                            port=(self.config.page_ports or {}).get(name, 0),
                            origin=name,
                            registry=self.page_registry,
                        )
            except OSError:
                # nothing serves yet: close what is bound (stop() would wait on a server
                # that never started)
                for srv in (httpd, *self._page_servers.values()):
                    srv.server_close()
                self._page_servers = {}
                raise
            self._httpd = httpd
            if self._page_servers:
                origins = {name: self._base(srv) for name, srv in self._page_servers.items()}
                for srv in (self._httpd, *self._page_servers.values()):
                    srv.page_origins = origins
            self._thread = self._serve(self._httpd, "seedtune-sim")
            self._page_threads = [
                self._serve(srv, f"seedtune-sim-{name}") for name, srv in self._page_servers.items()
            ]
        return self

    @staticmethod
    def _serve(srv: _Server, name: str) -> threading.Thread:
        thread = threading.Thread(
            target=srv.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True
        )
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop serving and close the sockets (in-flight timeout faults are woken up)."""
        if self._httpd is None:
            return
        self._stop_event.set()
        for srv in (self._httpd, *self._page_servers.values()):
            srv.shutdown()
            srv.server_close()
        for thread in (self._thread, *self._page_threads):
            if thread is not None:
                thread.join(timeout=5)
        self._httpd = None
        self._thread = None
        self._page_servers = {}
        self._page_threads = []

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port (after :meth:`start`)."""
        if self._httpd is None:
            raise RuntimeError("SimServer is not started")
        return int(self._httpd.server_address[1])

    def _base(self, srv: _Server) -> str:
        host = self.config.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{int(srv.server_address[1])}"

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT``."""
        if self._httpd is None:
            raise RuntimeError("SimServer is not started")
        return self._base(self._httpd)

    @property
    def page_origins(self) -> dict[str, str]:
        """Web origin name -> ``http://127.0.0.1:PORT`` (empty when pages are off or before
        :meth:`start`): blog, news, press, press_euckr, kin, web, slow."""
        return {name: self._base(srv) for name, srv in self._page_servers.items()}

    @property
    def openai_base_url(self) -> str:
        """What to put in ``openai.OpenAI(base_url=...)``: ``url + "/v1"``."""
        return self.url + "/v1"

    @property
    def naver_base_url(self) -> str:
        """Naver base: requests go to ``{naver_base_url}/v1/search/{category}.json``."""
        return self.url

    def stats(self) -> dict[str, Any]:
        """Counters: ``{"chat"|"search": {"ok", "faults": {...}, "auth_fail"}, "pages":
        {"requests", "by_url": {url: n}, "status": {code: n}, "robots", "robots_by_origin"}}``
        (robots.txt fetches are counted apart from page requests)."""
        return copy.deepcopy(self._stats.snapshot())

    @property
    def batch_store(self) -> batches.BatchStore:
        """The files and batches of ``/v1/files`` and ``/v1/batches`` (its faults are
        attributes: ``hold``, ``expire_first``, ``fail_first``, ``error_rate``, ...)."""
        return self._stats.batches

    def prompts(self) -> list[str]:
        """The text of every chat request's messages received so far, in order."""
        with self._stats.lock:
            return list(self._stats.prompts)


def _parser(prog: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Loopback OpenAI + Naver Search API simulator."
    )
    d = SimConfig()
    p.add_argument("--host", default=d.host)
    p.add_argument("--port", type=int, default=d.port, help="0 picks a free port")
    p.add_argument("--port-file", help="write the bound port here (atomically) once listening")
    p.add_argument("--latency-ms", type=float, default=d.latency_ms)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--openai-api-key",
        default=os.environ.get("SEEDTUNE_SIM_OPENAI_API_KEY"),
        help="required Bearer token (default: any non-empty; env SEEDTUNE_SIM_OPENAI_API_KEY)",
    )
    p.add_argument("--naver-client-id", default=os.environ.get("SEEDTUNE_SIM_NAVER_CLIENT_ID"))
    p.add_argument(
        "--naver-client-secret", default=os.environ.get("SEEDTUNE_SIM_NAVER_CLIENT_SECRET")
    )
    for flag in (
        "fault-429-rate",
        "fault-5xx-rate",
        "fault-timeout-rate",
        "fault-truncated-rate",
        "fault-fenced-rate",
        "fault-surrogate-rate",
        "fault-echo-rate",
        "fault-refusal-rate",
    ):
        p.add_argument(f"--{flag}", type=float, default=0.0)
    p.add_argument("--retry-after-s", type=float, default=d.retry_after_s)
    p.add_argument("--timeout-s", type=float, default=d.timeout_s)
    p.add_argument("--openai-quota", type=int, default=None)
    p.add_argument("--naver-quota", type=int, default=None)
    p.add_argument("--empty-rate", type=float, default=d.empty_rate)
    p.add_argument(
        "--judge",
        choices=("hash", "first", "reference"),
        default=d.judge,
        help="hash: random verdicts; first: always A (position bias); reference: "
        "prefers longer answers closer to the reference",
    )
    p.add_argument(
        "--no-pages",
        dest="pages",
        action="store_false",
        help="no page servers; search links keep Naver's real hosts",
    )
    p.add_argument(
        "--page-delay-s",
        type=float,
        default=d.page_delay_s,
        help="delay of every response of the slow page origin",
    )
    p.add_argument("--quiet", action="store_true", help="do not log one line per request")
    p.add_argument(
        "--no-batches",
        dest="batches",
        action="store_false",
        help="answer 404 on /v1/files and /v1/batches, as servers without the Batch API do",
    )
    p.add_argument(
        "--batch-in-progress-s",
        type=float,
        default=d.batch_in_progress_s,
        help="seconds a batch stays in_progress before it finalizes",
    )
    p.add_argument(
        "--workspace",
        help="a `seedtune demo` workspace: serve on the ports its "
        "conf/local names, with the keys in its .env and the demo's judge",
    )
    return p


def _listen_error(cfg: SimConfig, exc: OSError) -> str:
    """What to do when the simulator cannot listen on ``--host``/``--port``."""
    if exc.errno == errno.EADDRINUSE:
        return f"port {cfg.port} is in use; pick another with --port or stop the other simulator"
    if exc.errno == errno.EACCES:
        return (
            f"port {cfg.port}: permission denied (ports below 1024 need root); pick "
            "another with --port"
        )
    return f"cannot listen on {cfg.host}:{cfg.port} ({exc.strerror or exc}); check --host"


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """CLI entry point: serve until SIGTERM/SIGINT, then exit 0 (2 on bad arguments)."""
    args = _parser(prog).parse_args(argv)
    names = {f.name for f in fields(SimConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    if args.workspace:
        values.update(workspace_sim(args.workspace))  # raises ConfigError naming the file
    try:
        cfg = SimConfig(**values, log_requests=not args.quiet)
    except ValueError as exc:
        sys.stderr.write(f"sim: {exc}\n")
        return 2
    stop = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    sim = SimServer(cfg)
    try:
        try:
            sim.start()
        except OSError as exc:  # one line, as for every mistake a user can fix
            sys.stderr.write(f"{prog or 'seedtune sim'}: error: {_listen_error(cfg, exc)}\n")
            return 2
        if args.port_file:
            atomic_write_text(args.port_file, f"{sim.port}\n")
        sys.stderr.write(f"seedtune sim listening on {sim.url} (openai: {sim.openai_base_url})\n")
        if sim.page_origins:
            sys.stderr.write(
                "seedtune sim pages: "
                + ", ".join(f"{k}={v}" for k, v in sim.page_origins.items())
                + "\n"
            )
            # the crawler refuses loopback addresses unless told (crawl.allow_networks)
            allowed = json.dumps(sorted(urlsplit(v).netloc for v in sim.page_origins.values()))
            sys.stderr.write(
                f"seedtune sim: to crawl these pages set crawl.allow_networks: "
                f"{allowed} in conf/local/default.yaml, or "
                f"SEEDTUNE_CRAWL_ALLOW_NETWORKS='{allowed}'\n"
            )
        sys.stderr.flush()
        while not stop.wait(0.2):
            pass
    finally:
        sim.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    sys.stderr.write("seedtune sim stopped\n")
    return 0
