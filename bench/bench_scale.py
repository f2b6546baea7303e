"""Benchmark: the data side of the DAG at two or more sizes, to see what grows with size.

Run: ``python bench/run.py scale`` (default sizes, about 100 and 400 questions: about
4.5 minutes on 2 CPU cores), or pick the sizes, in questions::

    python bench/bench_scale.py --questions 100,400          # the default pair
    make bench BENCH=scale BENCH_SCALE=1000,10000            # sizes through make
    python bench/bench_scale.py --questions 10000,50000      # manual: hours, see below

Each size runs in a fresh temporary workspace (this repository's files and its .dvc/
config, ``git init``, a local DVC remote in the same temporary directory) against the
offline simulators (OpenAI-compatible chat, Naver search, the web pages behind the links:
:mod:`seedtune_sandbox.sim`) with the tiny local e5 model, exactly as
``seedtune demo`` sets one up, including its crawl settings (``host_rps`` 50, 4 per host).
Pipeline params are the project defaults (``queries.per_seed`` 20, both question sources:
the LLM and forum titles, ``titles.per_seed`` 20, search categories blog/news/kin,
``crawl.per_question`` 3), except ``llm.model`` (the simulator's). Questions scale with the
seed words: the repository's 50 real-estate seed words first, then the simulator's Korean
vocabulary (:mod:`seedtune_sandbox.sim.korean`, :mod:`~seedtune_sandbox.sim.forum_words`)
and place + topic pairs of it; the seed count for a size is the size over the questions per
seed word measured on the first size's run (about 36 with both sources).

Stages compose, queries, search, crawl, rank, synthesize, card each run as ``dvc repro -s
<stage>`` (train and evaluate are left out). Reported per size (figure names start
``q<size>.``): questions made; per stage the ``dvc repro`` wall seconds (DVC's own hashing
and caching included), the stage process's own seconds and the CPU seconds of dvc and the
stage, all per question, and the stage process's peak RSS in MB. The peak is the process's
``VmHWM`` read from /proc every 20 ms while it runs (the last reading before exit);
``ru_maxrss`` from ``wait4`` cannot tell a stage from the dvc process above it, which Linux
folds into a child's maximum across fork and exec, so it is only kept as
``dvc_tree_rss_mb``, the maximum over dvc and its stage. Then DVC: files and bytes under
.dvc/cache and data/cache, a no-op ``dvc status card`` and ``dvc repro card``, ``dvc push``
to the local remote and ``dvc pull`` into a fresh ``git clone`` (a real pull: an empty cache
there), then one new seed word, ``dvc repro card`` again (seconds, and the paid calls the
simulators counted: LLM, Naver), and the ``dvc push`` after it (the files and bytes it added
to the remote). Crawl: pages fetched per simulated host (sim counters) beside the crawl's
elapsed time, and ``seedtune estimate --json``'s predictions (taken after compose, before
any call) under ``q<size>.estimate.``.

``ratio.<stage>.*`` figures compare the largest size with the smallest: seconds per question
and peak RSS (flat cost: 1.0; the bar is 1.3x). The bench reports them, it asserts nothing.

Manual large run: ``python bench/bench_scale.py --questions 10000,50000``. Measured at
1,000 and 10,000 questions on 2 cores (2026-12, tiny e5) the seven stages take about
0.13 s a question (crawl 44 ms: 7 page requests a question, and the simulator's slow host
serves 1 page a second, 4 at once; rank 40-70 ms), so expect about 25 minutes for the 10k
point and 2-3 hours for the 50k one; the one-seed rerun grows with the data too (34 s at
1,000, 68 s at 10,000: rank and synthesize rewrite their whole outputs). Disk: about 1.1 GB
of DVC cache at 10k, some 20 GB in $TMPDIR at 50k (workspace, DVC cache, remote and clone:
four copies). Rank's peak is about 1.0 GB at 1k and 1.2 GB at 10k. ``--keep`` leaves the
workspaces for a look. Rank's seconds are the noisiest figure on a shared machine (torch's
threads spin while waiting for each other when another process takes a core: its CPU
seconds grow too); ``qN.loadavg_before`` above the cores' count says something else was
running. For rank alone, ``bench/bench_rank_memory.py`` runs one thread.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results.json"
#: Environment variable with the sizes (questions, comma-separated); ``make bench`` passes it.
SIZES_ENV = "BENCH_SCALE"
DEFAULT_SIZES = (100, 400)
STAGES = ("compose", "queries", "search", "crawl", "rank", "synthesize", "card")
#: Questions per seed word assumed before any run measured it (both sources, defaults).
QUESTIONS_PER_SEED = 36.0
POLL_S = 0.02


def parse_sizes(text: str | None) -> list[int]:
    """``"200,800"`` -> ``[200, 800]`` (sorted, unique); empty or None -> the defaults."""
    if not text or not text.strip():
        return list(DEFAULT_SIZES)
    try:
        sizes = sorted({int(part) for part in text.replace(" ", "").split(",") if part})
    except ValueError:
        raise SystemExit(f"{SIZES_ENV}/--questions: {text!r}: give sizes like 200,800") from None
    if not sizes or sizes[0] < 1:
        raise SystemExit(f"{SIZES_ENV}/--questions: {text!r}: sizes must be positive")
    return sizes


def seed_words(n: int) -> list[str]:
    """``n`` distinct seed words the simulator answers as real-estate terms: the repository's
    seed list, the simulator's topic words, then place + topic pairs."""
    from seedtune_sandbox.sim import forum_words, korean

    base = (REPO / "data" / "seed_words.txt").read_text(encoding="utf-8").split()
    topics = [*korean.TOPICS, *forum_words.FORUM_TOPICS]
    words = dict.fromkeys([*base, *topics])
    places = [*korean.PLACES, *forum_words.FORUM_PLACES]
    for topic in topics:
        for place in places:
            if len(words) >= n:
                break
            words.setdefault(f"{place} {topic}")
    if len(words) < n:
        raise SystemExit(f"bench scale: at most {len(words)} seed words ({n} asked)")
    return list(words)[:n]


