"""Naver Search API emulation (``GET /v1/search/{category}.json``).

Follows the public developers.naver.com search docs: URL parameters ``query``, ``display``
(1..100), ``start`` (1..1000), ``sort`` (sim|date); JSON errors ``{"errorMessage", "errorCode"}``.
Results are deterministic per (category, query, rank); titles/descriptions are Korean
real-estate text with the query words in ``<b>`` tags and HTML entities; cafearticle and kin
titles are what people post (:mod:`~seedtune_sandbox.sim.forum`: ``[질문]``, ``ㅠㅠ``, ads...).
Run the simulator with ``python -m seedtune_sandbox.sim --port 8000`` and call
``http://127.0.0.1:8000/v1/search/blog.json``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs

from seedtune.core.clock import KST
from seedtune_sandbox.sim import forum, korean, pages

CATEGORIES: tuple[str, ...] = ("blog", "news", "kin", "webkr", "cafearticle", "encyc")
_BASE_DATE = datetime(2026, 11, 20, 18, 0, tzinfo=KST)
_PRESS = (
    "hankyung",
    "mk",
    "chosun",
    "donga",
    "joongang",
    "hani",
    "khan",
    "edaily",
    "mt",
    "sedaily",
)
_SITES = (
    "land.example.co.kr",
    "realestate-info.kr",
    "zipguide.co.kr",
    "homeloan.or.kr",
    "budongsan.kr",
)

# name -> (HTTP status, errorCode, errorMessage)
ERRORS: dict[str, tuple[int, str, str]] = {
    "query": (400, "SE01", "Incorrect query request (잘못된 쿼리요청입니다.)"),
    "display": (400, "SE02", "Invalid display value (부적절한 display 값입니다.)"),
    "start": (400, "SE03", "Invalid start value (부적절한 start 값입니다.)"),
    "sort": (400, "SE04", "Invalid sort value (부적절한 sort 값입니다.)"),
    "api": (404, "SE05", "Invalid search api (존재하지 않는 검색 api 입니다.)"),
    "encoding": (400, "SE06", "Malformed encoding (잘못된 형식의 인코딩입니다.)"),
    "system": (500, "SE99", "System error (시스템 에러)"),
    "auth": (401, "024", "Authentication failed. (인증에 실패했습니다.)"),
    "rate": (429, "012", "Rate limit exceeded. (초당 호출 한도를 초과했습니다.)"),
    "quota": (429, "010", "Query limit exceeded. (호출 한도가 초과되었습니다.)"),
}

_TITLE_TEMPLATES: tuple[str, ...] = (
    '{q} 총정리: "{t}" 체크리스트 & 주의사항',
    "{q} 알아보기 <{y} {t} 가이드>",
    "[{p}] {q} 실제 후기 - {t} 편",
    "{q}, '{t}' 꼭 확인하세요",
    "{q} 궁금증 Q&A: {t}부터 {s}까지",
    '"{q}" {s} 한눈에 보기',
)
_DESC_TEMPLATES: tuple[str, ...] = (
    "{q} 관련해서 {t}의 {s|를} 정리했습니다. {p} 기준으로 {n} 수준이며, "
    '계약 전 "특약"과 등기부등본을 꼭 확인하세요.',
    "최근 {q} 문의가 많아 {t} & {s} 내용을 모았습니다. "
    "{x} 입장에서는 {n} 조건을 먼저 따져보는 것이 좋습니다.",
    "{x|가} {q|를} 진행할 때 '{t}' 문제로 분쟁이 생기는 경우가 있습니다. "
    "보증금 {n} 이상이면 <전세보증보험> 가입을 검토하세요.",
    "{p} {q} 사례: {t} 신청 시 {s|와} 필요 서류를 안내합니다. "
    '금리는 {n} 안팎이며 "중도금" 일정도 함께 확인해야 합니다.',
    "{q}에 대한 전문가 답변입니다. {t|은} {s}에 따라 달라지며, "
    "{n} 기준을 넘으면 세금 & 대출 규제가 적용될 수 있습니다.",
)


class SearchApiError(Exception):
    """A request error that maps to a Naver error response."""

    def __init__(self, name: str) -> None:
        status, _code, message = ERRORS[name]
        super().__init__(message)
        self.status = status
        self.payload = error_body(name)


def error_body(name: str) -> dict[str, str]:
    """The Naver error payload for an :data:`ERRORS` name.

    E.g. ``{"errorMessage": ..., "errorCode": "SE01"}``.
    """
    _status, code, message = ERRORS[name]
    return {"errorMessage": message, "errorCode": code}


_h = korean.seed_of


def escape(text: str) -> str:
    """HTML-escape like the Naver API does.

    ``&quot;``, ``&amp;``, ``&lt;``, ``&gt;``, ``&#39;``.
    """
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def highlight(escaped: str, query: str) -> str:
    """Wrap each occurrence of the (escaped) query words in ``<b>...</b>``."""
    words = sorted({escape(w) for w in query.split() if w}, key=len, reverse=True)
    if not words:
        return escaped
    out: list[str] = []
    i = 0
    while i < len(escaped):
        for w in words:
            if escaped.startswith(w, i):
                out.append(f"<b>{w}</b>")
                i += len(w)
                break
        else:
            out.append(escaped[i])
            i += 1
    return "".join(out)


def is_empty_query(query: str, empty_rate: float) -> bool:
    """Whether ``query`` deterministically returns zero results at this ``empty_rate``."""
    return (_h("empty", query) % 10_000) < empty_rate * 10_000


def total_for(category: str, query: str, empty_rate: float) -> int:
    """Deterministic ``total`` for a (category, query): 0 for the empty share, else 20..500."""
    if is_empty_query(query, empty_rate):
        return 0
    return 20 + _h("total", category, query) % 481


def parse_request(path: str, query_string: str) -> tuple[str, dict[str, Any]]:
    """Validate a search request; returns (category, params) or raises :class:`SearchApiError`."""
    name = path.rsplit("/", 1)[-1]
    if not name.endswith(".json") or name[: -len(".json")] not in CATEGORIES:
        raise SearchApiError("api")
    category = name[: -len(".json")]
    try:
        params = parse_qs(query_string, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise SearchApiError("encoding") from exc
    query = (params.get("query") or [""])[0]
    if not query.strip():
        raise SearchApiError("query")
    display = _int_param(params, "display", 10, 1, 100, "display")
    start = _int_param(params, "start", 1, 1, 1000, "start")
    sort = (params.get("sort") or ["sim"])[0]
    if sort not in ("sim", "date"):
        raise SearchApiError("sort")
    return category, {"query": query, "display": display, "start": start, "sort": sort}


def _int_param(
    params: dict[str, list[str]], key: str, default: int, lo: int, hi: int, name: str
) -> int:
    raw = params.get(key)
    if raw is None:
        return default
    try:
        value = int(raw[0])
    except ValueError as exc:
        raise SearchApiError(name) from exc
    if not lo <= value <= hi:
        raise SearchApiError(name)
    return value


def search(
    category: str,
    query: str,
    display: int = 10,
    start: int = 1,
    sort: str = "sim",
    *,
    empty_rate: float = 0.1,
    now: datetime | None = None,
    origins: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The 200 payload for a validated search request (``origins``: see :func:`item`)."""
    total = total_for(category, query, empty_rate)
    count = min(display, max(0, total - start + 1))
    items = [
        item(
            category, query, _doc_index(category, query, total, rank, sort), total, origins=origins
        )
        for rank in range(start, start + count)
    ]
    build = (now or datetime.now(KST)).astimezone(KST)
    return {
        "lastBuildDate": format_datetime(build),
        "total": total,
        "start": start,
        "display": count,
        "items": items,
    }


