"""``dvc plots show`` / ``dvc plots diff`` pages in a real browser with the network cut off.

A scratch git + DVC workspace gets this repository's .dvc/config and .dvc/plots/ (the HTML
template with vega inlined, the bar template) and dvc.yaml's ``plots:`` section, and the
files those plots read, written the way the pipeline writes them: the training curves by
dvclive through the train stage's own callback, the judge-score counts by the evaluate
stage's own function. Then DVC writes the page and headless Chromium opens it from disk with
every non-file request aborted: each plot must draw, with no error. Skipped without
Chromium (``apt-get install chromium``) or playwright, as tests/test_card_page.py is.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from support import OFFLINE_ENV, ROOT, bench_module, need_browser

need_browser()

bench = bench_module("bench_card_page")
STEPS = 12
EVAL_EVERY = 4
SCORES = "Judge scores (1-10), tuned and base"
GRAD_NORM = "Gradient norm per step (before clipping)"
# the judge's scores: (score_base, score_tuned) per question
JUDGED = [(3, 7), (3, 8), (4, 7), (2, 9), (3, 7), (5, 6)]
# after the diff's change: the tuned model does worse
JUDGED_LATER = [(3, 4), (3, 4), (4, 5), (2, 4), (3, 4), (5, 4)]


def _plots() -> list[dict[str, Any]]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["plots"]


def _titles() -> list[str]:
    return [next(iter(p)) for p in _plots()]


def _dvc(ws: Path, *args: str) -> str:
    env = {**os.environ, **OFFLINE_ENV}
    out = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=ws,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    return out.stdout


def _git(ws: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args],
        cwd=ws,
        check=True,
        capture_output=True,
    )


def _train_curves(ws: Path, scale: float) -> None:
    """metrics/train as the train stage writes it: its LiveCallback fed Trainer-like logs."""
    from dvclive import Live

    from seedtune.training.live import LiveCallback

    directory = ws / "metrics" / "train"
    shutil.rmtree(directory, ignore_errors=True)
    with Live(dir=str(directory), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        cb = LiveCallback(live)
        state = SimpleNamespace(is_world_process_zero=True, global_step=0, log_history=[])
        cb.on_train_begin(None, state, None)
        for step in range(1, STEPS + 1):
            state.global_step = step
            cb.on_log(
                None,
                state,
                None,
                {
                    "loss": scale * (3.0 - 0.1 * step),
                    "grad_norm": 1.0 + 0.5 * (step % 3),
                    "learning_rate": 1e-4 * (1 - step / STEPS),
                    "num_tokens": 512.0 * step,
                },
            )
            if step % EVAL_EVERY == 0:
                cb.on_log(
                    None,
                    state,
                    None,
                    {"eval_loss": scale * (3.1 - 0.1 * step), "eval_runtime": 0.01},
                )


def _scores(ws: Path, judged: list[tuple[int, int]]) -> None:
    """reports/scores.json as the evaluate stage writes it."""
    from seedtune.evaluation.summary import score_distribution

    rows = [{"score_base": b, "score_tuned": t} for b, t in judged]
    (ws / "reports").mkdir(exist_ok=True)
    (ws / "reports" / "scores.json").write_text(
        json.dumps(score_distribution(rows, ("base", "tuned"))), encoding="utf-8"
    )


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with this repository's plot settings and one committed revision."""
    ws = tmp_path_factory.mktemp("plots")
    _git(ws, "init", "-q")
    _dvc(ws, "init", "-q")
    shutil.copy2(ROOT / ".dvc" / "config", ws / ".dvc" / "config")
    shutil.copytree(ROOT / ".dvc" / "plots", ws / ".dvc" / "plots")
    # the plots alone: the stages need the whole pipeline, the plots only the files they name
    (ws / "dvc.yaml").write_text(
        yaml.safe_dump({"plots": _plots()}, allow_unicode=True), encoding="utf-8"
    )
    _train_curves(ws, 1.0)
    _scores(ws, JUDGED)
    _git(ws, "add", "-A")
    _git(ws, "commit", "-qm", "first run")
    return ws


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with bench.browser() as b:
        yield b


