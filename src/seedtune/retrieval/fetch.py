"""Fetch web pages politely, once: robots.txt, per-host pacing, size cap, Korean decoding.

:class:`PageFetcher` fetches the pages behind search results with aiohttp:

* **robots.txt** (RFC 9309, parsed by Protego) is read once per origin and honoured unless
  ``crawl.respect_robots`` is off: a 4xx robots.txt allows everything, a 5xx or unreachable
  one disallows everything for this run (the RFC's "unreachable" rule; it is asked again
  next run); an answer is kept for 24 hours. Redirects are followed up to five hops, and of
  a larger file the first 500 KiB are honoured (:data:`ROBOTS_MAX_BYTES`). A
  ``Crawl-delay`` longer than ``1 / crawl.host_rps`` is used instead, up to
  ``crawl.max_crawl_delay_s``: a host asking for more is skipped for this run
  (``crawl_delay_too_long``, not cached) rather than stall the crawl.
* **Politeness per host** (``host:port``): at most ``crawl.per_host`` requests in flight and
  at most ``crawl.host_rps`` started per second, ``crawl.concurrency`` over all hosts; a
  clear ``User-Agent`` (``crawl.user_agent``).
* **Redirects** are followed by hand (at most :data:`MAX_REDIRECTS`), so every hop is
  checked against its own host's robots.txt and pacing.
* **Frames**: a page whose body is a frame onto another address, as Naver blog's desktop
  page is (``<iframe id="mainFrame" src="/PostView.naver?...">``), is followed to the
  framed address, which serves the post itself. A ``blog.naver.com/{id}/{logNo}`` link
  goes straight to that address (:func:`post_address`), one request instead of two.
* **Size cap**: a body over ``crawl.max_bytes`` is not read further (``too_large``).
* **Decoding** (:func:`decode_html`): a BOM, else the charset the header declares, else the
  page's ``<meta>``, else UTF-8 (WHATWG's order); EUC-KR is read as its superset CP949, and
  a page that lies about its charset is decoded by what it is. Only text encodings a
  browser could use count as a declaration (``charset=base64`` is ignored). A page with a
  few bytes invalid in its charset keeps that charset, each bad byte a replacement
  character (``replaced_chars``); only a page mostly invalid under it goes to a detector
  (charset-normalizer), and a page nothing reads is ``bad_charset``.
* **Addresses** (:mod:`seedtune.retrieval.addresses`): only globally routable addresses are
  connected to, checked after DNS resolution on every request (each redirect hop, the
  robots.txt, the followed frame); private, loopback, link-local, multicast and reserved
  ones are ``blocked_address`` unless ``crawl.allow_networks`` lists them. A page whose
  redirect, frame or robots.txt leads to a refused address is ``blocked_address`` itself.
* **Proxies**: ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY`` are honoured as aiohttp's
  ``trust_env`` reads them (as requests and httpx do for the other clients), but set per
  request, so the address policy knows which requests the proxy connects for, and no
  ``.netrc`` password is sent to a crawled host. Through a proxy the proxy resolves the
  name: a literal refused IP, or a name that resolves *here* to a refused address, is still
  refused; a name this machine cannot resolve is left to the proxy.
* **Hostile input**: a link or redirect that is no usable http(s) URL is ``bad_url``, a
  response aiohttp cannot parse (status line, headers, body framing) ``bad_response``, and
  anything else that goes wrong with one link ``fetch_error`` (logged as a warning with the
  URL and the exception): one page never ends the crawl.

Every outcome is written to the :class:`~seedtune.core.cache.ResponseCache` the moment it
arrives, keyed by the URL: a killed run refetches only what was in flight, and a rerun
fetches nothing. Failures are outcomes too (``http_404``, ``robots``, ``timeout``,
``too_large``, ``not_html``, ``bad_url``, ``bad_charset``, ``blocked_address``, ...), so
they are not retried on every run; only a host that could not be reached at all
(``unreachable``: DNS, refused connection) is not cached, as nothing was fetched, and
neither are the links of a host whose robots.txt failed or asked for too long a delay
(:data:`NOT_CACHED`). A ``fetch_error`` is kept only while this module's code is the
same: fixed code asks again.
"""

from __future__ import annotations

import asyncio
import codecs
import contextvars
import ipaddress
import logging
import math
import re
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple
from urllib.parse import urljoin, urlsplit, urlunsplit