def _tree_size(path: Path) -> tuple[int, int]:
    """(files, bytes) under ``path`` (0, 0 when it does not exist)."""
    files = size = 0
    for root, _, names in os.walk(path):
        for name in names:
            p = Path(root, name)
            if p.is_file() and not p.is_symlink():
                files += 1
                size += p.stat().st_size
    return files, size


def _vm_hwm_kb(pid: int) -> int:
    """The process's peak resident set (``VmHWM``, kB), 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class StageWatch(threading.Thread):
    """Polls the processes under ``pid`` for the one running ``stages/<stage>.py``: its peak
    RSS (last ``VmHWM`` seen) and the span it was seen alive."""

    def __init__(self, pid: int, stage: str) -> None:
        super().__init__(daemon=True)
        self.pid, self.needle = pid, f"stages/{stage}.py"
        self.peak_kb = 0
        self.first: float | None = None
        self.last: float | None = None
        self.done = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            top = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        found: dict[int, float] = {}
        while not self.done.is_set():
            try:
                kids = top.children(recursive=True)
            except psutil.NoSuchProcess:
                break
            for kid in kids:
                try:
                    if kid.pid not in found:
                        if not any(self.needle in a for a in kid.cmdline()):
                            continue
                        found[kid.pid] = kid.create_time()
                        start = found[kid.pid] - time.time() + time.perf_counter()
                        self.first = start if self.first is None else min(self.first, start)
                    hwm = _vm_hwm_kb(kid.pid)
                except psutil.Error:
                    continue
                if hwm:
                    self.peak_kb = max(self.peak_kb, hwm)
                    self.last = time.perf_counter()
            self.done.wait(POLL_S)


class Workspace:
    """One size's temporary workspace and the commands run in it."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.log = root.parent / "commands.log"

    def cmd(self, *args: str, cwd: Path | None = None) -> float:
        """Run a command (failing loudly with its log's tail); its wall seconds."""
        return self.timed(list(args), cwd=cwd)[0]

    def timed(
        self, args: list[str], cwd: Path | None = None, stage: str | None = None
    ) -> tuple[float, dict[str, Any]]:
        """Wall seconds of ``args`` and, with ``stage``, what :class:`StageWatch` saw."""
        with open(self.log, "a", encoding="utf-8") as log:
            log.write(f"\n$ {' '.join(args)}\n")
            log.flush()
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                args, cwd=cwd or self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
            watch = StageWatch(proc.pid, stage) if stage else None
            if watch:
                watch.start()
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
        extra: dict[str, Any] = {}
        if watch:
            watch.done.set()
            watch.join()
            extra = {
                "peak_rss_mb": watch.peak_kb / 1024,
                "dvc_tree_rss_mb": usage.ru_maxrss / 1024,
                # CPU seconds (dvc + stage): steadier than wall on a shared machine
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "process_s": (watch.last - watch.first) if watch.first and watch.last else 0.0,
            }
        if proc.returncode != 0:
            tail = self.log.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise RuntimeError(
                f"bench scale: {' '.join(args)} exited {proc.returncode} in "
                f"{cwd or self.root}\n{tail}"
            )
        return wall, extra


