"""One self-contained HTML page to browse data/instructions.jsonl and the rejects.

Rendered here, every text through :func:`html.escape` (questions, answers and passages come
from the web and from LLMs and may hold ``</script>``, tags or quotes); only http(s) source
links (of sources and of the posts ``titles`` questions come from) become ``href``. Each row
shows a badge with its ``question_source`` and, for a ``titles`` question, the post's title
and link. Inline CSS and a few lines of inline JS (search box, split and source filters); no
external resource of any kind, so the file opens offline and leaks nothing. Without JS every
row still shows. The output depends only on its inputs.
"""

from __future__ import annotations

from html import escape
from itertools import zip_longest
from typing import Any
from urllib.parse import urlsplit

CSS = """
:root{color-scheme:light dark;--fg:#1d1d1f;--bg:#fff;--mute:#666;--line:#ddd;--card:#f7f7f9}
@media (prefers-color-scheme:dark){:root{--fg:#e8e8ea;--bg:#18181b;--mute:#a0a0a8;
--line:#333;--card:#222226}}
*{box-sizing:border-box}
body{margin:0 auto;max-width:60rem;padding:1rem;font:15px/1.6 system-ui,-apple-system,
"Apple SD Gothic Neo","Malgun Gothic","Noto Sans KR",sans-serif;color:var(--fg);
background:var(--bg);word-break:keep-all;overflow-wrap:anywhere}
header.top{position:sticky;top:0;background:var(--bg);padding:.5rem 0;
border-bottom:1px solid var(--line);z-index:1}
input,select{font:inherit;padding:.3rem .5rem;color:inherit;background:var(--card);
border:1px solid var(--line);border-radius:4px}
input[type=search]{width:min(30rem,100%)}
article.row{border:1px solid var(--line);border-radius:6px;padding:.75rem 1rem;
margin:1rem 0;background:var(--card);content-visibility:auto;contain-intrinsic-size:auto 10rem}
[hidden]{display:none!important}
h2.q{font-size:1.05rem;margin:.25rem 0 .5rem}
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

JS = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll("article.row"));
  var texts = rows.map(function (r) { return r.textContent.normalize("NFC").toLowerCase(); });
  var box = document.getElementById("q"), split = document.getElementById("split");
  var source = document.getElementById("source");
  var count = document.getElementById("count"), timer = null;
  function apply() {
    var needle = box.value.trim().normalize("NFC").toLowerCase(), want = split.value, n = 0;
    var from = source.value;
    rows.forEach(function (r, i) {
      var show = (!want || r.getAttribute("data-split") === want) &&
                 (!from || r.getAttribute("data-source") === from) &&
                 (!needle || texts[i].indexOf(needle) >= 0);
      r.hidden = !show;
      if (show) n++;
    });
    count.textContent = n + " / " + rows.length;
  }
  box.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(apply, 150);
  });
  split.addEventListener("change", apply);
  source.addEventListener("change", apply);
  apply();
})();
"""


def esc(value: Any) -> str:
    """Text (anything, as ``str``) escaped for HTML element content and quoted attributes."""
    return escape(value if isinstance(value, str) else "" if value is None else str(value),
                  quote=True)


def safe_link(link: Any) -> str | None:
    """``link`` when it is an http(s) URL (so never ``javascript:``), else None."""
    if not isinstance(link, str):
        return None
    try:
        parts = urlsplit(link.strip())
    except ValueError:
        return None
    return link.strip() if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _anchor(link: Any, shown: str) -> str:
    """``shown`` (already escaped) as a link to ``link`` when that is http(s), else as text."""
    href = safe_link(link)
    return (f'<a href="{esc(href)}" rel="noopener noreferrer" target="_blank">{shown}</a>'
            if href else f"<span>{shown}</span>")


def _source(link: Any, passage: Any, category: Any, kind: Any) -> str:
    badges = "".join(f'<span class="badge {esc(c)}">{esc(t)}</span>'
                     for c, t in ((category, category), (kind, kind)) if t)
    anchor = _anchor(link, esc(link) if link else "(no link)")
    text = f'<div class="p">{esc(passage)}</div>' if passage else ""
    return f"<li>{badges}{anchor}{text}</li>"


