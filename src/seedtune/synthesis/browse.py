"""One self-contained HTML page to browse data/instructions.jsonl and the rejects.

The page carries the rows as data and a little inline JS shows them a page at a time, so it
opens fast at 50k rows (rendering every row as HTML made 50 MB of markup at 10k rows):

- ``<script type="application/json" id="rows-data">``: one JSON array per row, one row a
  line: ``[question, answer, split, question_source, n_sources, "model · template"]``, and
  for a ``titles`` question also ``post_title, post_link, post_category``.
- ``<script type="application/json" id="d<k>">``, after the code: the passages of rows
  ``k*CHUNK_ROWS ..``, one ``[[link, category, kind, passage], ...]`` per row, parsed only
  when a row is opened, so the first rows show before the browser has read them.
- ``rejects-data``: ``{stage: [[text, link, reason], ...]}``, shown when a stage is opened.

Crawled and generated text is hostile: in the JSON every ``<`` is written ``\\u003c`` (so no
``</script>`` or ``<!--`` can end or bend the data block), and the JS puts text in the DOM
through ``textContent`` only, never as markup. Only http(s) links become ``href``: a link
:func:`safe_link` rejects is written ``[link]`` (text, never a link), and the JS checks the
scheme again. Inline CSS and JS, no external resource of any kind, so the file opens offline
from disk and leaks nothing; without JS it says that it needs it. The bytes depend only on
the inputs, and :func:`write_html` streams: it holds one chunk of passages at a time.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from collections.abc import Iterable
from html import escape
from itertools import zip_longest
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from seedtune.core.records import atomic_open

#: Rows the page shows at a time.
PAGE_ROWS = 50
#: Rows per passages block (what the browser parses when one row in it is opened).
CHUNK_ROWS = 100

CSS = """
:root{color-scheme:light dark;--fg:#1d1d1f;--bg:#fff;--mute:#666;--line:#ddd;--card:#f7f7f9}
@media (prefers-color-scheme:dark){:root{--fg:#e8e8ea;--bg:#18181b;--mute:#a0a0a8;
--line:#333;--card:#222226}}
*{box-sizing:border-box}
body{margin:0 auto;max-width:60rem;padding:1rem;font:15px/1.6 system-ui,-apple-system,
"Noto Sans KR","Apple SD Gothic Neo","Malgun Gothic","NanumGothic","Noto Sans CJK KR",
"Source Han Sans K",sans-serif;color:var(--fg);
background:var(--bg);word-break:keep-all;overflow-wrap:anywhere}
section#rejects{min-height:100vh;scroll-margin-top:var(--head,0px)}
header.top{position:sticky;top:0;background:var(--bg);padding:.5rem 0;
border-bottom:1px solid var(--line);z-index:1}
input,select,button{font:inherit;padding:.3rem .5rem;color:inherit;background:var(--card);
border:1px solid var(--line);border-radius:4px}
button{cursor:pointer}button:disabled{opacity:.4;cursor:default}
input[type=search]{width:min(30rem,100%)}
nav.pager{margin:.5rem 0}
article.row{border:1px solid var(--line);border-radius:6px;padding:.75rem 1rem;
margin:1rem 0;background:var(--card)}
[hidden]{display:none!important}
h2.q{font-size:1.05rem;margin:.25rem 0 .5rem;cursor:pointer}
summary{cursor:pointer}
.a,.p{white-space:pre-wrap}
.meta,.n{color:var(--mute);font-size:.85rem}
.badge{display:inline-block;font-size:.75rem;padding:0 .4rem;border-radius:3px;
border:1px solid var(--line);margin-right:.25rem}
.train{background:#dff3e4;color:#14532d}.eval{background:#fde8d7;color:#7c2d12}
.page{background:#dbeafe;color:#1e3a8a}.snippet{background:#f3e8ff;color:#581c87}
.qs-llm{background:#e0f2fe;color:#0c4a6e}.qs-titles{background:#fef9c3;color:#713f12}
.qs-user{background:#fce7f3;color:#831843}
p.post{margin:.25rem 0;font-size:.9rem}
ol.src li{margin:.5rem 0}
table{border-collapse:collapse;width:100%;font-size:.9rem}
td,th{border:1px solid var(--line);padding:.25rem .5rem;text-align:left;vertical-align:top}
"""

# ES2015, no library. Every text from the data goes in through textContent or a text node.
JS = r"""
(function () {
  "use strict";
  function $(id) { return document.getElementById(id); }
  function json(id) { var e = $(id); return e ? JSON.parse(e.textContent) : null; }
  var rows = json("rows-data") || [], meta = json("page-meta") || {};
  var rejects = json("rejects-data") || {};
  var PAGE = meta.page || 50, CHUNK = meta.chunk || 100;
  var KNOWN = {train: 1, eval: 1, page: 1, snippet: 1};
  var box = $("q"), split = $("split"), source = $("source"), count = $("count");
  var list = $("rows"), pagers = document.querySelectorAll("nav.pager");
  var view = [], page = 0, hay = null, chunks = {}, timer = null;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function add(parent, child) { parent.appendChild(child); return child; }
  function txt(parent, s) { parent.appendChild(document.createTextNode(s)); }
  // the page's own check, besides the one that wrote it: only http(s) URLs with a host
  function safeHref(link) {
    if (typeof link !== "string") return null;
    var u;
    try { u = new URL(link); } catch (e) { return null; }
    return (u.protocol === "http:" || u.protocol === "https:") && u.hostname ? link : null;
  }
  function linkText(link) {
    return Array.isArray(link) ? String(link[0]) : link === null ? "" : String(link);
  }
  function anchor(link, shown) {
    var href = safeHref(link);
    if (!href) return el("span", null, shown);
    var a = el("a", null, shown);
    a.href = href; a.rel = "noopener noreferrer"; a.target = "_blank";
    return a;
  }
  function badge(parent, text, cls) {
    if (!text) return;
    var b = add(parent, el("span", "badge", text));
    if (cls) b.classList.add(cls);
    txt(parent, " ");
  }
  function post(art, r) {
    var p = add(art, el("p", "post", "원글 (post): "));
    p.appendChild(anchor(r[7], r[6] || "(no title)"));
    if (r[7] !== null && !safeHref(r[7])) { txt(p, " "); add(p, el("span", "n", linkText(r[7]))); }
    if (r[8]) { txt(p, " "); add(p, el("span", "badge", r[8])); }
  }
  function chunk(c) {
    if (!Object.prototype.hasOwnProperty.call(chunks, c)) {
      var e = $("d" + c);
      if (!e) return null;
      chunks[c] = JSON.parse(e.textContent);
    }
    return chunks[c];
  }
  function fill(d, i) {
    if (d.getAttribute("data-filled")) return;
    var c = Math.floor(i / CHUNK), got = chunk(c), wait = d.querySelector(".wait");
    if (!got) {  // its block is further down a file the browser is still reading
      if (document.readyState === "loading") {
        if (!wait) add(d, el("p", "meta wait", "loading…"));
        document.addEventListener("DOMContentLoaded", function () { fill(d, i); });
      } else {
        (wait || add(d, el("p", "meta wait"))).textContent = "(passages missing from this page)";
      }
      return;
    }
    if (wait) d.removeChild(wait);
    var ol = add(d, el("ol", "src"));
    (got[i - c * CHUNK] || []).forEach(function (s) {
      var li = add(ol, el("li"));
      badge(li, s[1], KNOWN[s[1]] ? s[1] : null);
      badge(li, s[2], KNOWN[s[2]] ? s[2] : null);
      li.appendChild(anchor(s[0], s[0] === null ? "(no link)" : linkText(s[0])));
      if (s[3]) add(li, el("div", "p", s[3]));
    });
    d.setAttribute("data-filled", "1");
  }
  function row(i) {
    var r = rows[i], art = el("article", "row");
    art.setAttribute("data-n", String(i + 1));
    add(art, el("span", "n", "#" + (i + 1)));
    txt(art, " ");
    badge(art, r[2], KNOWN[r[2]] ? r[2] : null);
    badge(art, r[3], /^[a-z]+$/.test(r[3]) ? "qs-" + r[3] : null);
    add(art, el("h2", "q", r[0]));
    if (r.length > 6) post(art, r);
    add(art, el("div", "a", r[1]));
    if (r[4]) {
      var d = add(art, el("details", "src"));
      add(d, el("summary", null, "근거 " + r[4] + "개 (passages and sources)"));
      d.addEventListener("toggle", function () { if (d.open) fill(d, i); });
    } else {
      add(art, el("p", "meta", "(no sources)"));
    }
    add(art, el("p", "meta", r[5]));
    return art;
  }
  function haystack() {
    if (!hay) {
      hay = rows.map(function (r) {
        return (r[0] + "\n" + r[1] + (r.length > 6 ? "\n" + r[6] : "")).normalize("NFC")
          .toLowerCase();
      });
    }
    return hay;
  }
  function apply() {
    var needle = box.value.trim().normalize("NFC").toLowerCase();
    var want = split.value, from = source.value, m = /^#(\d+)$/.exec(needle), i;
    view = [];
    if (m) {  // "#9876": that row
      i = parseInt(m[1], 10) - 1;
      if (i >= 0 && i < rows.length) view.push(i);
    } else {
      var h = needle ? haystack() : null;
      for (i = 0; i < rows.length; i++) {
        if ((want && rows[i][2] !== want) || (from && rows[i][3] !== from) ||
            (h && h[i].indexOf(needle) < 0)) continue;
        view.push(i);
      }
    }
    page = 0;
    show();
  }
  function show() {
    var pages = Math.max(1, Math.ceil(view.length / PAGE));
    var frag = document.createDocumentFragment();
    page = Math.min(Math.max(page, 0), pages - 1);
    view.slice(page * PAGE, (page + 1) * PAGE).forEach(function (i) { frag.appendChild(row(i)); });
    if (!view.length) frag.appendChild(el("p", "meta", "(no rows match)"));
    list.textContent = "";
    list.appendChild(frag);
    count.textContent = view.length + " / " + rows.length;
    Array.prototype.forEach.call(pagers, function (nav) {
      nav.querySelector(".pg").textContent = "page " + (page + 1) + " / " + pages;
      nav.querySelector("[data-go='-1']").disabled = page === 0;
      nav.querySelector("[data-go='1']").disabled = page >= pages - 1;
    });
  }
  Array.prototype.forEach.call(pagers, function (nav) {
    nav.addEventListener("click", function (e) {
      var go = e.target.getAttribute && e.target.getAttribute("data-go");
      if (!go) return;
      page += parseInt(go, 10);
      show();
      window.scrollTo(0, 0);
    });
  });
  // a click on a row opens or closes its passages (not on a link, not when selecting text)
  list.addEventListener("click", function (e) {
    var t = e.target;
    if (!t.closest || t.closest("a") || t.closest("details")) return;
    if (String(window.getSelection ? window.getSelection() : "")) return;
    var art = t.closest("article.row"), d = art && art.querySelector("details.src");
    if (d) d.open = !d.open;
  });
  (meta.splits || []).forEach(function (s) { add(split, el("option", null, s)).value = s; });
  (meta.sources || []).forEach(function (s) { add(source, el("option", null, s)).value = s; });
  box.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(apply, 150);
  });
  split.addEventListener("change", apply);
  source.addEventListener("change", apply);
  Array.prototype.forEach.call(document.querySelectorAll("details.rej"), function (d) {
    var stage = d.getAttribute("data-stage"), done = 0;
    var items = Object.prototype.hasOwnProperty.call(rejects, stage) ? rejects[stage] : [];
    var body = d.querySelector("tbody"), more = d.querySelector("button.more");
    function next() {
      for (var stop = Math.min(done + 500, items.length); done < stop; done++) {
        var r = items[done], tr = add(body, el("tr")), td = add(tr, el("td"));
        if (r[0] && r[1] !== null) td.appendChild(anchor(r[1], r[0]));
        else if (r[0]) txt(td, r[0]);
        else if (r[1] !== null) td.appendChild(anchor(r[1], linkText(r[1])));
        add(tr, el("td", null, r[2]));
      }
      more.hidden = done >= items.length;
    }
    d.addEventListener("toggle", function () { if (d.open && !done) next(); });
    more.addEventListener("click", next);
  });
  // in-page links (#rejects) land below the sticky header, not under it: the header's
  // height, which wraps with the window, is the targets' scroll margin
  var head = document.querySelector("header.top");
  function headHeight() {
    document.documentElement.style.setProperty("--head", head.offsetHeight + "px");
  }
  window.addEventListener("resize", headHeight);
  apply();
  headHeight();
  document.documentElement.setAttribute("data-ready", "1");
  if (window.performance && performance.mark) performance.mark("seedtune:rows");
})();
"""


def esc(value: Any) -> str:
    """Text (anything, as ``str``) escaped for HTML element content and quoted attributes."""
    return escape(_show(value), quote=True)


def safe_link(link: Any) -> str | None:
    """``link`` when it is an http(s) URL (so never ``javascript:``), else None."""
    if not isinstance(link, str):
        return None
    try:
        parts = urlsplit(link.strip())
    except ValueError:
        return None
    return link.strip() if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def to_json(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON that is safe inside ``<script>``: every ``<`` (so
    ``</script>`` and ``<!--``) and the JS line separators as ``\\u`` escapes; a lone
    surrogate (valid in JSON's escapes, not in UTF-8) as its ``\\u`` escape too."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # "<" and U+2028/9 occur only inside JSON strings, where the escape means the same
    text = text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode("utf-8", "backslashreplace")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _show(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _link(link: Any) -> str | list[str] | None:
    """A link for the page: the http(s) URL; ``[text]`` for anything else to show (shown,
    never linked); None for no link."""
    href = safe_link(link)
    return href if href else [_show(link)] if link else None


def encode_row(row: dict[str, Any]) -> tuple[list[Any], list[list[Any]]]:
    """A row as the page holds it: what its card shows, and its passages (see the module
    docstring for the layout)."""
    source = _text(row.get("question_source"))
    passages = [
        [_link(link), _show(cat), _show(kind), _show(text)]
        for link, text, cat, kind in zip_longest(
            _list(row.get("sources")),
            _list(row.get("passages")),
            _list(row.get("source_categories")),
            _list(row.get("source_kinds")),
        )
    ]
    meta = " · ".join(_show(row[k]) for k in ("model", "template") if row.get(k))
    card: list[Any] = [
        _show(row.get("question")),
        _show(row.get("answer")),
        _text(row.get("split")),
        source,
        len(passages),
        meta,
    ]
    if source == "titles":
        card += [
            _text(row.get("post_title")),
            _link(row.get("post_link")),
            _text(row.get("post_category")),
        ]
    return card, passages


def encode_reject(row: dict[str, Any]) -> list[Any]:
    """``[text, link, reason]`` for a reject: its question; for one without (a post title
    the queries stage dropped) the title with the post's link; else its link (a page crawl
    could not get) or its seed word."""
    reason = _show(row.get("reason"))
    if _text(row.get("question")):
        return [row["question"], None, reason]
    if _text(row.get("title")):
        return [row["title"], _link(row.get("link")), reason]
    if _text(row.get("link")):
        return [None, _link(row["link"]), reason]
    return [f"seed: {row['seed']}" if _text(row.get("seed")) else "", None, reason]


def _head(title: str, rejects: dict[str, list[dict[str, Any]]]) -> bytes:
    """Everything before the data: styles, the search bar, the empty list, the rejects."""
    n_rejects = sum(len(r) for r in rejects.values())
    pager = (
        '<nav class="pager"><button type="button" data-go="-1">◀ prev</button> '
        '<span class="pg"></span> <button type="button" data-go="1">next ▶</button></nav>'
    )
    stages = "".join(
        f'<details class="rej" data-stage="{esc(stage)}"><summary>{esc(stage)}: {len(rows)} '
        "rejects</summary><table><thead><tr><th>question (or post title)</th><th>reason</th>"
        '</tr></thead><tbody></tbody></table><button type="button" class="more" hidden>'
        "more</button></details>"
        for stage, rows in rejects.items()
    )
    return (
        '<!DOCTYPE html>\n<html lang="ko">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f'<header class="top"><h1>{esc(title)}</h1>'
        '<label>검색 <input type="search" id="q" placeholder="질문, 답변, 원글 제목, #번호">'
        '</label> <label>split <select id="split"><option value="">all</option></select>'
        '</label> <label>source <select id="source"><option value="">all</option></select>'
        '</label> <span class="n" id="count"></span>'
        f' · <a href="#rejects">rejects ({n_rejects})</a>{pager}</header>\n'
        "<noscript><p>This page needs JavaScript to show its rows (이 페이지는 JavaScript가 "
        "필요합니다); the rows themselves are in data/instructions.jsonl.</p></noscript>\n"
        f'<main id="rows"></main>\n{pager}\n'
        f'<section id="rejects"><h2>Rejects</h2>{stages or "<p>(no rejects files)</p>"}'
        "</section>\n"
    ).encode("utf-8", "backslashreplace")


def _block(out: BinaryIO, block_id: str, items: list[bytes]) -> None:
    out.write(f'<script type="application/json" id="{block_id}">['.encode())
    out.write(b",\n".join(items))
    out.write(b"]</script>\n")


def write_page(
    out: BinaryIO,
    rows: Iterable[dict[str, Any]],
    rejects: dict[str, list[dict[str, Any]]],
    title: str = "seedtune instructions",
) -> int:
    """Write the page to ``out``, reading ``rows`` once (the passages wait in a temporary
    file, one chunk in memory at a time, to follow the code); returns the number of rows."""
    splits: set[str] = set()
    sources: set[str] = set()
    n = 0
    with tempfile.TemporaryFile() as later:
        out.write(_head(title, rejects))
        out.write(b'<script type="application/json" id="rows-data">[')
        chunk: list[bytes] = []
        for n, row in enumerate(rows, 1):
            card, passages = encode_row(row)
            out.write((b",\n" if n > 1 else b"\n") + to_json(card))
            splits.update([card[2]] if card[2] else [])
            sources.update([card[3]] if card[3] else [])
            chunk.append(to_json(passages))
            if len(chunk) == CHUNK_ROWS:
                _block(later, f"d{(n - 1) // CHUNK_ROWS}", chunk)
                chunk = []
        if chunk:
            _block(later, f"d{(n - 1) // CHUNK_ROWS}", chunk)
        out.write(b"]</script>\n")
        meta = {
            "rows": n,
            "page": PAGE_ROWS,
            "chunk": CHUNK_ROWS,
            "splits": sorted(splits),
            "sources": sorted(sources),
        }
        out.write(
            b'<script type="application/json" id="page-meta">' + to_json(meta) + b"</script>\n"
        )
        out.write(
            b'<script type="application/json" id="rejects-data">'
            + to_json({s: [encode_reject(r) for r in rs] for s, rs in rejects.items()})
            + b"</script>\n"
        )
        out.write(f"<script>{JS}</script>\n".encode())
        later.seek(0)
        shutil.copyfileobj(later, out)
    out.write(b"</body>\n</html>\n")
    return n


def render_html(
    rows: Iterable[dict[str, Any]],
    rejects: dict[str, list[dict[str, Any]]],
    title: str = "seedtune instructions",
) -> str:
    """The page as text: every row (question, its source and post, answer, passages with
    links and badges, split) shown a page at a time, a search box, split and source filters,
    then the rejects per stage."""
    buf = io.BytesIO()
    write_page(buf, rows, rejects, title)
    return buf.getvalue().decode("utf-8")


def write_html(
    path: Path | str,
    rows: Iterable[dict[str, Any]],
    rejects: dict[str, list[dict[str, Any]]],
    title: str = "seedtune instructions",
) -> int:
    """Stream the page to ``path`` atomically (see :func:`write_page`); returns the rows."""
    with atomic_open(path) as out:
        return write_page(out, rows, rejects, title)
