"""Naver Search API client (blog, news, kin, webkr, cafearticle, encyc) and document cleaning.

``GET {base_url}/v1/search/{category}.json`` with ``query``, ``display``, ``start`` and (where
the category takes it) ``sort`` as URL parameters (the tutorial sent them as a GET body,
which Naver ignores, silently answering with its defaults) and the ``X-Naver-Client-Id`` /
``X-Naver-Client-Secret`` headers from ``NAVER_CLIENT_ID`` / ``NAVER_CLIENT_SECRET``.

Every answer is cached (:mod:`seedtune.cache`) the moment it arrives, raw, so cleaning can
change without refetching. Calls are rate limited (``search.rps``), retried with backoff on
per-second limits (errorCode 012), 5xx, timeouts and malformed bodies, and counted against a
daily budget (``search.daily_quota``) persisted beside the cache, so that "daily" survives
reruns. When the budget or Naver's own quota (errorCode 010) runs out the run stops; what
was fetched stays cached and the next run resumes without fetching it again.

Run against the simulator: ``seedtune sim --port 8080`` and set ``search.base_url``.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import random
import re
import threading
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from seedtune.cache import ResponseCache, cache_key
from seedtune.config import ConfigError, SearchConfig
from seedtune.ratelimit import RateLimiter, retry_after_s
from seedtune.records import atomic_write_text, read_jsonl

log = logging.getLogger(__name__)

#: Categories whose API takes ``sort`` (webkr and encyc have no such parameter).
SORTABLE = frozenset({"blog", "news", "kin", "cafearticle"})
#: Naver's quota follows the Korean calendar day (KST, no daylight saving time).
KST = timezone(timedelta(hours=9))
#: Name of the per-day call ledger inside the search cache directory.
LEDGER_NAME = "quota.json"
#: Concurrent requests; the rate limiter, not this, bounds calls per second.
WORKERS = 4
_MAX_BACKOFF_S = 30.0
# network trouble worth retrying (a reset mid-body surfaces as ChunkedEncodingError)
_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
              requests.exceptions.ContentDecodingError)
_MAX_RETRY_AFTER_S = 60.0


class QuotaExceeded(RuntimeError):
    """Naver's daily quota (errorCode 010) or ``search.daily_quota`` is spent."""


class NaverError(RuntimeError):
    """A request Naver refuses (SE01-SE06) or that keeps failing after retries."""


# --------------------------------------------------------------------------- cleaning

# Only real tags (a letter after "<"): Naver escapes literal angle brackets in text, so
# "&lt;전세보증보험&gt;" is content and must survive as "<전세보증보험>".
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
# Inline markup that shows up once entities are unescaped (double-escaped "&lt;b&gt;").
_INLINE_TAG = re.compile(r"</?(?:b|strong|em|i|u|br|span|font|p)\b[^<>]*>", re.IGNORECASE)
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")
_WS = re.compile(r"\s+")
_NON_WORD = re.compile(r"\W+")


def clean_text(text: str | None) -> str:
    """Plain text from a Naver title/description.

    Tags such as ``<b>`` are removed, HTML entities unescaped (twice-escaped ones such as
    ``&amp;quot;`` too), Hangul normalised to NFC, and whitespace folded to single spaces.
    """
    text = _TAG.sub("", text or "")
    for _ in range(2):  # Naver sometimes escapes twice
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    text = _INLINE_TAG.sub("", text)
    text = _INVISIBLE.sub("", unicodedata.normalize("NFC", text))
    return _WS.sub(" ", text).strip()


def iso_date(item: dict[str, Any]) -> str | None:
    """The item's date as ``YYYY-MM-DD`` (blog ``postdate``, news ``pubDate``), else None.

    An unparseable value is kept as given rather than lost.
    """
    raw = str(item.get("postdate") or item.get("pubDate") or "").strip()
    if not raw:
        return None
    if re.fullmatch(r"\d{8}", raw):
        return f"{raw[:4]}-{raw[4:6]}-{raw[6:]}"
    try:
        return parsedate_to_datetime(raw).date().isoformat()
    except (TypeError, ValueError):
        return raw


def clean_link(link: str | None) -> str:
    """A result link with escaped ampersands restored (``&amp;`` -> ``&``), nothing more.

    Full unescaping could corrupt a URL (``&lt=2`` is a valid query parameter).
    """
    return str(link or "").strip().replace("&amp;", "&")