def _paid(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """Simulator requests answered between two ``SimServer.stats()`` snapshots."""
    return {
        "llm_calls": after["chat"]["ok"] - before["chat"]["ok"],
        "naver_calls": after["search"]["ok"] - before["search"]["ok"],
        "page_requests": after["pages"]["requests"] - before["pages"]["requests"],
    }


def _pages_per_host(stats: dict[str, Any], origins: dict[str, str]) -> dict[str, int]:
    """Page requests per simulated origin (blog, news, ..., slow)."""
    by_netloc = {urlsplit(url).netloc: name for name, url in origins.items()}
    counts: Counter[str] = Counter()
    for url, n in stats["pages"]["by_url"].items():
        counts[by_netloc.get(urlsplit(url).netloc, "other")] += n
    return dict(counts)


#: Stage metrics that say how much work a stage had (metrics/<stage>.json keys).
WORK_KEYS = {
    "search": ("calls", "documents"),
    "crawl": ("links", "requests", "from_cache"),
    "rank": ("encoded", "reused"),
    "synthesize": ("calls",),
}


def _work(root: Path) -> dict[str, Any]:
    """:data:`WORK_KEYS` read from the stages' metrics files, as ``<stage>.<key>``."""
    out: dict[str, Any] = {}
    for stage, keys in WORK_KEYS.items():
        path = root / "metrics" / f"{stage}.json"
        metrics = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        out.update({f"{stage}.{k}": metrics[k] for k in keys if k in metrics})
    return out


def _estimate(ws: Workspace) -> dict[str, Any]:
    """``seedtune estimate --json``'s numbers, flattened: its ``naver``/``crawl`` keys when it
    has them, else each row's calls (``<stage>.calls``) and any Naver count it gives."""
    out = subprocess.run(
        [sys.executable, "-m", "seedtune.cli", "estimate", "--json"],
        cwd=ws.root,
        env=ws.env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:] or ["failed"]}
    data = json.loads(out.stdout)
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[prefix] = value

    if isinstance(data, dict) and ({"naver", "crawl"} & set(data)):
        for key in ("naver", "crawl"):
            walk(key, data.get(key))
    rows = data if isinstance(data, list) else data.get("rows", data.get("stages", []))
    for row in rows if isinstance(rows, list) else []:
        for k, v in row.items():
            if k in ("calls", "requests") or "naver" in k or "crawl" in k:
                walk(f"{row.get('stage', '?')}.{k}", v)
    return flat


