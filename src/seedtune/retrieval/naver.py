"""Naver Search API client (blog, news, kin, webkr, cafearticle, encyc) and its daily budget.

``GET {base_url}/v1/search/{category}.json`` with ``query``, ``display``, ``start`` and (where
the category takes it) ``sort`` as URL parameters (the tutorial sent them as a GET body,
which Naver ignores, silently answering with its defaults) and the ``X-Naver-Client-Id`` /
``X-Naver-Client-Secret`` headers from ``NAVER_CLIENT_ID`` / ``NAVER_CLIENT_SECRET``.

Every answer is cached (:mod:`seedtune.core.cache`) the moment it arrives, raw, so cleaning
(:mod:`seedtune.retrieval.documents`) can change without refetching. Calls are rate limited
(``search.rps``), retried with backoff on per-second limits (errorCode 012), 5xx, timeouts
and malformed bodies, and counted against a daily budget (``search.daily_quota``) kept in
the machine's ledger (:mod:`seedtune.retrieval.quota`), so that "daily" survives reruns.
When the budget or Naver's own quota (errorCode 010) runs out the run stops; what was
fetched stays cached and the next run resumes without fetching it again.

Run against the simulator: ``seedtune sim --port 8080`` and set ``search.base_url``.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter

from seedtune.core.cache import ResponseCache, cache_key
from seedtune.core.config import SearchConfig
from seedtune.core.credentials import (
    MAX_REDIRECTS,
    NAVER_KEYS,
    REDIRECT_STATUS,
    redact,
    same_origin,
)
from seedtune.core.errors import ConfigError, ServiceError
from seedtune.core.retry import RateLimiter, RetryWarnings, backoff_s, retry_after_s
from seedtune.core.stats import CallStats
from seedtune.core.text import replace_lone_surrogates
from seedtune.retrieval.quota import DailyBudget, QuotaExceeded, account_key

log = logging.getLogger(__name__)

#: Categories whose API takes ``sort`` (webkr and encyc have no such parameter).
SORTABLE = frozenset({"blog", "news", "kin", "cafearticle"})
#: Concurrent requests; the rate limiter, not this, bounds calls per second.
WORKERS = 4
# network trouble worth retrying (a reset mid-body surfaces as ChunkedEncodingError)
_TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class NaverError(ServiceError):
    """A request Naver refuses (SE01-SE06) or that keeps failing after retries."""


# --------------------------------------------------------------------------- client


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

    def __init__(
        self,
        cfg: SearchConfig,
        cache: ResponseCache,
        client_id: str | None,
        client_secret: str | None,
        budget: DailyBudget | None = None,
        workers: int = WORKERS,
    ) -> None:
        self.cfg = cfg
        self.cache = cache
        self._id, self._secret = client_id, client_secret
        self.budget = budget or DailyBudget(cfg.daily_quota, account_key(client_id))
        self.stats = CallStats()
        self._warnings = RetryWarnings(log, "search")
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

    def cached(self, query: str, category: str, start: int = 1) -> dict[str, Any] | None:
        """The cached page of results, or None when it was never fetched (no call made)."""
        key = cache_key({"category": category, **self.params(query, category, start)})
        hit = self.cache.get(key)
        if isinstance(hit, dict) and isinstance(hit.get("items"), list):
            return hit
        if hit is not None:  # stored, but not a search answer: never trusted
            log.warning(
                "ignoring cache entry %s (not a Naver search answer); fetching again",
                self.cache.where(key),
            )
        return None

    def search(self, query: str, category: str, start: int = 1) -> dict[str, Any]:
        """One page of results (Naver's JSON body), from the cache when already fetched."""
        hit = self.cached(query, category, start)
        if hit is not None:
            self.stats.add("cache_hits")
            return hit
        self._check_credentials()
        params = self.params(query, category, start)
        body = self._fetch(category, params)
        self.cache.put(cache_key({"category": category, **params}), body)
        return body

    def _check_credentials(self) -> None:
        missing = [n for n, v in zip(NAVER_KEYS, (self._id, self._secret), strict=True) if not v]
        if missing:
            raise ConfigError(
                f"environment variable(s) {' and '.join(missing)} not set (needed "
                f"for the Naver answers not yet in {self.cache.root}); export "
                "them or add them to .env"
            )

    def _fetch(self, category: str, params: dict[str, Any]) -> dict[str, Any]:
        """GET with retries; raises QuotaExceeded, ConfigError (credentials) or NaverError."""
        url = f"{self.cfg.base_url.rstrip('/')}/v1/search/{category}.json"
        headers = {"X-Naver-Client-Id": self._id or "", "X-Naver-Client-Secret": self._secret or ""}
        last, wait_hint = "", None
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                self.stats.add("retries")
                self._warnings.note(f"{category} search: {last}", self.stats.retries)
                time.sleep(backoff_s(attempt, wait_hint))
            self.budget.take()  # before sending: a call Naver may have counted is counted
            self.limiter.wait()
            try:
                resp = self._get(url, params, headers)
            except (
                requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema,
                requests.exceptions.InvalidURL,
            ) as exc:
                raise ConfigError(
                    f"search.base_url: {self.cfg.base_url!r} is not a usable "
                    f"http(s) URL ({type(exc).__name__})"
                ) from None
            except _TRANSIENT as exc:
                last, wait_hint = f"{type(exc).__name__} reaching {self.cfg.base_url}", None
                continue
            self.stats.add("calls")
            body = self._accept(resp, category, params["query"])
            if body is not None:
                return body
            last, wait_hint = (
                f"HTTP {resp.status_code} {_error(resp)[0] or ''}".strip(),
                retry_after_s(resp.headers),
            )
            log.debug("retrying %s %r: %s", category, params["query"], last)
        raise NaverError(
            f"Naver {category} search for query {params['query']!r} still failing "
            f"after {self.cfg.max_retries} retries ({last}); rerun to resume"
        )

    def _get(self, url: str, params: dict[str, Any], headers: dict[str, str]) -> requests.Response:
        """GET ``url``, following redirects only within its origin (scheme, host, port).

        The credentials travel in custom headers, which requests would carry to any host a
        redirect names (it strips only ``Authorization``): a redirect elsewhere is refused,
        naming its target, before anything is sent there. Naver itself never redirects.
        """
        resp = self.session.get(
            url, params=params, headers=headers, timeout=self.cfg.timeout_s, allow_redirects=False
        )
        for _ in range(MAX_REDIRECTS):
            if resp.status_code not in REDIRECT_STATUS or "location" not in resp.headers:
                return resp
            target = urljoin(resp.url, resp.headers["location"])
            resp.close()
            if not same_origin(url, target):
                raise NaverError(
                    f"{redact(resp.url, [self._id, self._secret])} redirected to "
                    f"{redact(target, [self._id, self._secret])}, another origin: the Naver "
                    "credentials are not sent there; set search.base_url to the API's own "
                    "address"
                )
            resp = self.session.get(
                target, headers=headers, timeout=self.cfg.timeout_s, allow_redirects=False
            )
        if resp.status_code in REDIRECT_STATUS:
            raise NaverError(f"{url}: more than {MAX_REDIRECTS} redirects; check search.base_url")
        return resp

    def _accept(self, resp: requests.Response, category: str, query: str) -> dict[str, Any] | None:
        """The body of a good answer; None when the call should be retried; raises otherwise."""
        code, message = _error(resp)
        status = resp.status_code
        if status == 200:
            try:
                body = resp.json()
            except ValueError:
                return None  # truncated or malformed: retry
            if not (isinstance(body, dict) and isinstance(body.get("items"), list)):
                return None
            # a lone surrogate (an emoji cut in half) cannot be cached as UTF-8: replace it
            body, replaced = replace_lone_surrogates(body)
            if replaced:
                log.warning(
                    "replaced %d invalid character(s) in Naver's answer for %r", replaced, query
                )
            return body
        if status == 403 and code != "024":
            # Naver's docs: 403 is a call over http instead of https (or an application
            # without the Search API), not a wrong key
            raise ConfigError(
                f"Naver refused the call (HTTP 403): search.base_url={self.cfg.base_url!r} must "
                "use https://, and the application must have the Search API enabled at "
                "developers.naver.com"
            )
        if status in (401, 403) or code == "024":
            raise ConfigError(
                f"Naver rejected the credentials in NAVER_CLIENT_ID / NAVER_CLIENT_SECRET "
                f"(HTTP {status}, errorCode {code or '-'}); check them and that the Search API "
                "is enabled for the application at developers.naver.com"
            )
        if status == 429 and code == "010":
            raise QuotaExceeded(
                "Naver's daily quota is exhausted (HTTP 429, errorCode 010); "
                "it resets at midnight KST"
            )
        if status == 429 or status >= 500:
            return None  # per-second limit (012) or server trouble: retry
        hint = "; check search.base_url" if status == 404 else ""  # SE05 or a wrong root
        message = redact(message, [self._id, self._secret])  # some servers echo headers
        raise NaverError(
            f"Naver refused the {category} search for query {query!r}: HTTP {status}"
            f", errorCode {code or '-'} {message}".rstrip()
            + hint
        )