def to_documents(category: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Clean documents from one Naver answer: category, title, description, link, date.

    ``link`` is the publisher's ``originallink`` when Naver gives one (news), else ``link``.
    Items with neither title nor description carry nothing to rank and are skipped.
    """
    docs = []
    for item in body.get("items") or []:
        if not isinstance(item, dict):
            continue
        title, description = clean_text(item.get("title")), clean_text(item.get("description"))
        if not (title or description):
            continue
        docs.append({
            "category": category,
            "title": title,
            "description": description,
            "link": clean_link(item.get("originallink") or item.get("link")),
            "date": iso_date(item),
        })
    return docs


def _link_key(link: str) -> str:
    """A link without scheme, ``www.`` and trailing slash: the same page however written."""
    key = re.sub(r"^[a-z]+://", "", link.strip().lower())
    return key.removeprefix("www.").rstrip("/")


def _text_key(doc: dict[str, Any]) -> str:
    """Title and description without case, spacing or punctuation."""
    text = unicodedata.normalize("NFKC", f"{doc['title']} {doc['description']}").lower()
    return _NON_WORD.sub("", text)


def dedupe_documents(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop repeats (across categories and pages) by link and by normalised text.

    The first occurrence wins, so the order of ``search.categories`` sets the preference.
    """
    seen_links: set[str] = set()
    seen_text: set[str] = set()
    out = []
    for doc in docs:
        link, text = _link_key(doc["link"]), _text_key(doc)
        if (link and link in seen_links) or (text and text in seen_text):
            continue
        seen_links.add(link)
        seen_text.add(text)
        out.append(doc)
    return out


# --------------------------------------------------------------------------- budget


def korean_today() -> str:
    """Today's date in Korea (``YYYY-MM-DD``), the day Naver's quota counts."""
    return datetime.now(KST).date().isoformat()


def account_key(client_id: str | None) -> str:
    """A short, one-way tag for a Naver application: never the client id itself."""
    return hashlib.sha256((client_id or "").encode("utf-8")).hexdigest()[:16]


class DailyBudget:
    """Calls made today per Naver application, persisted so the budget outlives a run.

    The ledger (``{"day": "YYYY-MM-DD", "calls": {account: n}}``) lives in the search cache
    directory and is rewritten atomically before each call, so a crash can overcount by at
    most the calls in flight, never undercount. A new Korean day starts from zero.
    """

    def __init__(self, path: Path | str, limit: int, account: str,
                 today: Callable[[], str] = korean_today) -> None:
        self.path, self.limit, self.account, self._today = Path(path), limit, account, today
        self._lock = threading.Lock()

    def _load(self, day: str) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("day") != day:
            return {}
        calls = data.get("calls")
        return {str(k): int(v) for k, v in calls.items()} if isinstance(calls, dict) else {}

    def used(self) -> int:
        """Calls this application made today."""
        with self._lock:
            return self._load(self._today()).get(self.account, 0)

    def take(self) -> None:
        """Count one call, or raise :class:`QuotaExceeded` when today's budget is spent."""
        with self._lock:
            day = self._today()
            calls = self._load(day)
            used = calls.get(self.account, 0)
            if used >= self.limit:
                raise QuotaExceeded(
                    f"search.daily_quota={self.limit} calls already made today ({day} KST) "
                    "with this NAVER_CLIENT_ID; wait for midnight KST or raise search.daily_quota")
            calls[self.account] = used + 1
            atomic_write_text(self.path, json.dumps({"day": day, "calls": calls}) + "\n")


# --------------------------------------------------------------------------- client


@dataclass
class SearchStats:
    """Calls made, cache hits, retries (updated from several threads, under a lock)."""

    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, n: int = 1) -> None:
        """Increment counter ``name`` by ``n``."""
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict (for metrics)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


