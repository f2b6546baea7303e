"""Web pages behind the simulator's Naver Search links (pure: a path in, bytes out).

With ``SimConfig(pages=True)`` (the default) the simulator runs one extra loopback listener per
web *origin* (see :data:`ORIGINS`) and the search emulation writes its ``link``/``originallink``
onto them, in the shapes the real sites use:

- ``blog``: blog.naver.com; links ``/{blogId}/{logNo}``;
- ``news``: n.news.naver.com; news ``link`` ``/mnews/article/{oid}/{aid}``;
- ``press``: publishers in UTF-8, charset in the Content-Type header; news ``originallink``
  ``/news/articleView.html?idxno=N``;
- ``press_euckr``: publishers in EUC-KR (CP949 bytes) that declare it only in a ``<meta>``
  (``charset=`` or ``http-equiv``), the header saying just ``text/html``; same paths as press
  (a third of the news items);
- ``kin``: kin.naver.com Q&A; ``/qna/detail.naver?d1id=4&dirId=..&docId=N``;
- ``web``: the other sites (webkr, cafearticle, encyc and items shared across categories):
  ``/board/N``, ``/article/N``, ``/cafe/{cafe}/N``, ``/entry.naver?docId=N``;
- ``slow``: any of the above paths, each response delayed by ``SimConfig.page_delay_s``.

Every origin serves every path shape (the router looks at the path only); the origin decides the
charset (press_euckr), the ``robots.txt`` (web) and the delay (slow).

Pages. ``/{blogId}/{logNo}`` is a frame page, as on Naver blog: no text, an ``<iframe
id="mainFrame" src="/PostView.naver?blogId=..&logNo=..&redirect=Dlog&...">``; ``/PostView.naver``
carries the post in SmartEditor ONE markup (``div.se-main-container``) between a navigation
bar, a profile box, a 공감/댓글 comment list and a footer. Publisher pages have a headline, a
byline with the reporter's e-mail, the body, a 관련기사 list and a "무단전재 및 재배포 금지"
footer; kin pages a question and one or two 답변; web pages a board post with nav, sidebar and
comments. The body is about the search query whose answer carried the link (a
:class:`PageRegistry` remembers link -> query); a path nobody was given still gets a
deterministic generic real-estate page.

Faults, all deterministic. Every link has a numeric id (logNo, aid/idxno, docId, board or article
number; all congruent to the search item's hash modulo 100), and ``r = id % 20``:

- ``r == 3`` (5%): the link is written in a legacy form that redirects on the same origin:
  blog ``/PostView.nhn?blogId=..&Redirect=Log&logNo=..`` -> 301 ``/PostView.naver?...`` (the
  post itself, no frame); news ``/main/read.naver?mode=LSD&mid=sec&sid1=101&oid=..&aid=..`` ->
  302 ``/mnews/article/{oid}/{aid}?sid=101``; publishers
  ``/news/quickViewArticleView.html?idxno=N`` -> 302 ``/news/articleView.html?idxno=N``; kin
  ``/qna/detail.nhn?...`` -> 301 ``/qna/detail.naver?...``; web ``/bbs/board.php?bo_table=free&
  wr_id=N`` -> 301 ``/board/N`` and ``/article.php?id=N`` -> 301 ``/article/N``;
- ``r == 7`` (5%): 404 on every path of that id (deleted post);
- ``r == 9`` (5%): the fetched link (``originallink`` for news) is on the slow origin;
- ``id % 100 == 13`` (1%): the page is over 3 MB (an inline JSON state blob in ``<head>``);
- robots.txt: every origin serves ``User-agent: *``; web's says ``Disallow: /private/``, the
  others allow everything. Links under it: shared items (the same link in several categories,
  1 in 8) with ``(id // 20) % 3 != 0`` -> ``/private/article/N``, and webkr boards with
  ``(id // 20) % 10 == 1`` -> ``/private/board/N`` (both on web, never slow nor legacy). A
  disallowed page is still served when fetched.

Also 404: ``/favicon.ico`` and static files (``.png``, ``.css``, ...).

For tests (functions of the URL or path alone, valid across processes):
:func:`page_only_sentences` (body sentences no search title/description ever contains),
:func:`planted_pii` (the personal data planted in the body, exactly as written: mobile,
landline, 070 and +82 numbers, e-mail, resident registration, Luhn card and bank account
numbers; plus the reporter's e-mail on news pages), :func:`lookalikes` (prices, dates, areas,
lot/unit and 1588 numbers that must survive masking) and :func:`fault`. A frame or redirecting
URL answers for the page it leads to.
"""

from __future__ import annotations

import html
import random
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from seedtune_sandbox.sim import korean

