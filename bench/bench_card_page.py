"""Benchmark: the card stage's page (data/instructions.html) at 10k and 50k rows, in Chromium.

Run: ``python bench/run.py card_page``. Needs ``chromium`` on the PATH for the browser
figures (``apt-get install chromium``; the Makefile's ``setup`` tries); without it only the
sizes and render times are reported.

Rows are generated (:func:`make_rows`: Korean-looking questions and answers, 3-5 passages
of a few hundred characters a row, a titles question with its post every fifth row), the
page is written with the real :func:`~seedtune.synthesis.browse.write_html`, then opened from
disk (``file://``) in headless Chromium. Figures per size (``10k_``, ``50k_``): page MB,
bytes per row, render seconds; ``first_row_ms``: from navigation start to the first rows in
the DOM (the page's ``seedtune:rows`` mark), ``paint_ms`` (first contentful paint),
``load_ms`` (the whole file read), ``search_ms`` (typing a deep row's words until it shows,
150 ms of debounce included), ``open_ms`` (clicking that row until its passages show). At
10k the page as it was before (every row as markup, at :data:`BASELINE`, read with git) is
measured beside it as ``before_``: its ``interactive_ms`` is when its search box worked.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from seedtune.synthesis.browse import write_html

#: The commit whose page (every row as HTML) is measured beside today's.
BASELINE = "914810f"
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

WORDS = (
    "전세",
    "월세",
    "매매",
    "계약",
    "보증금",
    "임대인",
    "임차인",
    "등기부등본",
    "근저당",
    "확정일자",
    "전입신고",
    "중개사",
    "수수료",
    "아파트",
    "오피스텔",
    "빌라",
    "재건축",
    "청약",
    "대출",
    "금리",
    "세금",
    "취득세",
    "양도세",
    "보험",
    "관리비",
    "계약금",
    "잔금",
    "특약",
    "하자",
    "수리",
    "갱신",
    "만기",
    "서울",
    "경기",
    "신축",
    "시세",
)
PARTICLES = ("은", "는", "이", "가", "을", "를", "에", "에서", "의", "와", "로", "도", "만")
ENDINGS = (
    "합니다.",
    "해야 합니다.",
    "할 수 있습니다.",
    "하는 것이 좋습니다.",
    "됩니다.",
    "인지 확인하세요.",
    "일 수 있어요.",
    "라고 합니다.",
)
CATEGORIES = ("blog", "news", "kin", "webkr", "cafearticle")


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) + rng.choice(PARTICLES) for _ in range(rng.randint(4, 9))]
    return " ".join(words) + " " + rng.choice(ENDINGS)


def _text(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    while sum(len(s) + 1 for s in out) < chars:
        out.append(_sentence(rng))
    return " ".join(out)


def make_row(i: int) -> dict[str, Any]:
    """Row ``i`` (0-based) as synthesize writes it, the same every time. Its question holds
    ``사례 {i+1}번``, so a search can find exactly that row."""
    rng = random.Random(i)
    n = rng.randint(3, 5)
    cats = [rng.choice(CATEGORIES) for _ in range(n)]
    titles = i % 5 == 4
    return {
        "question": f"{_text(rng, 40)} (사례 {i + 1}번) 어떻게 해야 하나요?",
        "answer": _text(rng, rng.randint(250, 600)),
        "sources": [
            f"https://{c}.example.kr/{rng.randrange(10**8)}?q={i}&p={k}" for k, c in enumerate(cats)
        ],
        "passages": [_text(rng, rng.randint(200, 500)) for _ in range(n)],
        "source_categories": cats,
        "source_kinds": [rng.choice(("page", "snippet")) for _ in range(n)],
        "question_source": "titles" if titles else rng.choice(("llm", "llm", "user")),
        "seed": rng.choice(WORDS),
        "post_title": _text(rng, 30) if titles else None,
        "post_link": f"https://cafe.naver.com/house/{i}" if titles else None,
        "post_category": "cafearticle" if titles else None,
        "model": "gpt-4o-mini",
        "template": "a1b2c3d4",
        "split": "eval" if rng.random() < 0.1 else "train",
    }


def make_rows(n: int) -> Iterator[dict[str, Any]]:
    """Rows 0 .. n-1 of :func:`make_row`, made as they are read."""
    return (make_row(i) for i in range(n))


def chromium() -> str | None:
    """The system Chromium (``apt-get install chromium``), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def browser() -> Iterator[Any]:
    """Headless system Chromium through Playwright (never its own downloaded browsers)."""
    from playwright.sync_api import sync_playwright

    path = chromium()
    if path is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