def run_size(target: int, per_seed: float, models: Path, keep: bool) -> dict[str, Any]:
    """The whole measurement for one size (see the module docstring); nested figures."""
    from seedtune_sandbox import demo
    from seedtune_sandbox.sim import SimServer

    tmp = Path(tempfile.mkdtemp(prefix=f"bench-scale-{target}-"))
    seeds = seed_words(max(1, round(target / per_seed)))
    out: dict[str, Any] = {
        "target": target,
        "seed_words": len(seeds),
        "workdir": str(tmp),
        "loadavg_before": os.getloadavg()[0],
    }
    try:
        with SimServer(demo.sim_config()) as sim:
            local = demo.local_config(sim.url, models, sim.page_origins.values())
            # a bench makes more calls than Naver's real daily limit; the ledger stays in tmp
            local["search"]["daily_quota"] = 10_000_000
            ws_root = demo.prepare_workspace(
                REPO, tmp / "ws", local, seeds=seeds, params={"llm.model": "sim-gpt"}
            )
            # the stages import this checkout's library, whatever the venv's install points at
            path = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
            env = demo.tool_env(
                {
                    **demo.SIM_ENV,
                    "PYTHONPATH": path,
                    "SEEDTUNE_QUOTA_LEDGER": str(tmp / "quota.sqlite3"),
                }
            )
            ws = Workspace(ws_root, env)
            ws.cmd("dvc", "remote", "add", "-d", "local", str(tmp / "remote"))
            ws.cmd("git", "add", "-A")
            ws.cmd(
                "git",
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@seedtune.invalid",
                "commit",
                "-qm",
                "dvc init",
            )
            stages: dict[str, Any] = {}
            for stage in STAGES:
                wall, seen = ws.timed(["dvc", "repro", "-s", stage], stage=stage)
                stages[stage] = {"wall_s": wall, **seen}
                if stage == "compose":
                    out["estimate"] = _estimate(ws)
                if stage == "crawl":
                    crawl_stats = sim.stats()
            q = sum(
                1
                for line in (ws_root / "data" / "questions.jsonl").open(encoding="utf-8")
                if line.strip()
            )
            out["questions"] = q
            for fig in stages.values():
                fig["s_per_q"] = fig["wall_s"] / q
                fig["process_s_per_q"] = fig["process_s"] / q
                fig["cpu_s_per_q"] = fig["cpu_s"] / q
            out["stages"] = stages
            out["work"] = _work(ws_root)
            out["crawl_pages_per_host"] = _pages_per_host(crawl_stats, sim.page_origins)
            out["crawl_robots"] = crawl_stats["pages"]["robots"]
            out["crawl_elapsed_s"] = stages["crawl"]["process_s"]
            out["paid_full_run"] = _paid(
                {"chat": {"ok": 0}, "search": {"ok": 0}, "pages": {"requests": 0}}, sim.stats()
            )
            out["dvc"] = dvc_figures(ws, tmp, sim, seed_words(len(seeds) + 1)[-1])
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def dvc_figures(ws: Workspace, tmp: Path, sim: Any, new_seed: str) -> dict[str, Any]:
    """Cache sizes, no-op status/repro, push, pull into a clone, one-seed rerun and push."""
    root, remote = ws.root, tmp / "remote"
    fig: dict[str, Any] = {}
    fig["dvc_cache_files"], fig["dvc_cache_bytes"] = _tree_size(root / ".dvc" / "cache")
    fig["data_cache_files"], fig["data_cache_bytes"] = _tree_size(root / "data" / "cache")
    fig["noop_status_s"] = ws.cmd("dvc", "status", "card")
    fig["noop_repro_s"] = ws.cmd("dvc", "repro", "card")
    ws.cmd("git", "add", "-A")
    ws.cmd(
        "git",
        "-c",
        "user.name=bench",
        "-c",
        "user.email=bench@seedtune.invalid",
        "commit",
        "-qm",
        "data side run",
    )
    fig["push_s"] = ws.cmd("dvc", "push", "--with-deps", "card")
    fig["remote_files"], fig["remote_bytes"] = _tree_size(remote)
    clone = tmp / "clone"
    ws.cmd("git", "clone", "-q", str(root), str(clone))
    fig["pull_s"] = ws.cmd("dvc", "pull", "--with-deps", "card", cwd=clone)
    fig["pulled_cache_files"] = _tree_size(clone / ".dvc" / "cache")[0]
    shutil.rmtree(clone)
    seeds_file = root / "data" / "seed_words.txt"
    seeds_file.write_text(
        seeds_file.read_text(encoding="utf-8") + new_seed + "\n", encoding="utf-8"
    )
    before = sim.stats()
    # stage by stage, as the full run, so the rerun's seconds have a breakdown
    rerun = {stage: ws.cmd("dvc", "repro", "-s", stage) for stage in STAGES}
    fig["one_seed_repro_s"] = sum(rerun.values())
    fig.update({f"one_seed_{k}": v for k, v in _paid(before, sim.stats()).items()})
    fig.update({f"one_seed_{stage}_s": s for stage, s in rerun.items()})
    had = _remote_objects(remote)
    fig["one_seed_push_s"] = ws.cmd("dvc", "push", "--with-deps", "card")
    files, size = _tree_size(remote)
    fig["one_seed_push_files"] = files - fig["remote_files"]
    fig["one_seed_push_bytes"] = size - fig["remote_bytes"]
    by_out: Counter[str] = Counter()
    owners = _owners(root)
    for md5, nbytes in _remote_objects(remote).items():
        if md5 not in had:
            by_out[owners.get(md5, "other")] += nbytes
    fig.update(
        {f"one_seed_pushed.{out.removeprefix('data/')}": n for out, n in by_out.most_common()}
    )
    return fig