from seedtune.core.cache import ResponseCache, cache_key, code_fingerprint
from seedtune.core.config import CrawlConfig
from seedtune.core.retry import RetryWarnings, backoff_s, retry_after_s
from seedtune.retrieval.addresses import AddressPolicy, BlockedAddress, GuardedResolver

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
#: Redirects followed for a robots.txt (RFC 9309 §2.3.1.2: "at least five consecutive").
MAX_ROBOTS_REDIRECTS = 5
#: Bytes of a robots.txt honoured (RFC 9309 §2.5: parse at least 500 kibibytes); the rest
#: of a larger file is not read, whatever ``crawl.max_bytes`` is.
ROBOTS_MAX_BYTES = 500 * 1024
#: A longer link is ``bad_url`` (RFC 9110 §4.1 asks senders and recipients to support 8000
#: octets; no page worth crawling needs more).
MAX_URL_CHARS = 8000
#: Bytes of a page searched for a ``<meta charset>`` declaration (HTML says within 1024).
META_SNIFF_BYTES = 4096
#: Decoding with replacement characters is kept while at most this share of the page's
#: non-ASCII characters are replaced: a few bad bytes in a UTF-8 page cost a character
#: each (one in 2,711 Hangul syllables on a real page), while a CP949 page read as UTF-8
#: loses most of them (its share is over 0.5) and is decoded by what it is instead.
MAX_INVALID_SHARE = 0.2
HTML_TYPES = ("text/html", "application/xhtml+xml")
#: How long a robots.txt is trusted (RFC 9309: crawlers should not use one over 24 hours old).
ROBOTS_MAX_AGE_S = 24 * 3600
#: Outcomes that are not cached: nothing came back from the host (or from its robots.txt,
#: which then forbids everything for this run only), or its robots.txt asked for a
#: Crawl-delay over ``crawl.max_crawl_delay_s`` (a run with a higher cap fetches them).
NOT_CACHED = frozenset({"unreachable", "robots_unavailable", "crawl_delay_too_long"})
#: Outcomes cached only while this module's code is the same (:func:`_code_id`): what is
#: derived from them must not outlive that either.
CODE_BOUND = frozenset({"fetch_error"})
BLOCKED = "blocked_address"
#: The origin whose robots.txt the current task fetches (set in that task only): a refused
#: hop on the way to it refuses the origin's pages.
_ROBOTS_OF: contextvars.ContextVar[str | None] = contextvars.ContextVar("robots_of", default=None)
_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE
)
_FRAME_TAG = re.compile(r"<i?frame\b[^>]*>", re.IGNORECASE)
_ATTR = r"""\b{}\s*=\s*["']([^"']*)["']"""
# CP949 is the superset every Korean site's "EUC-KR" really is (unified Hangul code)
_ALIASES = {
    "euc-kr": "cp949",
    "euc_kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "ksc5601": "cp949",
    "x-windows-949": "cp949",
    "windows-949": "cp949",
    "ms949": "cp949",
}
#: What a charset label may look like (WHATWG's labels are all of these characters).
_LABEL = re.compile(r"[a-z0-9._:-]{1,40}")
#: Text codecs Python has that no browser decodes a page with (WHATWG's Encoding Standard
#: lists none of them): they raise on any input (``undefined``), read escapes or
#: hostnames rather than text, or are refused for safety (UTF-7). A declaration of one
#: is ignored, as a browser ignores a label it does not know.
_NOT_WEB = frozenset(
    {
        "undefined",
        "idna",
        "punycode",
        "unicode-escape",
        "raw-unicode-escape",
        "utf-7",
        "charmap",
        "utf-32",
        "utf-32-le",
        "utf-32-be",
    }
)
_C0_AND_SPACE = "".join(map(chr, range(0x21)))
_HOST = re.compile(r"[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*\.?")


def _codec(name: str | None) -> str | None:
    """A Python codec name for a declared charset, or None when it names no text encoding
    a page could be in (unknown, absurd, ``base64``/``rot13``/``zlib`` and other
    bytes-to-bytes codecs, :data:`_NOT_WEB`)."""
    if not name:
        return None
    name = name.strip().strip("'\"").strip().lower()
    name = _ALIASES.get(name, name)
    if not _LABEL.fullmatch(name):
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    # bytes-to-bytes (base64, hex, zlib) and str-to-str (rot13) codecs say so here
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_WEB:
        return None
    return info.name


def _bom(body: bytes) -> str | None:
    """The encoding a byte order mark names (WHATWG "BOM sniff": it beats any label)."""
    if body.startswith(codecs.BOM_UTF8):
        return "utf-8"
    if body.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be"
    if body.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le"
    return None


def _looks_utf16(body: bytes) -> bool:
    """Whether ``body`` could be UTF-16 at all: HTML markup is ASCII, so a UTF-16 page has
    a NUL in every other byte of it, and an ASCII-compatible page has next to none."""
    return body.count(b"\0") * 20 >= len(body) > 0


def declared_charset(content_type: str | None, body: bytes) -> str | None:
    """The charset the response declares, by WHATWG's HTML encoding sniffing order: a BOM,
    else the Content-Type header, else ``<meta>`` (only usable text encodings,
    :func:`_codec`; a bogus declaration is skipped for the next).

    Two of WHATWG's rules keep UTF-8 pages that claim UTF-16 readable: a ``<meta>`` saying
    UTF-16 means UTF-8 (the meta tag was found as ASCII, so the page is not UTF-16), and
    a header saying UTF-16 counts only for bytes that could be UTF-16 (browsers would honour
    it; a crawler keeps the page instead).
    """
    bom = _bom(body)
    if bom:
        return bom
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.partition("=")
        codec = _codec(value) if key.strip().lower() == "charset" else None
        if codec and (not codec.startswith("utf-16") or _looks_utf16(body)):
            return "utf-16-le" if codec == "utf-16" else codec  # WHATWG: the label is LE
    match = _META_CHARSET.search(body[:META_SNIFF_BYTES])
    codec = _codec(match.group(1).decode("ascii", "ignore")) if match else None
    return "utf-8" if codec and codec.startswith("utf-16") else codec


class Decoded(NamedTuple):
    """A decoded page: its text, the codec that read it, and how many replacement
    characters (U+FFFD) decoding put in for bytes that were not valid in that codec."""

    text: str
    charset: str
    replaced: int


def _tolerant(body: bytes, charset: str) -> tuple[str, int, float]:
    """``(text, replaced, share)``: ``body`` decoded with replacement characters, how many
    were put in, and their share of the non-ASCII characters (how wrong the codec is)."""
    text = body.decode(charset, errors="replace")
    # a U+FFFD the page itself spelled out in UTF-8 is text, not a decoding error
    literal = body.count(b"\xef\xbf\xbd") if charset.startswith("utf") else 0
    replaced = max(0, text.count("\ufffd") - literal)
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    return text, replaced, replaced / non_ascii if non_ascii else 0.0


class Undecodable(ValueError):
    """No charset reads the page: every candidate leaves most of it replaced and the
    detector has no guess (``bad_charset``)."""