def _post(title: Any, link: Any, category: Any) -> str:
    """The post a ``titles`` question was rewritten from: its title, linked when the link
    is http(s) (an other link is shown as text beside it), and its category."""
    shown = esc(title) if _text(title) else "(no title)"
    anchor = _anchor(link, shown)
    if _text(link) and not safe_link(link):
        anchor += f' <span class="n">{esc(link)}</span>'
    badge = f' <span class="badge">{esc(category)}</span>' if _text(category) else ""
    return f'<p class="post">원글 (post): {anchor}{badge}</p>'


def _row(n: int, row: dict[str, Any]) -> str:
    split = _text(row.get("split"))
    source = _text(row.get("question_source"))
    source_badge = (f' <span class="badge qs-{esc(source)}">{esc(source)}</span>' if source
                    else "")
    post = (_post(row.get("post_title"), row.get("post_link"), row.get("post_category"))
            if source == "titles" else "")
    sources = [_source(*s) for s in zip_longest(_list(row.get("sources")),
                                                _list(row.get("passages")),
                                                _list(row.get("source_categories")),
                                                _list(row.get("source_kinds")))]
    meta = " · ".join(esc(row[k]) for k in ("model", "template") if row.get(k))
    passages = (f'<details><summary>근거 {len(sources)}개 (passages and sources)</summary>'
                f'<ol class="src">{"".join(sources)}</ol></details>' if sources else
                '<p class="meta">(no sources)</p>')
    return (f'<article class="row" data-split="{esc(split)}" data-source="{esc(source)}">'
            f'<span class="n">#{n}</span> <span class="badge {esc(split)}">{esc(split)}</span>'
            f'{source_badge}<h2 class="q">{esc(row.get("question"))}</h2>{post}'
            f'<div class="a">{esc(row.get("answer"))}</div>{passages}'
            f'<p class="meta">{meta}</p></article>')


def _rejected(row: dict[str, Any]) -> str:
    """What a reject was: its question; for one without (a post title the queries stage
    dropped) the title, linked to the post; else its link (a page crawl could not get) or
    its seed word."""
    if _text(row.get("question")):
        return esc(row["question"])
    if _text(row.get("title")):
        return _anchor(row.get("link"), esc(row["title"]))
    if _text(row.get("link")):
        return _anchor(row["link"], esc(row["link"]))
    return f"seed: {esc(row['seed'])}" if _text(row.get("seed")) else ""


def _rejects(rejects: dict[str, list[dict[str, Any]]]) -> str:
    if not rejects:
        return "<p>(no rejects files)</p>"
    parts = []
    for stage, rows in rejects.items():
        body = "".join(f"<tr><td>{_rejected(r)}</td><td>{esc(r.get('reason'))}</td></tr>"
                       for r in rows)
        parts.append(f"<details><summary>{esc(stage)}: {len(rows)} rejects</summary>"
                     f"<table><thead><tr><th>question (or post title)</th><th>reason</th>"
                     "</tr></thead>"
                     f"<tbody>{body}</tbody></table></details>")
    return "".join(parts)


def render_html(rows: list[dict[str, Any]], rejects: dict[str, list[dict[str, Any]]],
                title: str = "seedtune instructions") -> str:
    """The page: every row (question, its source and post, answer, passages with links and
    badges, split), a search box, split and source filters, then the rejects per stage."""
    splits = sorted({r["split"] for r in rows if isinstance(r.get("split"), str)})
    options = "".join(f'<option value="{esc(s)}">{esc(s)}</option>' for s in splits)
    sources = sorted({s for r in rows if (s := _text(r.get("question_source")))})
    source_options = "".join(f'<option value="{esc(s)}">{esc(s)}</option>' for s in sources)
    n_rejects = sum(len(r) for r in rejects.values())
    return (
        '<!DOCTYPE html>\n<html lang="ko">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f'<header class="top"><h1>{esc(title)}</h1>'
        '<label>검색 <input type="search" id="q" placeholder="질문, 답변, 근거, 링크"></label> '
        f'<label>split <select id="split"><option value="">all</option>{options}</select>'
        '</label> <label>source <select id="source"><option value="">all</option>'
        f'{source_options}</select></label>'
        f' <span class="n" id="count">{len(rows)} / {len(rows)}</span>'
        f' · <a href="#rejects">rejects ({n_rejects})</a></header>\n<main>\n'
        + "\n".join(_row(i, r) for i, r in enumerate(rows, 1))
        + f'\n</main>\n<section id="rejects"><h2>Rejects</h2>{_rejects(rejects)}</section>\n'
        f"<script>{JS}</script>\n</body>\n</html>\n")
