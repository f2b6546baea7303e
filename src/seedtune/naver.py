"""Naver Search API client (blog, news, kin, webkr, cafearticle, encyc).

``GET {base_url}/v1/search/{category}.json`` with ``query``, ``display``, ``start`` and
``sort`` as URL parameters (a GET body is ignored by Naver) and the two
``X-Naver-Client-*`` headers from ``NAVER_CLIENT_ID`` / ``NAVER_CLIENT_SECRET``. Answers are
cached per request (see :mod:`seedtune.cache`) the moment they arrive.
"""

from __future__ import annotations

import html
import logging
import random
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

from seedtune.cache import ResponseCache, cache_key
from seedtune.config import ConfigError, SearchConfig

log = logging.getLogger(__name__)

SORTABLE = {"blog", "news", "cafearticle"}  # categories that accept `sort`


class QuotaExceeded(RuntimeError):
    """Naver's daily quota (errorCode 010) or ``search.daily_quota`` is spent."""


class NaverError(RuntimeError):
    """A request Naver refuses (SE01-SE06) or that keeps failing after retries."""


@dataclass
class SearchStats:
    """Calls made, cache hits, retries."""

    calls: int = 0
    cache_hits: int = 0
    retries: int = 0


_TAG = re.compile(r"<[^>]+>")
_WS = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Strip tags such as ``<b>``, unescape entities (twice-escaped too), fold whitespace."""
    text = _TAG.sub("", text or "")
    for _ in range(2):  # Naver sometimes double-escapes (&amp;quot;)
        text = html.unescape(text)
    return _WS.sub(" ", text).strip()


class NaverClient:
    """Pooled, rate-limited, retrying, cached client for the Naver Search API."""

    def __init__(self, cfg: SearchConfig, cache: ResponseCache, client_id: str | None,
                 client_secret: str | None) -> None:
        self.cfg = cfg
        self.cache = cache
        self._id, self._secret = client_id, client_secret
        self.session = requests.Session()
        self.stats = SearchStats()
        self._lock = threading.Lock()
        self._next_slot = 0.0

    def _params(self, query: str, category: str, start: int) -> dict[str, Any]:
        params: dict[str, Any] = {"query": query, "display": self.cfg.display, "start": start}
        if category in SORTABLE:
            params["sort"] = self.cfg.sort
        return params

    def search(self, query: str, category: str, start: int = 1) -> dict[str, Any]:
        """One page of results (Naver's JSON body), from the cache when already fetched."""
        params = self._params(query, category, start)
        key = cache_key({"category": category, **params})
        hit = self.cache.get(key)
        if hit is not None:
            self.stats.cache_hits += 1
            return hit
        if self.stats.calls >= self.cfg.daily_quota:
            raise QuotaExceeded(f"search.daily_quota={self.cfg.daily_quota} calls spent")
        if not (self._id and self._secret):
            raise ConfigError("environment variables NAVER_CLIENT_ID and NAVER_CLIENT_SECRET "
                              "must be set for the search stage; export them or add them to .env")
        body = self._get(category, params)
        self.cache.put(key, body)
        return body

    def _throttle(self) -> None:
        with self._lock:
            now = time.monotonic()
            wait = self._next_slot - now
            self._next_slot = max(now, self._next_slot) + 1.0 / self.cfg.rps
        if wait > 0:
            time.sleep(wait)

    def _get(self, category: str, params: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.cfg.base_url.rstrip('/')}/v1/search/{category}.json"
        headers = {"X-Naver-Client-Id": self._id or "", "X-Naver-Client-Secret": self._secret or ""}
        last = ""
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                self.stats.retries += 1
                time.sleep(min(30.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random()))
            self._throttle()
            try:
                resp = self.session.get(url, params=params, headers=headers,
                                        timeout=self.cfg.timeout_s)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = type(exc).__name__
                continue
            self.stats.calls += 1
            code = _error_code(resp)
            if resp.status_code == 200:
                try:
                    return resp.json()
                except ValueError:
                    last = "malformed JSON"
                    continue
            if resp.status_code in (401, 403) or code == "024":
                raise ConfigError("Naver rejected NAVER_CLIENT_ID / NAVER_CLIENT_SECRET "
                                  f"(HTTP {resp.status_code}, errorCode {code or '-'})")
            if resp.status_code == 429 and code != "012":
                raise QuotaExceeded(f"Naver daily quota exceeded (errorCode {code or '010'})")
            if resp.status_code == 429 or resp.status_code >= 500:
                last = f"HTTP {resp.status_code}"
                retry_after = resp.headers.get("Retry-After")
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    time.sleep(min(60.0, float(retry_after)))
                continue
            raise NaverError(f"Naver refused query {params['query']!r} in {category}: "
                             f"HTTP {resp.status_code} {code or ''} {_error_message(resp)}".strip())
        raise NaverError(f"Naver {category} query {params['query']!r} failed after "
                         f"{self.cfg.max_retries} retries ({last})")


def _error_code(resp: requests.Response) -> str | None:
    try:
        return str(resp.json().get("errorCode"))
    except (ValueError, AttributeError):
        return None


def _error_message(resp: requests.Response) -> str:
    try:
        return str(resp.json().get("errorMessage", ""))
    except (ValueError, AttributeError):
        return ""


def to_documents(category: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Clean documents from one Naver answer: category, title, description, link, date."""
    docs = []
    for item in body.get("items", []) or []:
        date = item.get("postdate") or item.get("pubDate") or ""
        docs.append({
            "category": category,
            "title": clean_text(item.get("title", "")),
            "description": clean_text(item.get("description", "")),
            "link": item.get("originallink") or item.get("link") or "",
            "date": date,
        })
    return docs


def dedupe_documents(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop repeats across categories by link and by normalised text, keeping first seen."""
    seen_links: set[str] = set()
    seen_text: set[str] = set()
    out = []
    for d in docs:
        text = _WS.sub("", (d["title"] + d["description"]).lower())
        if (d["link"] and d["link"] in seen_links) or (text and text in seen_text):
            continue
        seen_links.add(d["link"])
        seen_text.add(text)
        out.append(d)
    return out


def search_all(client: NaverClient, questions: list[str], workers: int = 4
               ) -> tuple[list[dict[str, Any]], str | None]:
    """Search every question in every configured category and page.

    Returns ``(rows, stopped)``: one ``{question, documents}`` row per question searched, in
    input order, and the quota message when the quota stopped the run early (rows then
    cover only the questions finished before it; everything fetched is in the cache).
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    cfg = client.cfg
    stop = threading.Event()
    stopped: list[str] = []

    def one(question: str) -> dict[str, Any] | None:
        docs: list[dict[str, Any]] = []
        for category in cfg.categories:
            for page in range(cfg.pages):
                if stop.is_set():
                    return None
                try:
                    body = client.search(question, category, start=1 + page * cfg.display)
                except QuotaExceeded as exc:
                    stop.set()
                    stopped.append(str(exc))
                    return None
                docs += to_documents(category, body)
                if len(body.get("items") or []) < cfg.display:
                    break  # no further pages
        return {"question": question, "documents": dedupe_documents(docs)}

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(tqdm(pool.map(one, questions), total=len(questions), desc="search",
                            unit="question"))
    rows = [r for r in results if r is not None]
    return rows, (stopped[0] if stopped else None)