def decode_html(body: bytes, content_type: str | None = None) -> Decoded:
    """The page decoded by what it declares, checked against what it is.

    The declared charset (:func:`declared_charset`) is tried strictly first; Korean pages
    that declare one and are another are common, so then UTF-8 and CP949. A page valid in
    none of them is decoded with replacement characters by the declared charset or UTF-8,
    whichever leaves fewer, as long as at most :data:`MAX_INVALID_SHARE` of its non-ASCII
    characters are replaced: one bad byte in a UTF-8 page costs one character, where a
    detector's guess would misread the whole page. Only a page mostly invalid under both
    is decoded by charset-normalizer's guess; with no guess, :class:`Undecodable`.
    """
    declared = declared_charset(content_type, body)
    candidates = list(dict.fromkeys(c for c in (declared, "utf-8", "cp949") if c))
    for charset in candidates:
        try:
            return Decoded(body.decode(charset).removeprefix("\ufeff"), charset, 0)
        except UnicodeError:  # a codec may raise its parent class, not UnicodeDecodeError
            continue
    tried: dict[str, tuple[str, int, float]] = {}
    for charset in candidates:
        try:
            tried[charset] = _tolerant(body, charset)
        except UnicodeError:
            continue
    # fewest replaced; min keeps the first of equals, so the declared charset wins a tie
    charset = min(tried, key=lambda c: tried[c][2])
    text, replaced, share = tried[charset]
    if share <= MAX_INVALID_SHARE:
        return Decoded(text.removeprefix("\ufeff"), charset, replaced)
    from charset_normalizer import from_bytes

    best = from_bytes(body[:200_000]).best()
    guess = _codec(best.encoding) if best is not None else None
    if guess is None:
        raise Undecodable(f"no charset reads it (declared {declared or 'none'})")
    try:
        text, replaced, _ = _tolerant(body, guess)
    except UnicodeError as exc:
        raise Undecodable(f"{guess}: {exc}") from None
    return Decoded(text.removeprefix("\ufeff"), guess, replaced)


def frame_target(html: str, base_url: str) -> str | None:
    """The address a frame page shows (Naver blog's ``<iframe id="mainFrame">``, or any
    frame onto a ``PostView`` address), or None.

    Only a main frame counts: ads and embedded players are iframes too, inside pages with
    text of their own.
    """
    for tag in _FRAME_TAG.findall(html):
        names = {
            m.lower()
            for key in ("id", "name")
            for m in re.findall(_ATTR.format(key), tag, re.IGNORECASE)
        }
        src = re.findall(_ATTR.format("src"), tag, re.IGNORECASE)
        target = src[0].strip() if src else ""
        # Naver blog's frame is id/name "mainFrame"; its src is the PostView address
        if target and ("mainframe" in names or "/postview." in target.lower()):
            return join_url(base_url, target.replace("&amp;", "&"))
    return None


_BLOG_POST = re.compile(r"^/([A-Za-z0-9_-]+)/(\d+)/?$")


def post_address(url: str) -> str:
    """Where a Naver blog post's body is served: ``blog.naver.com/{id}/{logNo}`` (a frame
    page on the desktop) becomes its ``PostView.naver`` address, saving a request per post;
    any other URL is returned as it is (and a frame page is still followed when fetched)."""
    try:
        parts = urlsplit(url)
    except (ValueError, TypeError, AttributeError):
        return url  # bad_url when fetched
    match = _BLOG_POST.match(parts.path)
    if parts.hostname in ("blog.naver.com", "m.blog.naver.com") and match:
        return (
            f"https://blog.naver.com/PostView.naver?blogId={match.group(1)}&logNo={match.group(2)}"
        )
    return url


def page_host(link: str) -> str | None:
    """The ``host:port`` a link's first request is paced by (a Naver blog post goes straight
    to its ``PostView`` address, :func:`post_address`), or None for a link not fetched."""
    url = clean_url(post_address(link))
    return urlsplit(url).netloc if url else None


def clean_url(url: Any) -> str | None:
    """``url`` as it is fetched, or None when it is no usable ``http(s)`` address (its
    outcome is then ``bad_url``): unparsable (``http://[::1/x``), no host, a port out of
    range, a host with spaces, control characters or empty labels, a name that is not
    valid IDNA, a host Python and yarl (aiohttp's parser) read differently, over
    :data:`MAX_URL_CHARS`. As WHATWG's URL parser does, surrounding spaces and control
    characters are stripped and tabs and newlines inside dropped; the host is lowercased,
    a default port, user info and the fragment dropped (no credentials from a link are
    sent, and one host is paced as one). Non-ASCII names (``한국.kr``) are kept; aiohttp
    sends them IDNA-encoded."""
    import yarl

    if not isinstance(url, str):
        return None
    # WHATWG: leading and trailing C0 controls and spaces are stripped, tabs and newlines
    # anywhere removed
    url = re.sub(r"[\t\n\r]", "", url.strip(_C0_AND_SPACE))
    if len(url) > MAX_URL_CHARS or re.search(r"[\x00-\x1f\x7f]", url):
        return None
    try:
        url.encode("utf-8")  # a lone surrogate (from a header's undecodable bytes)
        parts = urlsplit(url)
        port, host = parts.port, parts.hostname
        if parts.scheme.lower() not in ("http", "https") or not host or port == 0:
            return None
        # aiohttp's parser (yarl) must see the host Python does: where a backslash or an odd
        # "@" makes them disagree, pacing, robots and checks would follow another host
        ours = yarl.URL(url)
        raw, _ = (ours.raw_host or "").lower(), ours.host  # .host: the IDNA check (xn--zz)
        if not raw or raw != (yarl.URL.build(scheme="http", host=host).raw_host or "").lower():
            return None
    except (ValueError, UnicodeError):
        return None
    if ":" in raw:  # an IPv6 literal; yarl already checked it
        netloc = f"[{host}]"
    elif not _valid_host(raw):
        return None
    else:
        netloc = host
    scheme = parts.scheme.lower()
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        netloc += f":{port}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, ""))