def _open(browser: Any, page_path: Path) -> dict[str, Any]:
    """Open the page with the network cut off; what each plot drew, keyed by its title."""
    p = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    tried: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    p.route(
        lambda url: not url.startswith("file:"),
        lambda route: (tried.append(route.request.url), route.abort()),
    )
    try:
        p.goto(page_path.as_uri(), wait_until="load", timeout=120_000)
        p.wait_for_function(
            """() => [...document.querySelectorAll('#plots > div')].every(
            d => d.querySelector('svg.marks') || d.querySelector('.plot-error'))""",
            timeout=60_000,
        )
        drawn = p.eval_on_selector_all(
            "#plots > div",
            """divs => divs.map(d => ({
            title: (d.querySelector('.role-title-text') || {}).textContent,
            error: (d.querySelector('.plot-error') || {}).textContent,
            lines: d.querySelectorAll('svg.marks .mark-line path').length,
            bars: [...d.querySelectorAll('svg.marks .mark-rect path')].map(
                b => Math.round(b.getBBox().height)),
            legend: [...d.querySelectorAll('.role-legend-label text')].map(t => t.textContent),
        }))""",
        )
    finally:
        p.close()
    assert not errors, errors
    assert not tried, f"the page asked the network for {tried}"
    return {d["title"]: d for d in drawn}


def _page(ws: Path, stdout: str) -> Path:
    """The page DVC says it wrote (its last line is a file:// URI)."""
    page = ws / "dvc_plots" / "index.html"
    assert page.is_file(), stdout
    html = page.read_text(encoding="utf-8")
    assert not re.search(r"""<script[^>]+src=["']?https?:""", html), "a CDN script is back"
    return page


def test_show_draws_every_plot_with_no_network(ws: Path, browser: Any) -> None:
    drawn = _open(browser, _page(ws, _dvc(ws, "plots", "show")))
    assert sorted(drawn) == sorted(_titles())
    for title, plot in drawn.items():
        assert plot["error"] is None, f"{title}: {plot['error']}"
        assert plot["lines"] or plot["bars"], f"{title}: nothing drawn"
    assert drawn[GRAD_NORM]["lines"] >= 1
    # the score distribution is bars: one per score and model, as tall as its count
    bars = drawn[SCORES]["bars"]
    assert drawn[SCORES]["lines"] == 0
    assert len(bars) == 10 * 2
    counts = {(s, m) for pair in JUDGED for s, m in zip(pair, ("base", "tuned"), strict=True)}
    assert sum(1 for h in bars if h > 0) == len(counts)
    assert drawn[SCORES]["legend"] == ["workspace · tuned", "workspace · base"]


def test_diff_draws_both_revisions_with_no_network(ws: Path, browser: Any) -> None:
    _train_curves(ws, 1.5)
    _scores(ws, JUDGED_LATER)
    drawn = _open(browser, _page(ws, _dvc(ws, "plots", "diff", "HEAD")))
    assert sorted(drawn) == sorted(_titles())
    assert len(drawn[SCORES]["bars"]) == 10 * 2 * 2
    assert set(drawn[SCORES]["legend"]) == {
        "workspace · tuned",
        "workspace · base",
        "HEAD · tuned",
        "HEAD · base",
    }
    for title in (GRAD_NORM, "Loss per step (train and eval)"):
        assert set(drawn[title]["legend"]) >= {"workspace", "HEAD"}, title


def test_every_bundled_script_has_its_licence_beside_it() -> None:
    page = (ROOT / ".dvc" / "plots" / "page.html").read_text(encoding="utf-8")
    bundles = re.findall(r'<script data-bundle="([\w-]+)" data-version="[\d.]+">', page)
    assert sorted(bundles) == ["vega", "vega-embed", "vega-lite"]
    for name in bundles:
        assert (ROOT / ".dvc" / "plots" / "vendor" / f"LICENSE.{name}").is_file(), name