def _perm(category: str, query: str, total: int) -> tuple[int, int]:
    a = 2 + _h("a", category, query) % max(total - 2, 1)
    while math.gcd(a, total) != 1:
        a += 1
    return a % total or 1, _h("b", category, query) % total


def _doc_index(category: str, query: str, total: int, rank: int, sort: str) -> int:
    """Document index at 1-based ``rank``: identity for sim, a fixed permutation for date."""
    if sort == "sim":
        return rank - 1
    a, b = _perm(category, query, total)
    return (a * (rank - 1) + b) % total


def _date_rank(category: str, query: str, total: int, idx: int) -> int:
    a, b = _perm(category, query, total)
    return (pow(a, -1, total) * (idx - b)) % total


def _doc_date(category: str, query: str, total: int, idx: int) -> datetime:
    p = _date_rank(category, query, total, idx)
    return _BASE_DATE - timedelta(hours=36 * p, minutes=_h("min", category, query, idx) % 30)


def item(
    category: str, query: str, idx: int, total: int, origins: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The search item for document ``idx`` of (category, query), with per-category fields.

    ``origins`` (name -> ``http://host:port``, see :mod:`~seedtune_sandbox.sim.pages`) puts
    ``link``/``originallink`` on the simulator's page servers; None keeps Naver's real hosts.
    cafearticle and kin titles are forum titles (:mod:`~seedtune_sandbox.sim.forum`), but for
    the items shared across categories, which keep the article title they have everywhere.
    """
    shared = _h("shared", query, idx) % 8 == 0
    salt = "shared" if shared else category
    rng = random.Random(_h("item", salt, query, idx))
    words = [w for w in query.split() if w]
    slots = {
        "q": query,
        "t": rng.choice(korean.TOPICS),
        "s": rng.choice(korean.ASPECTS),
        "p": rng.choice(korean.PLACES),
        "x": rng.choice(korean.ACTORS),
        "n": rng.choice(korean.NUMBERS),
        "y": str(2024 + rng.randrange(3)),
    }
    title_plain = korean.render(rng.choice(_TITLE_TEMPLATES), slots)
    if category in forum.CATEGORIES and not shared:  # people's posts, not headlines
        title_plain = forum.title(random.Random(_h("forum", category, query, idx)), category, query)
    title = highlight(escape(title_plain), query)
    desc_plain = korean.render(rng.choice(_DESC_TEMPLATES), slots)
    extra = korean.sentence(rng, words + [slots["t"]], words[0] if words else None)
    description = highlight(escape(f"{desc_plain} {extra}"), query)
    doc = _h("doc", salt, query, idx)
    date = _doc_date(category, query, total, idx)
    page_links = pages.links(category, doc, origins, shared=shared) if origins else None
    if page_links:
        link = page_links["link"]
    elif shared:
        link = f"https://{_SITES[doc % len(_SITES)]}/article/{doc % 10**10}"
    else:
        link = _link(category, doc)
    out: dict[str, str] = {"title": title, "link": link, "description": description}
    if category == "blog":
        blog_id = f"land{doc % 100000:05d}"
        out["bloggername"] = korean.nickname(rng)
        blog_host = origins["blog"].split("://", 1)[-1] if origins else "blog.naver.com"
        out["bloggerlink"] = f"{blog_host}/{blog_id}"
        out["postdate"] = date.strftime("%Y%m%d")
    elif category == "news":
        original = (
            page_links["originallink"]
            if page_links
            else link
            if shared
            else (
                f"https://www.{_PRESS[doc % len(_PRESS)]}.co.kr/news/"
                f"articleView.html?idxno={doc % 10**7}"
            )
        )
        out = {
            "title": title,
            "originallink": original,
            "link": link,
            "description": description,
            "pubDate": format_datetime(date),
        }
    elif category == "cafearticle":
        cafe = f"homecafe{doc % 1000:03d}"
        out["cafename"] = (
            f"{rng.choice(korean.PLACES)} {rng.choice(('내집마련', '부동산 스터디', '맘카페'))}"
        )
        out["cafeurl"] = f"https://cafe.naver.com/{cafe}"
    elif category == "encyc":
        out["thumbnail"] = (
            f"https://dbscthumb-phinf.pstatic.net/{doc % 10000}_000_1/{doc % 10**8}.jpg"
            if doc % 3
            else ""
        )
    return out


def _link(category: str, doc: int) -> str:
    if category == "blog":
        return f"https://blog.naver.com/land{doc % 100000:05d}/22{doc % 10**10:010d}"
    if category == "news":
        return f"https://n.news.naver.com/mnews/article/{doc % 1000:03d}/{doc % 10**10:010d}"
    if category == "kin":
        return (
            f"https://kin.naver.com/qna/detail.naver?d1id=4&dirId=4020{doc % 10}"
            f"&docId={doc % 10**9}"
        )
    if category == "cafearticle":
        return f"https://cafe.naver.com/homecafe{doc % 1000:03d}/{doc % 10**7}"
    if category == "encyc":
        return f"https://terms.naver.com/entry.naver?docId={doc % 10**7}&cid=42094&categoryId=42094"
    return f"https://www.{_SITES[doc % len(_SITES)]}/board/{doc % 10**10}"