def _remote_objects(remote: Path) -> dict[str, int]:
    """md5 (``.dir`` kept) -> bytes of every object in a local DVC 3 remote."""
    found: dict[str, int] = {}
    for path in remote.rglob("*"):
        if path.is_file() and len(path.parent.name) == 2:
            found[path.parent.name + path.name] = path.stat().st_size
    return found


def _owners(root: Path) -> dict[str, str]:
    """md5 -> the output in dvc.lock it belongs to (a directory's files under its path)."""
    import yaml

    lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8"))
    owners: dict[str, str] = {}
    for stage in lock.get("stages", {}).values():
        for out in stage.get("outs", []):
            md5 = out.get("md5")
            if not md5:
                continue
            owners[md5] = out["path"]
            if md5.endswith(".dir"):
                manifest = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
                if manifest.is_file():
                    for entry in json.loads(manifest.read_text(encoding="utf-8")):
                        owners[entry["md5"]] = out["path"]
    return owners


def flatten(per_size: list[dict[str, Any]]) -> dict[str, Any]:
    """Nested per-size figures -> the flat ``name: value`` dict ``bench/run.py`` tabulates,
    plus ``ratio.*`` (largest size over smallest)."""
    flat: dict[str, Any] = {}
    for res in per_size:
        p = f"q{res['target']}"
        flat[f"{p}.questions"] = res["questions"]
        flat[f"{p}.seed_words"] = res["seed_words"]
        # above the cores' count: something else ran too, the seconds are inflated
        flat[f"{p}.loadavg_before"] = res["loadavg_before"]
        for stage, fig in res["stages"].items():
            for key in ("wall_s", "s_per_q", "process_s_per_q", "cpu_s_per_q", "peak_rss_mb"):
                flat[f"{p}.{stage}.{key}"] = fig[key]
        for key, value in res["dvc"].items():
            flat[f"{p}.dvc.{key}"] = value
        for key, value in res["paid_full_run"].items():
            flat[f"{p}.full.{key}"] = value
        for key, value in res["work"].items():
            flat[f"{p}.work.{key}"] = value
        flat[f"{p}.crawl.elapsed_s"] = res["crawl_elapsed_s"]
        flat[f"{p}.crawl.robots"] = res["crawl_robots"]
        for host, n in sorted(res["crawl_pages_per_host"].items()):
            flat[f"{p}.crawl.pages.{host}"] = n
        for key, value in res.get("estimate", {}).items():
            flat[f"{p}.estimate.{key}"] = value
    if len(per_size) > 1:
        small, large = per_size[0], per_size[-1]
        for stage in STAGES:
            a, b = small["stages"][stage], large["stages"][stage]
            for key in ("s_per_q", "process_s_per_q", "cpu_s_per_q", "peak_rss_mb"):
                flat[f"ratio.{stage}.{key}"] = b[key] / a[key] if a[key] else math.nan
    return flat