def backoff_s(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before retry ``attempt`` (1-based): jittered exponential, at least Retry-After."""
    delay = min(_MAX_BACKOFF_S, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
    return max(delay, min(retry_after or 0.0, _MAX_RETRY_AFTER_S))


def _error(resp: requests.Response) -> tuple[str | None, str]:
    """Naver's ``(errorCode, errorMessage)`` from an error answer; ``(None, "")`` if absent."""
    try:
        body = resp.json()
    except ValueError:
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    code = body.get("errorCode")
    if code is None:
        return None, str(body.get("errorMessage") or "")
    code = str(code).strip()
    # Naver's numeric codes are three digits ("010"); accept 10 or "10" from look-alikes too
    return (code.zfill(3) if code.isdigit() else code), str(body.get("errorMessage") or "")


class NaverClient:
    """Pooled, rate-limited, retrying, cached, budgeted client for the Naver Search API."""

    def __init__(self, cfg: SearchConfig, cache: ResponseCache, client_id: str | None,
                 client_secret: str | None, budget: DailyBudget | None = None,
                 workers: int = WORKERS) -> None:
        self.cfg = cfg
        self.cache = cache
        self._id, self._secret = client_id, client_secret
        self.budget = budget or DailyBudget(cache.root / LEDGER_NAME, cfg.daily_quota,
                                            account_key(client_id))
        self.stats = SearchStats()
        self.limiter = RateLimiter(cfg.rps)
        self.session = requests.Session()
        # one pooled keep-alive connection per worker thread
        self.session.mount("https://", HTTPAdapter(pool_connections=1, pool_maxsize=workers))
        self.session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=workers))
        self.workers = workers

    def params(self, query: str, category: str, start: int = 1) -> dict[str, Any]:
        """The URL parameters of one request (``sort`` only where the category takes it)."""
        params: dict[str, Any] = {"query": query, "display": self.cfg.display, "start": start}
        if category in SORTABLE:
            params["sort"] = self.cfg.sort
        return params

    def search(self, query: str, category: str, start: int = 1) -> dict[str, Any]:
        """One page of results (Naver's JSON body), from the cache when already fetched."""
        params = self.params(query, category, start)
        key = cache_key({"category": category, **params})
        hit = self.cache.get(key)
        if hit is not None:
            self.stats.add("cache_hits")
            return hit
        self._check_credentials()
        body = self._fetch(category, params)
        self.cache.put(key, body)
        return body

    def _check_credentials(self) -> None:
        missing = [n for n, v in (("NAVER_CLIENT_ID", self._id),
                                  ("NAVER_CLIENT_SECRET", self._secret)) if not v]
        if missing:
            raise ConfigError(f"environment variable(s) {' and '.join(missing)} not set (needed "
                              "by the search stage for answers not yet in data/cache/search); "
                              "export them or add them to .env")

    def _fetch(self, category: str, params: dict[str, Any]) -> dict[str, Any]:
        """GET with retries; raises QuotaExceeded, ConfigError (credentials) or NaverError."""
        url = f"{self.cfg.base_url.rstrip('/')}/v1/search/{category}.json"
        headers = {"X-Naver-Client-Id": self._id or "", "X-Naver-Client-Secret": self._secret or ""}
        last, wait_hint = "", None
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                self.stats.add("retries")
                time.sleep(backoff_s(attempt, wait_hint))
            self.budget.take()  # before sending: a call Naver may have counted is counted
            self.limiter.wait()
            try:
                resp = self.session.get(url, params=params, headers=headers,
                                        timeout=self.cfg.timeout_s)
            except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
                    requests.exceptions.InvalidURL) as exc:
                raise ConfigError(f"search.base_url: {self.cfg.base_url!r} is not a usable "
                                  f"http(s) URL ({type(exc).__name__})") from None
            except _TRANSIENT as exc:
                last, wait_hint = f"{type(exc).__name__} reaching {self.cfg.base_url}", None
                continue
            self.stats.add("calls")
            body = self._accept(resp, category, params["query"])
            if body is not None:
                return body
            last, wait_hint = f"HTTP {resp.status_code} {_error(resp)[0] or ''}".strip(), \
                retry_after_s(resp.headers)
            log.debug("retrying %s %r: %s", category, params["query"], last)
        raise NaverError(f"Naver {category} search for query {params['query']!r} still failing "
                         f"after {self.cfg.max_retries} retries ({last}); rerun to resume")

    @staticmethod
    def _accept(resp: requests.Response, category: str, query: str) -> dict[str, Any] | None:
        """The body of a good answer; None when the call should be retried; raises otherwise."""
        code, message = _error(resp)
        status = resp.status_code
        if status == 200:
            try:
                body = resp.json()
            except ValueError:
                return None  # truncated or malformed: retry
            return body if isinstance(body, dict) and isinstance(body.get("items"), list) else None
        if status in (401, 403) or code == "024":
            raise ConfigError(
                f"Naver rejected the credentials in NAVER_CLIENT_ID / NAVER_CLIENT_SECRET "
                f"(HTTP {status}, errorCode {code or '-'}); check them and that the Search API "
                "is enabled for the application at developers.naver.com")
        if status == 429 and code == "010":
            raise QuotaExceeded("Naver's daily quota is exhausted (HTTP 429, errorCode 010); "
                                "it resets at midnight KST")
        if status == 429 or status >= 500:
            return None  # per-second limit (012) or server trouble: retry
        hint = "; check search.base_url" if status == 404 else ""  # SE05 or a wrong root
        raise NaverError(f"Naver refused the {category} search for query {query!r}: HTTP {status}"
                         f", errorCode {code or '-'} {message}".rstrip() + hint)