def _valid_host(raw: str) -> bool:
    """Whether ``raw`` (an IDNA-encoded host) is a name DNS could hold or a dotted IPv4
    address; a name ending in a number that is no strict dotted quad (``256.1.1.1``,
    ``127.1``, ``0x7f.1``, ``2130706433``) is refused, as WHATWG's URL parser refuses it
    or reads it as an address the crawler's checks would not see written out."""
    if len(raw) > 253 or not _HOST.fullmatch(raw):
        return False
    last = raw.rstrip(".").rsplit(".", 1)[-1]
    if last.isdigit() or last.startswith("0x"):
        try:
            ipaddress.IPv4Address(raw.rstrip("."))
        except ValueError:
            return False
    return True


def join_url(base: str, location: str) -> str | None:
    """``location`` (a redirect's or a frame's address, maybe relative) resolved against
    ``base``, or None when it cannot be (``http://[::1/x``)."""
    try:
        return urljoin(base, location.strip())
    except ValueError:
        return None


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class _Retry(Exception):
    """An HTTP status worth another try (429, 5xx); ``http_<status>`` is the outcome if the
    retries run out."""

    def __init__(self, status: int, wait: float | None = None) -> None:
        super().__init__(f"http_{status}")
        self.status, self.wait = status, wait


class HostQueues:
    """Pages waiting to be fetched, one queue per host (``host:port`` of the address
    fetched first, :func:`post_address`), and the workers draining each. ``busiest()``
    names the host with the most pages left: at ``crawl.host_rps`` it sets the crawl's end.
    """

    def __init__(self, urls: Iterable[str] = ()) -> None:
        self.hosts: dict[str, deque[str]] = {}
        self.workers: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.pending = 0
        self._busiest: tuple[float, str] = (0.0, "")
        for url in urls:
            self.add(url)

    def add(self, url: str) -> str:
        """Queue ``url``; its host."""
        host = page_host(url) or ""  # not fetched (bad_url): any queue will do
        self.hosts.setdefault(host, deque()).append(url)
        self.pending += 1
        return host

    def wants_worker(self, host: str, per_host: int) -> bool:
        """Whether ``host`` has pages for one more worker (at most ``per_host``); if so the
        caller starts one, counted here."""
        if self.workers[host] < min(per_host, len(self.hosts.get(host) or ())):
            self.workers[host] += 1
            return True
        return False

    def take(self, host: str) -> str | None:
        """The next page of ``host``, or None when its queue is empty (the worker ends)."""
        queue = self.hosts.get(host)
        if not queue:
            self.workers[host] -= 1
            return None
        self.in_flight[host] += 1
        return queue.popleft()

    def finish(self, host: str) -> None:
        """One page of ``host`` is done."""
        self.in_flight[host] -= 1
        self.pending -= 1

    def left(self, host: str) -> int:
        """Pages of ``host`` queued or in flight."""
        return len(self.hosts.get(host) or ()) + self.in_flight[host]

    def busiest(self) -> str:
        """``"host pages"`` for the host with the most pages left ("" when none); worked
        out at most twice a second (there may be thousands of hosts)."""
        now = time.monotonic()
        if now - self._busiest[0] >= 0.5:
            counts = ((self.left(h), h) for h in self.hosts)
            n, host = max(counts, default=(0, ""))
            self._busiest = (now, f"{host} {n}" if n else "")
        return self._busiest[1]