ORIGINS: tuple[str, ...] = ("blog", "news", "press", "press_euckr", "kin", "web", "slow")
OVERSIZED_BYTES = 3_300_000
_STATIC = (".ico", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".css", ".js", ".woff", ".woff2")
_PRESS_NAMES = ("한국경제", "매일경제", "머니투데이", "이데일리", "서울경제", "헤럴드경제")


_h = korean.seed_of


# --- links (used by naver_api when pages are on) ---------------------------------------------


def links(category: str, doc: int, origins: Mapping[str, str], *, shared: bool) -> dict[str, str]:
    """``{"link": ...}`` (and ``"originallink"`` for news) for search item hash ``doc``."""
    r = doc % 20
    slow = r == 9

    def at(name: str, path: str) -> str:
        return origins["slow" if slow else name] + path

    if shared:
        n = doc % 10**10
        if (n // 20) % 3 != 0:
            url = origins["web"] + f"/private/article/{n}"
        else:
            url = at("web", f"/article.php?id={n}" if r == 3 else f"/article/{n}")
        return {"link": url, "originallink": url} if category == "news" else {"link": url}
    if category == "blog":
        blog_id, log_no = f"land{doc % 100000:05d}", f"22{doc % 10**10:010d}"
        path = (
            f"/PostView.nhn?blogId={blog_id}&Redirect=Log&logNo={log_no}"
            if r == 3
            else f"/{blog_id}/{log_no}"
        )
        return {"link": at("blog", path)}
    if category == "news":
        oid, aid = f"{doc % 1000:03d}", f"{doc % 10**10:010d}"
        idxno = doc % 10**7
        press = "press_euckr" if (doc // 20) % 3 == 0 else "press"
        if r == 3:
            portal = f"/main/read.naver?mode=LSD&mid=sec&sid1=101&oid={oid}&aid={aid}"
            original = f"/news/quickViewArticleView.html?idxno={idxno}"
        else:
            portal = f"/mnews/article/{oid}/{aid}"
            original = f"/news/articleView.html?idxno={idxno}"
        return {"link": origins["news"] + portal, "originallink": at(press, original)}
    if category == "kin":
        script = "detail.nhn" if r == 3 else "detail.naver"
        return {"link": at("kin", f"/qna/{script}?d1id=4&dirId=4020{doc % 10}&docId={doc % 10**9}")}
    if category == "cafearticle":
        return {"link": at("web", f"/cafe/homecafe{doc % 1000:03d}/{doc % 10**7}")}
    if category == "encyc":
        return {"link": at("web", f"/entry.naver?docId={doc % 10**7}&cid=42094&categoryId=42094")}
    n = doc % 10**10
    if (n // 20) % 10 == 1:
        return {"link": origins["web"] + f"/private/board/{n}"}
    return {
        "link": at("web", f"/bbs/board.php?bo_table=free&wr_id={n}" if r == 3 else f"/board/{n}")
    }


# --- routing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """What a path is: ``kind`` (layout), ``key`` (the page's identity across its URLs), the
    numeric ``id`` the fault rules read (None for generic pages) and a redirect target."""

    kind: str
    key: str
    id: int | None = None
    redirect: tuple[int, str] | None = None
    params: dict[str, str] = field(default_factory=dict)


def _path_qs(url_or_path: str) -> str:
    parts = urlsplit(url_or_path)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _digits(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def route(url_or_path: str) -> Route:
    """Parse a URL or ``path?query`` into its :class:`Route`."""
    parts = urlsplit(url_or_path)
    path = parts.path or "/"
    q = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    segs = [s for s in path.split("/") if s]
    if path == "/robots.txt":
        return Route("robots", "robots")
    if path.lower().endswith(_STATIC):
        return Route("missing", f"path:{path}")
    if (
        path in ("/PostView.naver", "/PostView.nhn")
        and q.get("blogId")
        and _digits(q.get("logNo")) is not None
    ):
        key = f"blog/{q['blogId']}/{q['logNo']}"
        redirect = (301, "/PostView.naver?" + parts.query) if path.endswith(".nhn") else None
        return Route("blog_post", key, int(q["logNo"]), redirect, q)
    if (
        len(segs) == 4
        and segs[:2] == ["mnews", "article"]
        and segs[2].isdigit()
        and segs[3].isdigit()
    ):
        aid = int(segs[3])
        return Route("portal", f"article/{aid % 10**7}", aid, None, {"oid": segs[2]})
    if path == "/main/read.naver" and _digits(q.get("aid")) is not None and q.get("oid"):
        aid = int(q["aid"])
        target = f"/mnews/article/{q['oid']}/{q['aid']}?sid={q.get('sid1', '101')}"
        return Route("portal", f"article/{aid % 10**7}", aid, (302, target), {"oid": q["oid"]})
    if (
        path in ("/news/articleView.html", "/news/quickViewArticleView.html")
        and _digits(q.get("idxno")) is not None
    ):
        idxno = int(q["idxno"])
        redirect = (302, f"/news/articleView.html?idxno={idxno}") if "quickView" in path else None
        return Route("press", f"article/{idxno}", idxno, redirect)
    if path in ("/qna/detail.naver", "/qna/detail.nhn") and _digits(q.get("docId")) is not None:
        redirect = (301, "/qna/detail.naver?" + parts.query) if path.endswith(".nhn") else None
        return Route("kin", f"kin/{q['docId']}", int(q["docId"]), redirect, q)
    if path == "/bbs/board.php" and _digits(q.get("wr_id")) is not None:
        return Route("board", f"board/{q['wr_id']}", int(q["wr_id"]), (301, f"/board/{q['wr_id']}"))
    if path == "/article.php" and _digits(q.get("id")) is not None:
        return Route("board", f"article/{q['id']}", int(q["id"]), (301, f"/article/{q['id']}"))
    if segs and segs[0] == "private":
        segs = segs[1:]
    if len(segs) == 2 and segs[0] in ("board", "article") and segs[1].isdigit():
        return Route("board", f"{segs[0]}/{segs[1]}", int(segs[1]))
    if len(segs) == 3 and segs[0] == "cafe" and segs[2].isdigit():
        return Route("board", f"cafe/{segs[1]}/{segs[2]}", int(segs[2]))
    if path == "/entry.naver" and _digits(q.get("docId")) is not None:
        return Route("board", f"encyc/{q['docId']}", int(q["docId"]))
    if len(segs) == 2 and re.fullmatch(r"[A-Za-z0-9_-]{1,40}", segs[0]) and segs[1].isdigit():
        return Route(
            "blog_frame",
            f"blog/{segs[0]}/{segs[1]}",
            int(segs[1]),
            None,
            {"blogId": segs[0], "logNo": segs[1]},
        )
    return Route("generic", f"path:{_path_qs(url_or_path)}")


def fault(url_or_path: str) -> str | None:
    """The path's own fault: "redirect", "404", "oversized", "robots" (under ``/private/``,
    disallowed on web) or None. The slow origin is a matter of the host, not the path."""
    r = route(url_or_path)
    if r.kind == "missing":
        return "404"
    if r.redirect:
        return "redirect"
    if r.id is not None and r.id % 20 == 7:
        return "404"
    if urlsplit(url_or_path).path.startswith("/private/"):
        return "robots"
    if r.id is not None and r.id % 100 == 13:
        return "oversized"
    return None


# --- registry -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """The search that produced a link."""

    category: str
    query: str
    idx: int
    title: str = ""


class PageRegistry:
    """Thread-safe map page key -> :class:`Entry`, filled as the search API answers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}

    def register(self, url: str, category: str, query: str, idx: int, title: str = "") -> None:
        """Remember that ``url`` answered ``query`` (first writer wins)."""
        key = route(url).key
        with self._lock:
            self._entries.setdefault(key, Entry(category, query, idx, title))

    def lookup(self, url_or_path: str) -> Entry | None:
        """The entry for the page ``url_or_path`` leads to, if any."""
        key = route(url_or_path).key
        with self._lock:
            return self._entries.get(key)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


# --- content ------------------------------------------------------------------------------------

_PAGE_ONLY_TEMPLATES: tuple[str, ...] = (
    "직접 {p}에 있는 {a} 현장을 둘러보니 {s|이} 가장 눈에 띄었습니다.",
    "제가 상담했던 {x} 한 분은 {a} 문제로 {n} 가까이 손해를 볼 뻔했습니다.",
    "본문에서 더 자세히 말씀드리면 {a|은} {b} 일정과 맞물려 진행됩니다.",
    "이웃분들이 자주 묻는 {a} {s} 부분은 아래 순서대로 정리해 두었습니다.",
    "{p} 공인중개사무소 세 곳에 물어보니 {a} 관련 답변이 모두 달랐습니다.",
    "결론부터 말하면 {x}에게는 {a|을} 서두르기보다 {b|을} 먼저 살피는 쪽을 권합니다.",
    "현장 메모로 남기자면 {p} {a} 매물은 {s} 측면에서 {n} 전후로 형성돼 있었습니다.",
    "{a} 서류를 떼어 보니 {b} 항목에 생각지 못한 내용이 적혀 있었습니다.",
    "지난달 {p}에서 {a} 설명회를 들었는데 {b} 이야기가 절반을 차지했습니다.",
    "{x} 입장에서 체감한 {a}의 {s|은} 숫자보다 훨씬 무겁게 느껴졌습니다.",
)
_NAMES = ("jiyoung", "minsu", "sujin", "hyunwoo", "eunji", "dongha", "seoyeon", "junho")
_MAIL_HOSTS = ("naver.com", "gmail.com", "daum.net", "hanmail.net", "kakao.com")
_AREA_CODES = ("02", "031", "032", "051", "053", "042", "062")
_BANKS: tuple[tuple[str, str], ...] = (
    ("국민은행", "######-##-######"),
    ("신한은행", "###-###-######"),
    ("우리은행", "####-###-######"),
    ("농협", "###-####-####-##"),
    ("카카오뱅크", "3333-##-#######"),
    ("하나은행", "###-######-#####"),
)
_COMMENTS = (
    "좋은 정보 감사합니다!",
    "저도 같은 고민 중이었어요 ㅎㅎ",
    "이웃 추가하고 갑니다~",
    "정리 깔끔하네요 퍼가요",
    "혹시 비밀댓글 확인 부탁드려요",
    "덕분에 많이 배웠습니다",
)


@dataclass
class Content:
    """A page's text: ``paragraphs`` (the body, in order) and the parts tests look for."""

    title: str
    paragraphs: list[str]
    page_only: list[str]
    pii: list[str]
    lookalikes: list[str]
    query: str | None


def _digits_from(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


def _luhn_card(rng: random.Random) -> str:
    digits = [rng.choice((4, 5))] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):  # the check digit will sit right of these
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    s = "".join(map(str, digits)) + str((10 - total % 10) % 10)
    return "-".join(s[i : i + 4] for i in range(0, 16, 4))


def _pii(rng: random.Random) -> list[tuple[str, str]]:
    """(value, sentence containing it) for 3-5 kinds of personal data."""
    four = lambda: str(rng.randrange(2000, 10000))  # noqa: E731 - tiny local helper
    sep = rng.choice(("-", ".", " "))
    yy, mm = rng.randrange(60, 100), rng.randrange(1, 13)
    dd = rng.randrange(1, 29)
    bank, shape = rng.choice(_BANKS)
    account = "".join(str(rng.randrange(10)) if c == "#" else c for c in shape)
    name = f"{rng.choice(_NAMES)}{rng.randrange(70, 100)}@{rng.choice(_MAIL_HOSTS)}"
    kinds = {
        "mobile": (
            v := f"010{sep}{four()}{sep}{four()}",
            f"궁금한 점은 {v} 번호로 문자 주시면 답장 드릴게요.",
        ),
        "landline": (
            v := f"{rng.choice(_AREA_CODES)}-{rng.randrange(200, 1000)}-{four()}",
            f"사무실 전화 {v} 번은 평일 오전에 받습니다.",
        ),
        "voip": (v := f"070-{four()}-{four()}", f"인터넷전화 {v} 번으로도 연결됩니다."),
        "intl": (
            v := f"+82{rng.choice((' ', '-'))}10-{four()}-{four()}",
            f"해외에 계신 분은 {v} 번으로 연락 주세요.",
        ),
        "email": (name, f"자료가 필요하시면 {name} 주소로 메일 주세요."),
        "rrn": (
            v := f"{yy:02d}{mm:02d}{dd:02d}-{rng.randrange(1, 5)}{_digits_from(rng, 6)}",
            f"계약서 사본에 적힌 주민번호 {v} 부분을 가리지 못하고 올렸네요.",
        ),
        "card": (v := _luhn_card(rng), f"중개수수료는 카드 {v} 번으로 결제했습니다."),
        "account": (
            account,
            rng.choice(
                (
                    f"계약금은 {bank} {account} (예금주 김OO) 앞으로 입금했습니다.",
                    f"가계약금 계좌번호: {account} ({bank}) 로 보내라는 문자를 받았습니다.",
                )
            ),
        ),
    }
    chosen = rng.sample(sorted(kinds), rng.randrange(3, 6))
    return [kinds[k] for k in sorted(chosen, key=list(kinds).index)]


def _lookalikes(rng: random.Random) -> list[tuple[str, str]]:
    eok, man = rng.randrange(2, 15), rng.choice((1500, 3000, 5000, 7500, 8500))
    price = f"{eok}억 {man:,}만 원"
    y, m, d = 2026, rng.randrange(1, 13), rng.randrange(1, 29)
    dot, dash = f"{y}.{m:02d}.{d:02d}", f"{y}-{m:02d}-{(d % 28) + 1:02d}"
    area = f"{rng.choice((59, 74, 84, 114))}.{rng.randrange(10, 100)}㎡"
    pyeong = f"{rng.choice((18, 24, 25, 32, 34))}평"
    lot = f"{rng.randrange(100, 1000)}-{rng.randrange(1, 100)}번지"
    unit = f"{rng.randrange(101, 120)}동 {rng.randrange(1, 25)}0{rng.randrange(1, 5)}호"
    biz = f"{rng.choice(('1588', '1577', '1644', '1899'))}-{rng.randrange(1000, 10000)}"
    return [
        (dot, f"잔금일은 {dot}로 잡았고 소유권 이전 등기는 {dash}에 마쳤습니다."),
        (dash, ""),
        (price, f"매매가는 {price} 정도였고 전용 {area}, 공급 기준 {pyeong}입니다."),
        (area, ""),
        (pyeong, ""),
        (lot, f"매물 주소는 {rng.choice(korean.PLACES)} {lot}, {unit}입니다."),
        (unit, ""),
        (biz, f"주택도시보증공사 고객센터 {biz} 번에서 보증 상담을 받을 수 있습니다."),
    ]


def _page_only(rng: random.Random, n: int) -> list[str]:
    out: list[str] = []
    for tpl in rng.sample(_PAGE_ONLY_TEMPLATES, n):
        a, b = rng.sample(korean.TOPICS, 2)
        slots = {
            "a": a,
            "b": b,
            "s": rng.choice(korean.ASPECTS),
            "x": rng.choice(korean.ACTORS),
            "p": rng.choice(korean.PLACES),
            "n": rng.choice(korean.NUMBERS),
        }
        out.append(korean.render(tpl, slots))
    return out


def content(url_or_path: str, registry: PageRegistry | None = None) -> Content:
    """The text of the page ``url_or_path`` leads to. Page-only sentences, personal data and
    look-alikes depend on the URL alone; the other sentences on the registered query."""
    key = route(url_or_path).key
    entry = registry.lookup(url_or_path) if registry is not None else None
    page_rng = random.Random(_h("page", key))
    page_only = _page_only(page_rng, 3)
    has_pii = _h("pii?", key) % 100 < 85
    pii = _pii(random.Random(_h("pii", key))) if has_pii else []
    looks = _lookalikes(random.Random(_h("look", key)))
    query = entry.query if entry else None
    words = korean.hangul_tokens(query)[:4] if query else []
    if not words:
        words = page_rng.sample(korean.TOPICS, 2)
    qrng = random.Random(_h("body", key, query))
    title = entry.title if entry and entry.title else korean.phrase(qrng, words)
    paragraphs: list[str] = []
    intro = (
        f"오늘은 많이 물어보시는 '{query}' 내용을 정리해 보려고 합니다."
        if query
        else f"오늘은 {words[0]} 관련 내용을 정리해 보려고 합니다."
    )
    n_par = 4 + page_rng.randrange(3)
    for i in range(n_par):
        sents = [korean.sentence(qrng, words, words[i % len(words)]) for _ in range(2)]
        if i == 0:
            sents.insert(0, intro)
        if i < len(page_only):
            sents.insert(1 + i % 2, page_only[i])
        paragraphs.append(" ".join(sents))
        if i == 1:
            paragraphs.append(" ".join(s for _v, s in looks if s))
    if pii:
        paragraphs.insert(len(paragraphs) - 1, " ".join(s for _v, s in pii))
    return Content(
        title, paragraphs, page_only, [v for v, _s in pii], [v for v, _s in looks], query
    )


def _reporter(key: str) -> tuple[str, str, str]:
    rng = random.Random(_h("reporter", key))
    name = rng.choice(("김민준", "이서연", "박지호", "최수아", "정우진", "강하은"))
    press = rng.choice(_PRESS_NAMES)
    host = rng.choice(("hankyung.com", "mk.co.kr", "mt.co.kr", "edaily.co.kr"))
    return name, f"{rng.choice(_NAMES)}{rng.randrange(10, 99)}@{host}", press


def page_only_sentences(url_or_path: str) -> set[str]:
    """Sentences the page's body carries and no search title or description ever does (empty
    for a 404 or non-page path). Pure: the URL alone decides them."""
    if route(url_or_path).kind in ("robots", "missing") or fault(url_or_path) == "404":
        return set()
    return set(content(url_or_path).page_only)


def planted_pii(url_or_path: str) -> list[str]:
    """The personal values planted in the page, as written there (the reporter's e-mail too on
    news pages); empty for a 404."""
    r = route(url_or_path)
    if r.kind in ("robots", "missing") or fault(url_or_path) == "404":
        return []
    values = list(content(url_or_path).pii)
    if r.kind in ("press", "portal"):
        values.append(_reporter(r.key)[1])
    return values


def lookalikes(url_or_path: str) -> list[str]:
    """Numbers in the page that look like personal data but are not (prices, dates, areas, lot
    and unit numbers, 1588-style business numbers); masking must leave them alone."""
    r = route(url_or_path)
    if r.kind in ("robots", "missing") or fault(url_or_path) == "404":
        return []
    return list(content(url_or_path).lookalikes)


# --- HTML ---------------------------------------------------------------------------------------

e = html.escape


def _doc(
    title: str,
    body: str,
    *,
    head: str = "",
    charset_meta: str = '<meta charset="utf-8">',
    lang: str = "ko",
) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n{charset_meta}\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{e(title)}</title>\n{head}</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _blob(key: str) -> str:
    unit = '{"id":%d,"thumb":"https://img.example.kr/%d.jpg","tags":["부동산","전세"]},'
    n = OVERSIZED_BYTES // 60 + 1
    items = "".join(unit % (i, _h(key, i) % 10**9) for i in range(n))
    return f'<script>window.__PRELOADED_STATE__ = {{"items":[{items}{{}}]}};</script>\n'


def _og(c: Content) -> str:
    return (
        f'<meta property="og:title" content="{e(c.title)}">\n'
        f'<meta property="og:description" content="{e(c.paragraphs[0][:80])}">\n'
    )


def _blog_frame(r: Route, c: Content) -> str:
    src = (
        f"/PostView.naver?blogId={r.params['blogId']}&logNo={r.params['logNo']}"
        "&redirect=Dlog&widgetTypeCall=true&directAccess=false"
    )
    body = (
        f'<div id="whole-border"><div id="whole-body">\n'
        f'<iframe id="mainFrame" name="mainFrame" src="{e(src)}" frameborder="0" '
        f'scrolling="auto" width="100%" height="100%" title="블로그 본문"></iframe>\n'
        f"</div></div>"
    )
    return _doc(f"{c.title} : 네이버 블로그", body, head=_og(c))


def _blog_post(r: Route, c: Content) -> str:
    rng = random.Random(_h("blogchrome", r.key))
    nick = korean.nickname(rng)
    blog_id = r.params.get("blogId", "")
    paras = "\n".join(
        '<div class="se-component se-text se-l-default"><div class="se-component-content">'
        '<div class="se-section se-section-text se-l-default"><div class="se-module '
        'se-module-text"><p class="se-text-paragraph se-text-paragraph-align-left">'
        f'<span class="se-fs- se-ff-">{e(p)}</span></p></div></div></div></div>'
        for p in c.paragraphs
    )
    comments = "\n".join(
        f'<li class="u_cbox_comment"><div class="u_cbox_comment_box"><span class="u_cbox_nick">'
        f'{e(korean.nickname(rng))}</span><span class="u_cbox_contents">{e(text)}</span>'
        f'<span class="u_cbox_date">2026.11.{rng.randrange(1, 29)}. 13:{rng.randrange(10, 60)}'
        f"</span></div></li>"
        for text in rng.sample(_COMMENTS, 4)
    )
    body = f"""<div id="wrap"><div id="header" class="blog_header">
<ul class="gnb_menu"><li><a href="https://section.blog.naver.com/">블로그 홈</a></li>
<li><a href="/{e(blog_id)}">내 블로그</a></li><li><a href="#">이웃블로그</a></li>
<li><a href="#">블로그 검색</a></li><li><a href="#">로그인</a></li></ul></div>
<div id="content-area"><div id="post-area" class="post_area">
<div class="se-viewer se-theme-default">
<div class="se-component se-documentTitle"><div class="se-title-text"><span>{e(c.title)}</span>
</div><span class="se_publishDate">2026. 11. 20. 18:00</span></div>
<div class="se-main-container">
{paras}
</div></div>
<div class="post_tag"><a href="#">#부동산</a> <a href="#">#내집마련</a></div>
<div class="area_sympathy"><a class="u_likeit_list_btn" href="#">공감 {rng.randrange(3, 90)}</a>
<a class="btn_comment" href="#">댓글 4</a></div>
<div id="naverComment" class="u_cbox comment_area"><ul class="u_cbox_list">
{comments}
</ul></div></div>
<div class="profile_area"><div class="bloger_profile"><strong class="nick">{e(nick)}</strong>
<p class="caption">부동산 공부하며 기록하는 블로그입니다. 이웃 환영해요.</p>
<a class="btn_add_buddy" href="#">이웃추가</a></div></div>
<div class="category_list"><h3>카테고리</h3><ul><li>전체보기</li><li>청약 일기</li>
<li>전세 이야기</li><li>세금 공부</li></ul></div></div>
<div id="footer"><p>이 블로그의 글은 작성자의 허락 없이 복제할 수 없습니다.</p>
<address>© NAVER Corp.</address></div></div>"""
    return _doc(f"{c.title} : 네이버 블로그", body, head=_og(c))


def _news_chrome(press: str) -> tuple[str, str]:
    nav = (
        f'<header id="header"><div class="logo"><a href="/">{e(press)}</a></div>'
        '<nav class="gnb"><ul><li><a href="/news/articleList.html?sc_section_code=S1N1">'
        '경제</a></li><li><a href="#">부동산</a></li><li><a href="#">금융</a></li>'
        '<li><a href="#">증권</a></li><li><a href="#">오피니언</a></li></ul></nav></header>'
    )
    foot = (
        f'<footer id="footer"><p>{e(press)} | 서울특별시 중구 세종대로 | 대표전화 1588-0000'
        f"</p><p>Copyright © {e(press)}. All rights reserved.</p></footer>"
    )
    return nav, foot


def _press(r: Route, c: Content, *, euckr: bool) -> str:
    reporter, mail, press = _reporter(r.key)
    rng = random.Random(_h("related", r.key))
    related = "\n".join(
        f'<li><a href="/news/articleView.html?idxno={rng.randrange(10**6, 10**7)}">'
        f"{e(korean.phrase(rng, list(korean.TOPICS)))} 소식</a></li>"
        for _ in range(4)
    )
    paras = "\n".join(f"<p>{e(p)}</p>" for p in c.paragraphs)
    nav, foot = _news_chrome(press)
    body = f"""{nav}
<div id="container"><article id="article-view" class="article-view">
<header class="article-view-header"><h1 class="heading">{e(c.title)}</h1>
<ul class="infomation"><li><i class="icon-user"></i> {e(reporter)} 기자</li>
<li><i class="icon-clock"></i> 입력 2026.11.20 18:00</li></ul></header>
<div id="article-view-content-div" class="article-body" itemprop="articleBody">
{paras}
<p class="byline">{e(reporter)} 기자 {e(mail)}</p>
</div>
<div class="article-copy">저작권자 © {e(press)} 무단전재 및 재배포 금지</div>
</article>
<aside class="related-news"><h2>관련기사</h2><ul>
{related}
</ul></aside>
<aside class="popular"><h2>많이 본 뉴스</h2><ol><li>금리 인하 기대감에 거래량 반등</li>
<li>청약 경쟁률 두 자릿수 회복</li></ol></aside></div>
{foot}"""
    if euckr:
        meta = (
            '<meta charset="euc-kr">'
            if (r.id or 0) // 100 % 2 == 0
            else '<meta http-equiv="Content-Type" content="text/html; charset=euc-kr">'
        )
        return _doc(f"{c.title} - {press}", body, head=_og(c), charset_meta=meta)
    return _doc(f"{c.title} - {press}", body, head=_og(c))


def _portal(r: Route, c: Content) -> str:
    reporter, mail, press = _reporter(r.key)
    text = "<br><br>\n".join(e(p) for p in c.paragraphs)
    body = f"""<div id="ct_wrap"><header class="Nlnb"><a href="https://news.naver.com/">NAVER 뉴스
</a><ul class="Nlnb_menu"><li>언론사별</li><li>정치</li><li>경제</li><li>사회</li>
<li>생활/문화</li><li>IT/과학</li></ul></header>
<div id="ct" class="newsct"><div class="media_end_head"><div class="media_end_head_top">
<a class="media_end_head_top_logo">{e(press)}</a></div>
<h2 id="title_area" class="media_end_head_headline"><span>{e(c.title)}</span></h2>
<div class="media_end_head_info_datestamp">입력 2026.11.20. 오후 6:00</div></div>
<div id="newsct_article" class="newsct_article _article_body">
<article id="dic_area" class="go_trans _article_content">
{text}<br><br>
{e(reporter)} 기자 ({e(mail)})
</article></div>
<p class="c_text">Copyright © {e(press)}. All rights reserved. 무단 전재 및 재배포 금지.</p>
<div class="media_end_linked"><h4>이 기사를 추천합니다</h4><ul><li>훈훈해요</li>
<li>쏠쏠정보</li><li>후속기사 원해요</li></ul></div></div>
<footer class="footer">© NAVER Corp.</footer></div>"""
    return _doc(f"{c.title} : 네이버 뉴스", body, head=_og(c))


def _kin(r: Route, c: Content) -> str:
    rng = random.Random(_h("kinchrome", r.key))
    question = c.query or c.title
    if not question.endswith("?"):
        question = f"{question} 궁금합니다?"
    q_body, rest = c.paragraphs[0], c.paragraphs[1:]
    n_answers = 1 + rng.randrange(2)
    split = (len(rest) + 1) // 2 if n_answers == 2 else len(rest)
    answers = [rest[:split], rest[split:]][:n_answers]
    blocks = "\n".join(
        f'<div class="answer-content__item _contentsItem"><div class="c-heading-answer">'
        f'<div class="c-heading-answer__title"><p class="title">{e(korean.nickname(rng))}님 답변'
        f'</p><span class="badge">{rng.choice(("채택", "우수 답변자", "지식인 고수"))}</span></div>'
        f'</div><div class="se-main-container answer-content">'
        + "".join(f'<p class="se-text-paragraph">{e(p)}</p>' for p in ans)
        + '</div><div class="answer-content__util">답변 추천 '
        f"{rng.randrange(0, 40)} · 2026.11.{rng.randrange(1, 29)}.</div></div>"
        for ans in answers
    )
    body = f"""<div id="header"><a href="https://kin.naver.com/">지식iN</a>
<ul class="menu"><li>Q&amp;A</li><li>지식기부</li><li>명예지식인</li><li>로그인</li></ul></div>
<div id="content"><div class="question-content">
<div class="c-heading _questionContentsArea"><div class="c-heading__title">
<div class="title">{e(question)}</div></div>
<div class="c-heading__content">{e(q_body)}</div>
<div class="c-userinfo">비공개 · 질문 {rng.randrange(2, 30)}건 · 조회수 {rng.randrange(50, 5000)}
</div></div></div>
<div class="answer-content__list _answerList">
<h3 class="answer_count">답변 {n_answers}개</h3>
{blocks}
</div>
<div class="aside"><h4>관련 질문</h4><ul><li>전세 계약 전에 꼭 확인할 것?</li>
<li>확정일자 받는 방법?</li></ul></div></div>
<div id="footer">지식iN 이용정책 | 고객센터 | © NAVER Corp.</div>"""
    return _doc(f"{question} : 지식iN", body, head=_og(c))


def _board(r: Route, c: Content) -> str:
    rng = random.Random(_h("boardchrome", r.key))
    paras = "\n".join(f"<p>{e(p)}</p>" for p in c.paragraphs)
    comments = "\n".join(
        f'<li class="comment"><b class="nick">{e(korean.nickname(rng))}</b> '
        f"<span>{e(t)}</span></li>"
        for t in rng.sample(_COMMENTS, 3)
    )
    body = f"""<header class="site-header"><a class="logo" href="/">부동산 정보 광장</a>
<nav class="menu"><a href="/board">자유게시판</a> <a href="/article">칼럼</a>
<a href="/qna">질문답변</a> <a href="/login">로그인</a></nav></header>
<div class="layout"><main id="main"><article class="post">
<h1 class="post-title">{e(c.title)}</h1>
<div class="post-meta">작성자 {e(korean.nickname(rng))} · 조회 {rng.randrange(30, 9000)}</div>
<div class="post-content">
{paras}
</div></article>
<section class="comment-list"><h2>댓글 3</h2><ul>
{comments}
</ul></section></main>
<aside class="sidebar"><h3>인기글</h3><ul><li>이번 주 청약 일정 모음</li>
<li>전세 시세 어디서 보나요</li><li>취득세 계산기 공유</li></ul>
<h3>광고</h3><p>지금 바로 대출 한도 조회하기</p></aside></div>
<footer class="site-footer">이용약관 | 개인정보처리방침 | © 부동산 정보 광장</footer>"""
    return _doc(c.title, body, head=_og(c))


_NOT_FOUND = _doc(
    "페이지를 찾을 수 없습니다",
    "<h1>404 Not Found</h1><p>요청하신 페이지를 찾을 수 "
    "없습니다. 삭제되었거나 주소가 잘못되었습니다.</p>",
)


def robots_txt(origin: str) -> str:
    """The origin's robots.txt: web disallows ``/private/``, the others allow everything."""
    if origin == "web":
        return "User-agent: *\nDisallow: /private/\nAllow: /\n"
    return "User-agent: *\nAllow: /\n"


@dataclass
class Response:
    """A page answer: status, headers and the encoded body."""

    status: int
    headers: dict[str, str]
    body: bytes


def respond(
    origin: str, path_qs: str, registry: PageRegistry | None = None, base_url: str = ""
) -> Response:
    """The answer of ``origin`` to ``GET path_qs`` (``base_url`` makes Location absolute)."""
    r = route(path_qs)
    if r.kind == "robots":
        body = robots_txt(origin).encode()
        return Response(200, {"Content-Type": "text/plain; charset=utf-8"}, body)
    kind = fault(path_qs)
    if r.redirect:
        status, target = r.redirect
        body = (
            f'<html><body>Moved to <a href="{e(target)}">{e(target)}</a></body></html>'
        ).encode()
        return Response(
            status,
            {"Location": base_url + target, "Content-Type": "text/html; charset=utf-8"},
            body,
        )
    if kind == "404":
        return Response(404, {"Content-Type": "text/html; charset=utf-8"}, _NOT_FOUND.encode())
    c = content(path_qs, registry)
    renderers = {
        "blog_frame": _blog_frame,
        "blog_post": _blog_post,
        "portal": _portal,
        "kin": _kin,
        "board": _board,
        "generic": _board,
    }
    euckr = origin == "press_euckr" and r.kind == "press"
    text = _press(r, c, euckr=euckr) if r.kind == "press" else renderers[r.kind](r, c)
    if kind == "oversized" and r.kind != "blog_frame":
        text = text.replace("</head>", _blob(r.key) + "</head>", 1)
    if euckr:
        return Response(
            200, {"Content-Type": "text/html"}, text.encode("cp949", errors="xmlcharrefreplace")
        )
    return Response(200, {"Content-Type": "text/html; charset=utf-8"}, text.encode("utf-8"))