# --------------------------------------------------------------------------- per question


def search_category(client: NaverClient, question: str, category: str,
                    stop: threading.Event | None = None) -> list[dict[str, Any]] | None:
    """Clean documents of up to ``search.pages`` pages; None when ``stop`` was set meanwhile."""
    cfg = client.cfg
    docs: list[dict[str, Any]] = []
    for page in range(cfg.pages):
        if stop is not None and stop.is_set():
            return None
        start = 1 + page * cfg.display
        body = client.search(question, category, start)
        docs += to_documents(category, body)
        total = body.get("total")
        if len(body.get("items") or []) < cfg.display or (
                isinstance(total, int) and start - 1 + cfg.display >= total):
            break  # no further pages
    return docs


def search_question(client: NaverClient, question: str,
                    stop: threading.Event | None = None) -> dict[str, Any] | None:
    """``{question, documents}`` over every category, deduplicated; None when stopped."""
    docs: list[dict[str, Any]] = []
    for category in client.cfg.categories:
        found = search_category(client, question, category, stop)
        if found is None:
            return None
        docs += found
    return {"question": question, "documents": dedupe_documents(docs)}


def search_all(client: NaverClient, questions: list[str], workers: int | None = None
               ) -> tuple[list[dict[str, Any]], str | None]:
    """Search every (unique) question in every configured category and page.

    Returns ``(rows, stopped)``: one ``{question, documents}`` row per finished question in
    input order, and the quota message when a quota stopped the run early (rows then cover
    only the questions finished before it; every answer fetched is in the cache). A
    credentials or request error stops the other workers at once and is raised.
    """
    from tqdm.auto import tqdm

    unique = list(dict.fromkeys(questions))
    cfg = client.cfg
    log.info("searching %d questions in %s (up to %d page(s) of %d); %d of "
             "search.daily_quota=%d calls left today", len(unique), ",".join(cfg.categories),
             cfg.pages, cfg.display, max(0, cfg.daily_quota - client.budget.used()),
             cfg.daily_quota)
    stop = threading.Event()
    done: dict[str, dict[str, Any]] = {}
    stopped: str | None = None

    def one(question: str) -> dict[str, Any] | None:
        if stop.is_set():
            return None
        try:
            return search_question(client, question, stop)
        except BaseException:
            stop.set()  # one failure ends the run: do not spend calls on the rest
            raise

    pool = ThreadPoolExecutor(max_workers=workers or client.workers)
    try:
        with tqdm(total=len(unique), desc="search", unit="question") as bar:
            pending: set[Future] = {pool.submit(one, q) for q in unique}
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    try:
                        row = fut.result()
                    except QuotaExceeded as exc:
                        stopped = stopped or str(exc)
                        continue
                    if row is not None:
                        done[row["question"]] = row
                        bar.update()
                bar.set_postfix(calls=client.stats.calls, cached=client.stats.cache_hits,
                                refresh=False)
    finally:
        stop.set()  # also on Ctrl-C: workers finish their request in flight, start no other
        pool.shutdown(wait=True, cancel_futures=True)
    return [done[q] for q in unique if q in done], stopped


# --------------------------------------------------------------------------- stage helpers


def read_questions(path: Path | str) -> list[str]:
    """The ``question`` of each row of a questions file; a bad row names its line."""
    questions = []
    for n, row in enumerate(read_jsonl(path), 1):
        q = row.get("question") if isinstance(row, dict) else None
        if not isinstance(q, str) or not q.strip():
            raise ValueError(f"{path}: row {n} has no non-empty `question` string")
        questions.append(q.strip())
    return questions


def search_metrics(rows: list[dict[str, Any]], client: NaverClient) -> dict[str, Any]:
    """Counts for metrics/search.json: questions, empty ones, documents, calls, budget."""
    per_category: dict[str, int] = {}
    for row in rows:
        for doc in row["documents"]:
            per_category[doc["category"]] = per_category.get(doc["category"], 0) + 1
    return {
        "questions": len(rows),
        "no_results": sum(1 for r in rows if not r["documents"]),
        "documents": sum(len(r["documents"]) for r in rows),
        "documents_per_category": per_category,
        **client.stats.as_dict(),
        "calls_today": client.budget.used(),
    }