class PageFetcher:
    """Fetch pages under robots.txt and per-host pacing; every outcome cached as it comes.

    ``fetch_all(urls)`` returns ``{url: outcome}`` where an outcome is ``{"url", "status",
    "final_url", "http_status", "charset", "html", "replaced_chars"}``; ``status`` is ``ok``
    or the reason there is no page. ``replaced_chars`` counts the bytes decoding had to
    replace (:class:`Decoded`); outcomes cached before it was kept lack it.
    ``counts`` tallies this run's outcomes, ``fetched`` the HTTP requests made (robots.txt
    included) and ``cached`` the pages answered from the cache. ``cfg`` is the ``crawl``
    section: the machine's settings and the params that change what is kept.
    """

    def __init__(self, cfg: CrawlConfig, cache: ResponseCache, desc: str = "crawl") -> None:
        self.cfg, self.cache, self.desc = cfg, cache, desc
        self.counts: Counter[str] = Counter()
        self.fetched = 0
        self.cached = 0
        self.retries = 0
        self._robots: dict[str, asyncio.Future[Any]] = {}
        self._host_gate: dict[str, asyncio.Semaphore] = {}
        self._host_lock: dict[str, asyncio.Lock] = {}
        self._host_next: dict[str, float] = {}
        self._host_delay: dict[str, float] = {}
        self._too_slow: dict[str, float] = {}  # host: the Crawl-delay over the cap it asked
        self._warnings = RetryWarnings(log, desc)
        self._gate: asyncio.Semaphore | None = None  # made in each run's event loop
        # parsed now, so a bad crawl.allow_networks entry stops the stage before any fetch
        # (each run builds its own policy, with the proxies of its environment: _run_policy)
        AddressPolicy.parse(cfg.allow_networks)
        self._resolver: GuardedResolver | None = None
        self._proxies: dict[str, Any] = {}
        self._proxied_checks: dict[tuple[str, int], asyncio.Future[str | None]] = {}
        self._blocked_sites: set[str] = set()
        self._logged_blocks: set[str] = set()

    # -- the cache -------------------------------------------------------------------------
    def _key(self, url: str) -> str:
        return cache_key({"page": url})

    def stored(self, url: str) -> dict[str, Any] | None:
        """The stored outcome for ``url`` if it still answers today's settings, else None.

        A page stored as ``too_large`` under a smaller cap, or as ``robots`` while robots
        are now ignored, is fetched again; a stored page over today's cap is ``too_large``.
        """
        value = self.cache.get(self._key(url))
        if not (isinstance(value, dict) and isinstance(value.get("status"), str)):
            return None
        status = value["status"]
        if status == "too_large" and int(value.get("max_bytes") or 0) < self.cfg.max_bytes:
            return None
        if status == "robots" and not self.cfg.respect_robots:
            return None
        if status == "ok" and int(value.get("bytes") or 0) > self.cfg.max_bytes:
            return {**value, "status": "too_large", "html": None}
        if status == "ok" and not isinstance(value.get("html"), str):
            return None
        if status == "fetch_error" and value.get("code") != _code_id():
            return None  # the code that failed has changed since: ask again
        if status == BLOCKED and value.get("allow_networks") != list(self.cfg.allow_networks):
            return None  # refused under another crawl.allow_networks: ask again
        return value

    # -- running ---------------------------------------------------------------------------
    def fetch_all(self, urls: list[str]) -> dict[str, dict[str, Any]]:
        """``{url: outcome}`` for every unique URL, in the order given (so outputs do not
        depend on which answer came first); cached ones are not fetched again. Holds every
        page in memory: for many pages use :meth:`fetch_each`."""
        out: dict[str, dict[str, Any]] = {}
        self.fetch_each(urls, out.__setitem__)
        return {url: out[url] for url in dict.fromkeys(urls) if url in out}

    def fetch_each(
        self, urls: Iterable[str], handle: Callable[[str, dict[str, Any]], None]
    ) -> None:
        """Call ``handle(url, outcome)`` once per unique URL as its outcome is known: a
        stored one (:meth:`stored`) or one fetched now, which is cached before ``handle``
        sees it. ``handle`` runs in one worker thread (calls never overlap) while fetching
        goes on, and a host's next page waits for it: pages in memory stay bounded by the
        hosts in flight, not by the crawl."""
        unique = list(dict.fromkeys(urls))
        if not unique:
            return
        try:
            asyncio.run(self._run(unique, handle))
        except ExceptionGroup as group:  # the task group's: the first error, as it was
            raise group.exceptions[0] from None

    async def _run(self, urls: list[str], handle: Callable[[str, dict[str, Any]], None]) -> None:
        import aiohttp
        from tqdm.auto import tqdm

        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_s)
        headers = {
            "User-Agent": self.cfg.user_agent,
            "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
            "Accept-Language": "ko-KR,ko;q=0.9,en;q=0.5",
        }
        # taken only around a request, never while a task waits for its host's turn: a
        # crawl is mostly one host (blog.naver.com), and its waiters must not starve others
        self._gate = asyncio.Semaphore(self.cfg.concurrency)
        # locks and futures belong to one event loop: a second run starts afresh
        self._robots, self._host_gate, self._host_lock, self._host_next = {}, {}, {}, {}
        self._too_slow = {}
        self._proxied_checks, self._blocked_sites = {}, set()
        self._resolver = GuardedResolver(self._run_policy())
        loop = asyncio.get_running_loop()
        stored = [u for u in urls if self._key(u) in self.cache]
        queues = HostQueues([u for u in urls if self._key(u) not in self.cache])
        if queues.pending:
            log.info(
                "%s: %d pages to fetch from %d hosts (%d stored); busiest %s",
                self.desc,
                queues.pending,
                len(queues.hosts),
                len(stored),
                queues.busiest(),
            )
        bar = tqdm(total=len(urls), desc=self.desc, unit="page")
        worker_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.desc)

        async def done(url: str, outcome: dict[str, Any]) -> None:
            await loop.run_in_executor(worker_thread, handle, url, outcome)
            self.counts[outcome["status"]] += 1
            bar.update(1)
            bar.set_postfix(
                ok=self.counts["ok"],
                failed=sum(self.counts.values()) - self.counts["ok"],
                retries=self.retries,
                busiest=queues.busiest(),
                refresh=False,
            )

        # trust_env stays off: the proxy is set per request (_proxy_for, from the same
        # variables), and trust_env would also send .netrc passwords to crawled hosts
        async with aiohttp.ClientSession(
            timeout=timeout,
            headers=headers,
            auto_decompress=True,
            trust_env=False,
            connector=aiohttp.TCPConnector(limit=self.cfg.concurrency, resolver=self._resolver),
        ) as session:

            async def fetch_host(host: str) -> None:
                while (url := queues.take(host)) is not None:
                    outcome = await self._outcome(session, url)
                    if outcome["status"] not in NOT_CACHED:
                        self.cache.put(self._key(url), outcome)
                    queues.finish(host)
                    await done(url, outcome)

            async def from_store(group: asyncio.TaskGroup) -> None:
                for url in stored:
                    # read one at a time: the stored pages are never all in memory
                    hit = await loop.run_in_executor(worker_thread, self.stored, url)
                    if hit is None:  # stale under today's settings, or damaged: fetch it
                        spawn(group, queues.add(url))
                        continue
                    self.cached += 1
                    await done(url, hit)

            def spawn(group: asyncio.TaskGroup, host: str) -> None:
                while queues.wants_worker(host, self.cfg.per_host):
                    group.create_task(fetch_host(host))

            try:
                async with asyncio.TaskGroup() as group:
                    for host in list(queues.hosts):
                        spawn(group, host)
                    group.create_task(from_store(group))
            finally:
                bar.close()
                worker_thread.shutdown(wait=True, cancel_futures=True)

    async def _outcome(self, session: Any, url: str) -> dict[str, Any]:
        """:meth:`_page`, and whatever it raises the link's ``fetch_error`` outcome (with
        the exception's class, and this code's identity: fixed code asks again), logged as a
        warning with the URL: a bug met on one page is seen, and the crawl goes on."""
        try:
            return await self._page(session, url)
        except Exception as exc:  # noqa: BLE001 - one link's failure, logged with its URL
            log.warning(
                "%s: %s: %s: %s (kept as fetch_error)",
                self.desc,
                url,
                type(exc).__name__,
                exc,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            return {
                "url": url,
                "status": "fetch_error",
                "final_url": None,
                "http_status": None,
                "charset": None,
                "html": None,
                "error": type(exc).__name__,
                "code": _code_id(),
            }

    async def _page(self, session: Any, url: str) -> dict[str, Any]:
        """One page: redirects and one main frame followed, each hop under robots."""
        outcome: dict[str, Any] = {
            "url": url,
            "status": "ok",
            "final_url": None,
            "http_status": None,
            "charset": None,
            "html": None,
        }
        current: str | None = post_address(url)
        framed = False
        for _ in range(MAX_REDIRECTS + 2):
            current = clean_url(current)
            if current is None:  # the link, a redirect's Location or a frame's src
                return {**outcome, "status": "bad_url"}
            refused = await self._refused(current)  # before robots.txt: nothing is asked
            if refused:
                return self._ended(outcome, refused, current)
            allowed = await self._allowed(session, current)
            if origin(current) in self._blocked_sites:  # its robots.txt led somewhere refused
                return self._ended(outcome, BLOCKED, current)
            if allowed != "ok":
                return {**outcome, "status": allowed, "final_url": current}
            result = await self._get(session, current)
            outcome.update(final_url=current, http_status=result.get("http_status"))
            if "location" in result:
                current = join_url(current, result["location"])
                continue
            if result["status"] != "ok":
                return self._ended(outcome, result["status"], current)
            try:
                html, charset, replaced = decode_html(result["body"], result.get("content_type"))
            except Undecodable as exc:
                log.debug("%s: %s: %s", self.desc, current, exc)
                return {**outcome, "status": "bad_charset"}
            target = None if framed else frame_target(html, current)
            if target and target != current:
                current, framed = target, True  # Naver blog: the post lives in the frame
                continue
            return {
                **outcome,
                "charset": charset,
                "html": html,
                "bytes": len(result["body"]),
                "replaced_chars": replaced,
            }
        return {**outcome, "status": "too_many_redirects"}

    def _ended(self, outcome: dict[str, Any], status: str, url: str) -> dict[str, Any]:
        """``outcome`` ended with ``status`` at ``url``, with what says under which
        settings (a larger cap or another allow list fetches it again, :meth:`stored`)."""
        extra: dict[str, Any] = {}
        if status == "too_large":
            extra["max_bytes"] = self.cfg.max_bytes
        elif status == BLOCKED:
            extra.update(final_url=url, allow_networks=list(self.cfg.allow_networks))
        return {**outcome, "status": status, **extra}

    # -- addresses -------------------------------------------------------------------------
    def _run_policy(self) -> AddressPolicy:
        """This run's policy: ``crawl.allow_networks`` plus the proxies from the environment
        (read now), which are connected to whatever their address."""
        from aiohttp.helpers import proxies_from_env

        policy = AddressPolicy.parse(self.cfg.allow_networks)
        self._proxies = {
            scheme: (info.proxy, info.proxy_auth) for scheme, info in proxies_from_env().items()
        }
        for proxy, _ in self._proxies.values():
            if proxy.raw_host and proxy.port:
                policy.allow_exact(proxy.raw_host, proxy.port)
        return policy

    def _proxy_for(self, url: Any) -> tuple[Any, Any] | None:
        """``(proxy, auth)`` for a yarl ``url``, or None: what aiohttp's ``trust_env`` would
        pick (``*_PROXY`` by scheme, unless ``NO_PROXY`` names the host)."""
        from urllib.request import proxy_bypass

        if not self._proxies or (url.host is not None and proxy_bypass(url.host)):
            return None
        return self._proxies.get(url.scheme)

    async def _refused(self, url: str) -> str | None:
        """``blocked_address`` (or ``bad_url``) for a URL refused before any request, or
        None: a literal IP is checked here, as is a name fetched through a proxy (resolved
        here, :meth:`_proxied_refusal`); any other name is checked by the resolver as the
        connection is made (:class:`GuardedResolver`)."""
        from aiohttp.helpers import is_ip_address
        from yarl import URL

        try:
            parsed = URL(url)
            host, port = parsed.raw_host, parsed.port
        except (ValueError, TypeError):
            return "bad_url"
        if not host or port is None:
            return "bad_url"
        assert self._resolver is not None
        if is_ip_address(host):
            why = self._resolver.policy.literal_refusal(host, port)
        elif self._proxy_for(parsed) is not None:
            why = await self._proxied_refusal(host, port)
        else:
            return None
        if why is None:
            return None
        self._log_block(url, why)
        return BLOCKED

    async def _proxied_refusal(self, host: str, port: int) -> str | None:
        """Why ``host:port``, fetched through a proxy, is refused: one of the addresses it
        resolves to on this machine is (the proxy may pick any); None when all are allowed
        or it does not resolve here (the proxy resolves it). Once per run and host."""
        assert self._resolver is not None
        resolver = self._resolver
        if resolver.policy.name_allowed(host, port):
            return None

        async def check() -> str | None:
            try:
                results = await asyncio.wait_for(
                    resolver.inner.resolve(host, port, family=0), self.cfg.timeout_s
                )
            except (OSError, TimeoutError):
                return None
            whys = (resolver.policy.refusal(r["host"], port, host) for r in results)
            return next((why for why in whys if why), None)

        if (host, port) not in self._proxied_checks:
            self._proxied_checks[(host, port)] = asyncio.ensure_future(check())
        return await self._proxied_checks[(host, port)]

    def _log_block(self, url: str, why: str) -> None:
        """Note a refused URL: the origin of a robots.txt being fetched is refused with it,
        and each host is logged once."""
        site = _ROBOTS_OF.get()
        if site is not None:
            self._blocked_sites.add(site)
        host = urlsplit(url).netloc
        if host not in self._logged_blocks:
            self._logged_blocks.add(host)
            log.info(
                "%s: not fetching from %s: %s (crawl.allow_networks lets an address through)",
                self.desc,
                host,
                why,
            )

    # -- robots.txt ------------------------------------------------------------------------
    async def _allowed(self, session: Any, url: str) -> str:
        """``ok`` when ``url`` may be fetched now, else its outcome: ``robots`` (robots.txt
        disallows it), ``robots_unavailable`` (robots.txt could not be read) or
        ``crawl_delay_too_long`` (its host asks for more than ``crawl.max_crawl_delay_s``)."""
        if not self.cfg.respect_robots:
            return "ok"
        site = origin(url)
        if site not in self._robots:  # one robots.txt request per origin, however many wait
            self._robots[site] = asyncio.ensure_future(self._robots_of(session, site))
        rules = await self._robots[site]
        if rules is None:  # unreachable or 5xx: RFC 9309 says assume complete disallow
            return "robots_unavailable"
        if rules is not True and not rules.can_fetch(url, self.cfg.user_agent):
            return "robots"
        # a disallowed page is "robots" (kept) whatever the delay; an allowed one waits
        # for a run whose cap is higher
        return "crawl_delay_too_long" if urlsplit(url).netloc in self._too_slow else "ok"

    async def _robots_file(self, session: Any, site: str) -> dict[str, Any]:
        """``site``'s robots.txt as :meth:`_get` answers it, redirects followed.

        RFC 9309 §2.3.1.2: crawlers SHOULD follow at least five consecutive redirects, even
        across authorities, and use the file reached for the initial authority; after more
        than five they MAY assume the file is "unavailable", which §2.3.1.3 makes the 4xx
        case (the crawler MAY access any resource). So more hops, or a redirect to no
        usable URL, is ``too_many_redirects`` / ``bad_url``, both read as allow-all. Each hop
        is an ordinary request: paced by its own host, under the same checks as a page.
        """
        url = f"{site}/robots.txt"
        result: dict[str, Any] = {}
        for _ in range(MAX_ROBOTS_REDIRECTS + 1):
            refused = await self._refused(url)  # each hop checked, as a page's are
            if refused:
                return {"status": refused, "http_status": None}
            result = await self._get(session, url, robots=True)
            if "location" not in result:
                return result
            target = clean_url(join_url(url, result["location"]))
            if target is None:
                return {"status": "bad_url", "http_status": result.get("http_status")}
            url = target
        return {"status": "too_many_redirects", "http_status": result.get("http_status")}

    async def _robots_of(self, session: Any, site: str) -> Any:
        """:meth:`_load_robots` in a task that knows it fetches ``site``'s robots.txt."""
        _ROBOTS_OF.set(site)  # this task's own context: no other request sees it
        return await self._load_robots(session, site)

    async def _load_robots(self, session: Any, site: str) -> Any:
        """Protego rules for ``site``, True (allow all) or None (disallow all); cached."""
        key = cache_key({"robots": site})
        stored = self.cache.get(key)
        # a "too_large" answer was kept when a large file meant no rules: read it again
        fresh = (
            isinstance(stored, dict)
            and isinstance(stored.get("status"), str)
            and (stored["status"] == "ok" or _robots_missing(stored))
            and time.time() - float(stored.get("fetched_at") or 0) < ROBOTS_MAX_AGE_S
        )
        if not fresh:
            result = await self._robots_file(session, site)
            ok = result["status"] == "ok"
            stored = {
                "status": result["status"],
                "http_status": result.get("http_status"),
                # RFC 9309 §2.3: the file is UTF-8; a byte that is not costs itself
                "text": result["body"].decode("utf-8", "replace") if ok else None,
                "fetched_at": time.time(),
            }
            # an answer is kept (RFC 9309: at most 24 hours); a 5xx, a timeout or no
            # connection is not, so the next run that needs this site asks again
            if ok or _robots_missing(stored):
                self.cache.put(key, stored)
        if stored["status"] == "ok" and isinstance(stored.get("text"), str):
            return self._rules(site, stored["text"])  # None when it cannot be parsed
        if _robots_missing(stored):
            return True  # no robots.txt: everything is allowed
        log.warning(
            "%s: %s/robots.txt answered %s; not fetching from that site",
            self.desc,
            site,
            stored["status"],
        )
        return None

    def _rules(self, site: str, text: str) -> Any:
        """Protego's rules of ``text``; its Crawl-delay, if any, noted for ``site``'s host:
        used when within ``crawl.max_crawl_delay_s``, else the host's links wait for
        another run (one warning per host)."""
        from protego import Protego

        try:
            rules = Protego.parse(text)
            delay = rules.crawl_delay(self.cfg.user_agent)
        except Exception as exc:  # noqa: BLE001 - the parser's bug: the site waits, logged
            log.warning(
                "%s: %s/robots.txt could not be parsed (%s: %s); not fetching from "
                "that site this run",
                self.desc,
                site,
                type(exc).__name__,
                exc,
            )
            return None
        host = urlsplit(site).netloc
        # Protego reads any float: NaN and a delay of zero or less mean none; "inf" is long
        if delay is not None and not math.isnan(delay) and delay > 0:
            if delay > self.cfg.max_crawl_delay_s:
                if host not in self._too_slow:
                    log.warning(
                        "%s: %s asks for a Crawl-delay of %g s, over "
                        "crawl.max_crawl_delay_s (%g s); its pages are skipped this "
                        "run (crawl_delay_too_long)",
                        self.desc,
                        host,
                        delay,
                        self.cfg.max_crawl_delay_s,
                    )
                self._too_slow[host] = float(delay)
            else:
                self._host_delay[host] = float(delay)
        return rules

    # -- one HTTP request ------------------------------------------------------------------
    async def _pace(self, host: str) -> None:
        """Wait for ``host``'s next slot: ``1 / host_rps`` apart, or its Crawl-delay."""
        loop = asyncio.get_running_loop()
        lock = self._host_lock.setdefault(host, asyncio.Lock())
        # the lock is held through the sleep, and the next slot counts from when this one
        # really went: a late wake-up never lets two requests bunch up inside one interval
        async with lock:
            interval = max(1.0 / self.cfg.host_rps, self._host_delay.get(host, 0.0))
            wait = self._host_next.get(host, 0.0) - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._host_next[host] = loop.time() + interval

    async def _get(self, session: Any, url: str, robots: bool = False) -> dict[str, Any]:
        """One GET with retries: ``{"status", "http_status", "body", "content_type"}`` or
        ``{"location"}`` for a redirect."""
        import aiohttp

        # the caller checked ``url`` against the address policy (a page hop, a robots hop)
        host = urlsplit(url).netloc
        gate = self._host_gate.setdefault(host, asyncio.Semaphore(self.cfg.per_host))
        for attempt in range(self.cfg.max_retries + 1):
            try:
                async with gate:
                    await self._pace(host)
                    assert self._gate is not None
                    async with self._gate:
                        self.fetched += 1
                        return await self._request(session, url, robots)
            except _Retry as exc:
                reason, code, wait = f"http_{exc.status}", exc.status, exc.wait
            except TimeoutError:
                reason, code, wait = "timeout", None, None
            except (aiohttp.ClientHttpProxyError, aiohttp.ClientConnectionError) as exc:
                blocked = getattr(exc, "os_error", None)
                if isinstance(blocked, BlockedAddress):  # the resolver refused: nothing sent
                    self.fetched -= 1
                    self._log_block(url, str(blocked))
                    return {"status": BLOCKED, "http_status": None}
                # nothing came from the host itself (DNS, refused, reset, a proxy's refusal)
                reason, code, wait = "unreachable", None, None
                log.debug("%s: %s: %s", self.desc, url, exc)
            except aiohttp.InvalidURL as exc:  # one clean_url let through and yarl did not
                log.debug("%s: %s: %s", self.desc, url, exc)
                return {"status": "bad_url", "http_status": None}
            except aiohttp.ClientResponseError as exc:
                # the host answered what is no HTTP (a bad status line, header or chunk):
                # the same again next time, so not retried
                log.debug("%s: %s: %s", self.desc, url, exc)
                return {"status": "bad_response", "http_status": None}
            except aiohttp.ClientError as exc:  # a body cut short or not in its encoding
                reason, code, wait = "bad_response", None, None
                log.debug("%s: %s: %s", self.desc, url, exc)
            if attempt == self.cfg.max_retries:
                return {"status": reason, "http_status": code}
            self.retries += 1
            self._warnings.note(f"{url}: {reason}", self.retries)
            await asyncio.sleep(backoff_s(attempt + 1, wait))
        raise AssertionError("unreachable")  # the loop always returns

    async def _request(self, session: Any, url: str, robots: bool) -> dict[str, Any]:
        """One request: a redirect's ``{"location"}``, or an outcome with the body. Headers
        are read as data that may be anything: an empty Location is no redirect, a junk
        Retry-After no hint, a Content-Length that is no number no size."""
        from yarl import URL

        proxy, proxy_auth = self._proxy_for(URL(url)) or (None, None)
        async with session.get(
            url, allow_redirects=False, proxy=proxy, proxy_auth=proxy_auth
        ) as resp:
            code = resp.status
            location = (resp.headers.get("Location") or "").strip()
            if code in (301, 302, 303, 307, 308) and location:
                return {"location": location, "http_status": code}
            if code == 429 or code >= 500:
                raise _Retry(code, _retry_after(resp.headers))
            if code != 200:
                return {"status": f"http_{code}", "http_status": code}
            ctype = resp.headers.get("Content-Type", "")
            if not robots and ctype and ctype.split(";")[0].strip().lower() not in HTML_TYPES:
                return {"status": "not_html", "http_status": code}
            # robots.txt has its own cap, and of a larger one the first part counts
            limit = ROBOTS_MAX_BYTES if robots else self.cfg.max_bytes
            length = (resp.headers.get("Content-Length") or "").strip()
            if not robots and re.fullmatch(r"[0-9]{1,20}", length) and int(length) > limit:
                return {"status": "too_large", "http_status": code}
            body = bytearray()
            async for chunk in resp.content.iter_chunked(65536):
                body += chunk
                if len(body) > limit and robots:
                    # RFC 9309 §2.5: parse at least the first 500 KiB; a line cut in two
                    # is not a rule
                    head = bytes(body[:limit])
                    return {
                        "status": "ok",
                        "http_status": code,
                        "truncated": True,
                        "body": head[: head.rfind(b"\n") + 1],
                        "content_type": ctype,
                    }
                if len(body) > limit:
                    return {"status": "too_large", "http_status": code}
            return {"status": "ok", "http_status": code, "body": bytes(body), "content_type": ctype}


def _retry_after(headers: Any) -> float | None:
    """The server's Retry-After in seconds, or None for none or one that is no finite
    number of seconds or date."""
    try:
        wait = retry_after_s(headers)
    except (ValueError, TypeError, OverflowError):
        return None
    return wait if wait is not None and math.isfinite(wait) else None


#: Stored robots.txt answers that mean "no robots.txt" (allow all, cached): see
#: :meth:`PageFetcher._robots_file` for the two besides a 4xx.
_ROBOTS_KEPT = frozenset({"too_many_redirects", "bad_url"})


def _robots_missing(stored: dict[str, Any]) -> bool:
    """Whether a robots.txt answer means there is none (RFC 9309 "unavailable")."""
    code = stored.get("http_status") or 0
    # a 429 is the server being busy, not the file missing: "unreachable", as a 5xx is
    return stored["status"] in _ROBOTS_KEPT or (
        isinstance(code, int)
        and 400 <= code < 500
        and code != 429
        and stored["status"] == f"http_{code}"
    )


_CODE_ID: list[str] = []


def _code_id() -> str:
    """12 hex digits naming this module's code and the HTTP libraries' versions: a
    ``fetch_error`` kept under other code is asked again (the error may be fixed)."""
    if not _CODE_ID:
        _CODE_ID.append(
            code_fingerprint([sys.modules[__name__]], ("aiohttp", "yarl", "protego"))[:12]
        )
    return _CODE_ID[0]