TIMING_JS = """() => {
  const mark = performance.getEntriesByName("seedtune:rows")[0];
  const paint = performance.getEntriesByName("first-contentful-paint")[0];
  const nav = performance.getEntriesByType("navigation")[0];
  return {first_row_ms: mark ? mark.startTime : null, paint_ms: paint ? paint.startTime : null,
          interactive_ms: nav.domContentLoadedEventStart, load_ms: nav.loadEventEnd};
}"""


def measure_browser(b: Any, path: Path, deep: int | None) -> dict[str, float]:
    """Open ``path`` in a fresh page; the timings (ms from navigation start), and, for a new
    page, how long searching for row ``deep`` (1-based) and opening it take."""
    page = b.new_page()
    try:
        page.goto(path.as_uri(), wait_until="load", timeout=300_000)
        out = {k: round(v, 1) for k, v in page.evaluate(TIMING_JS).items() if v is not None}
        if deep is not None:
            start = time.perf_counter()
            page.fill("#q", f"사례 {deep}번")
            page.wait_for_selector(f'article.row[data-n="{deep}"]', timeout=60_000)
            out["search_ms"] = round((time.perf_counter() - start) * 1000, 1)
            start = time.perf_counter()
            page.click(f'article.row[data-n="{deep}"] summary')
            page.wait_for_selector(f'article.row[data-n="{deep}"] ol.src li', timeout=60_000)
            out["open_ms"] = round((time.perf_counter() - start) * 1000, 1)
        return out
    finally:
        page.close()


def baseline_render() -> Any:
    """The page's render function at :data:`BASELINE` (every row as HTML), or None without
    git history."""
    try:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{BASELINE}:src/seedtune/synthesis/browse.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    namespace: dict[str, Any] = {"__name__": "browse_baseline"}
    exec(compile(source, f"browse.py@{BASELINE}", "exec"), namespace)  # noqa: S102 - ours
    return namespace["render_html"]


def run() -> dict[str, Any]:
    """Sizes, render seconds and Chromium timings at 10k and 50k rows."""
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        pages: dict[str, tuple[Path, int]] = {}
        for n in (10_000, 50_000):
            key = f"{n // 1000}k"
            rows = list(make_rows(n))
            path = Path(tmp) / f"{key}.html"
            start = time.perf_counter()
            write_html(path, rows, {})
            result[f"{key}_render_s"] = round(time.perf_counter() - start, 2)
            size = path.stat().st_size
            result[f"{key}_page_mb"] = round(size / 1e6, 1)
            result[f"{key}_bytes_per_row"] = size // n
            pages[key] = (path, n)
            if n == 10_000 and (old := baseline_render()) is not None:
                start = time.perf_counter()
                text = old(rows, {})
                result["before_10k_render_s"] = round(time.perf_counter() - start, 2)
                before = Path(tmp) / "before.html"
                before.write_text(text, encoding="utf-8")
                result["before_10k_page_mb"] = round(before.stat().st_size / 1e6, 1)
                pages["before_10k"] = (before, n)
            del rows
        if chromium() is None:
            result["browser"] = "skipped: apt-get install chromium"
            return result
        with browser() as b:
            for key, (path, n) in pages.items():
                # a row near the end: what a search must reach past the first pages
                timings = measure_browser(b, path, None if key.startswith("before") else n - n // 8)
                result.update({f"{key}_{fig}": value for fig, value in timings.items()})
    return result


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name:<28} {value}")