def table(per_size: list[dict[str, Any]]) -> str:
    """A human-readable table of the per-size figures."""
    lines = []
    head = "".join(
        f"{'q' + str(r['target']) + ' (' + str(r['questions']) + ')':>32}" for r in per_size
    )
    lines.append(f"{'stage':<12}{head}")
    lines.append(f"{'':<12}" + "".join(f"{'s  ms/q(dvc/proc/cpu)  MB':>32}" for _ in per_size))
    for stage in STAGES:
        row = "".join(
            f"{f['wall_s']:7.1f} {1000 * f['s_per_q']:6.1f}/{1000 * f['process_s_per_q']:5.1f}"
            f"/{1000 * f['cpu_s_per_q']:5.1f} {f['peak_rss_mb']:5.0f}"
            for f in (r["stages"][stage] for r in per_size)
        )
        lines.append(f"{stage:<12}{row}")
    lines.append("")
    for key in per_size[0]["dvc"]:
        lines.append(f"{key:<34}" + "".join(f"{_fmt(r['dvc'][key]):>16}" for r in per_size))
    for key in per_size[0]["work"]:
        lines.append(
            f"{key:<34}" + "".join(f"{_fmt(r['work'].get(key, '')):>16}" for r in per_size)
        )
    for key in ("crawl_elapsed_s", "crawl_robots"):
        lines.append(f"{key:<34}" + "".join(f"{_fmt(r[key]):>16}" for r in per_size))
    hosts = sorted({h for r in per_size for h in r["crawl_pages_per_host"]})
    for host in hosts:
        lines.append(
            f"{'pages ' + host:<34}"
            + "".join(f"{r['crawl_pages_per_host'].get(host, 0):>16}" for r in per_size)
        )
    for key in sorted({k for r in per_size for k in r.get("estimate", {})}):
        lines.append(
            f"{'est ' + key:<34}"
            + "".join(f"{_fmt(r.get('estimate', {}).get(key, '')):>16}" for r in per_size)
        )
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def run(
    sizes: list[int] | None = None, models: Path | None = None, keep: bool = False
) -> dict[str, Any]:
    """Measure every size (``$BENCH_SCALE`` or the defaults); print a table; flat figures."""
    from seedtune_sandbox.tiny import build_tiny_models

    sizes = sizes or parse_sizes(os.environ.get(SIZES_ENV))
    built = build_tiny_models((models or REPO / ".cache" / "tiny-models").resolve())
    per_seed = QUESTIONS_PER_SEED
    per_size = []
    for i, target in enumerate(sizes):
        print(f"bench scale: {target} questions ...", file=sys.stderr, flush=True)
        res = run_size(target, per_seed, built, keep)
        per_size.append(res)
        if i == 0:  # later sizes pick their seed count from this run's yield
            per_seed = res["questions"] / res["seed_words"]
    print(table(per_size), flush=True)
    return flatten(per_size)


def main(argv: list[str] | None = None) -> int:
    """CLI: run the sizes given, merge the figures into bench/results.json under ``scale``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--questions",
        "--sizes",
        dest="sizes",
        default=os.environ.get(SIZES_ENV),
        help="sizes, e.g. 200,800",
    )
    ap.add_argument("--models", type=Path, default=None, help="tiny model cache directory")
    ap.add_argument("--keep", action="store_true", help="keep the temporary workspaces")
    args = ap.parse_args(argv)
    figures = run(parse_sizes(args.sizes), args.models, args.keep)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["scale"] = figures
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
