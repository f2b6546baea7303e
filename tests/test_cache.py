"""The response cache's segment layout: nothing paid for lost, damage is a miss, few files."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

from support import damage_line

from seedtune.core import cache as cache_mod
from seedtune.core.cache import MERGE_FANOUT, ResponseCache, cache_key


def _segments(root: Path) -> list[Path]:
    return sorted(root.glob("seg-*.jsonl"))


def test_answers_survive_reopening_and_the_newest_wins(tmp_path) -> None:
    with ResponseCache(tmp_path) as c:
        c.put(cache_key("a"), {"answer": "첫 답"})
        c.put(cache_key("b"), [1, 2])
        c.put(cache_key("a"), {"answer": "고친 답"})  # e.g. a wrong-shaped answer asked again
    again = ResponseCache(tmp_path)
    assert again.get(cache_key("a")) == {"answer": "고친 답"}
    assert again.get(cache_key("b")) == [1, 2] and again.get(cache_key("c")) is None
    assert len(again) == 2 and cache_key("b") in again
    (segment,) = _segments(tmp_path)
    assert stat.S_IMODE(segment.stat().st_mode) == 0o644


def test_a_damaged_entry_is_a_logged_miss_and_its_neighbours_stay(tmp_path, caplog) -> None:
    with ResponseCache(tmp_path) as c:
        for i in range(3):
            c.put(cache_key(i), {"i": i})
        where = c.where(cache_key(1))
    segment, offset = where.rsplit(":", 1)
    damage_line(Path(segment), int(offset))
    with caplog.at_level("WARNING"):
        c = ResponseCache(tmp_path)
    assert c.get(cache_key(1)) is None and c.damaged == 1
    assert [c.get(cache_key(i)) for i in (0, 2)] == [{"i": 0}, {"i": 2}]
    assert f"ignoring damaged cache entry {segment} at byte {offset}" in caplog.text
    c.put(cache_key(1), {"i": 1})  # asked again: the new answer supersedes the damaged one
    c.close()
    assert ResponseCache(tmp_path).get(cache_key(1)) == {"i": 1}


def test_kill_9_mid_run_loses_only_the_line_in_flight(tmp_path) -> None:
    """A writer killed with SIGKILL: every flushed answer is there; a torn last line (what
    a kill in the middle of a write leaves) is a miss."""
    script = textwrap.dedent(f"""
        import os, signal
        from seedtune.core.cache import ResponseCache, cache_key
        c = ResponseCache({str(tmp_path)!r})
        for i in range(50):
            c.put(cache_key(i), {{"i": i, "text": "전세 " * 50}})
        c._writer.write(b"{"f" * 64}\\t1\\t0000")  # half a line, never finished
        c._writer.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    c = ResponseCache(tmp_path)
    assert len(c) == 50 and all(c.get(cache_key(i))["i"] == i for i in range(50))
    assert c.damaged == 1


def test_segments_merge_so_files_stay_few_and_nothing_is_lost(tmp_path) -> None:
    runs = 3 * MERGE_FANOUT * MERGE_FANOUT  # e.g. one small run per new seed word
    for run in range(runs):
        with ResponseCache(tmp_path) as c:
            c.put(cache_key(run), {"run": run})
            assert len(_segments(tmp_path)) < 2 * MERGE_FANOUT
    c = ResponseCache(tmp_path)
    assert [c.get(cache_key(r)) for r in range(runs)] == [{"run": r} for r in range(runs)]
    assert len(_segments(tmp_path)) < 2 * MERGE_FANOUT
    assert not list(tmp_path.glob(".*.tmp"))


def test_adding_answers_leaves_the_big_old_segments_untouched(tmp_path, monkeypatch) -> None:
    """What a teammate already pulled stays byte for byte: a new run adds files."""
    monkeypatch.setattr(cache_mod, "TIER_BASE_BYTES", 4096)
    with ResponseCache(tmp_path) as c:
        for i in range(200):
            c.put(cache_key(i), {"text": "보증금 " * 40})
    (big,) = _segments(tmp_path)
    before = big.read_bytes()
    for run in range(2 * MERGE_FANOUT):
        with ResponseCache(tmp_path) as c:
            c.put(cache_key(("new", run)), {"run": run})
    assert big.read_bytes() == before


def test_a_live_writers_segment_is_never_merged(tmp_path) -> None:
    other = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys
        from seedtune.core.cache import ResponseCache, cache_key
        c = ResponseCache({str(tmp_path)!r})
        c.put(cache_key("other"), 1)
        print("ready", flush=True)
        sys.stdin.readline()
        c.put(cache_key("other-2"), 2)
    """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert other.stdout is not None and other.stdin is not None
    assert other.stdout.readline().strip() == "ready"
    (held,) = _segments(tmp_path)
    for run in range(2 * MERGE_FANOUT):
        with ResponseCache(tmp_path) as c:
            c.put(cache_key(run), run)
    assert held.exists()
    other.stdin.write("\n")
    other.stdin.close()
    assert other.wait(timeout=60) == 0
    c = ResponseCache(tmp_path)
    assert c.get(cache_key("other")) == 1 and c.get(cache_key("other-2")) == 2
    assert all(c.get(cache_key(r)) == r for r in range(2 * MERGE_FANOUT))


def test_a_cache_in_the_old_layout_moves_into_a_segment_without_asking_again(
    tmp_path, caplog
) -> None:
    """Caches written by one file per answer (``<key[:2]>/<key>.json``) are read once,
    moved, and their files deleted; a damaged old file is a miss, as it always was."""
    keys = [cache_key(i) for i in range(5)]
    for i, key in enumerate(keys):
        path = tmp_path / key[:2] / f"{key}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"key": key, "value": {"i": i}}), encoding="utf-8")
    (tmp_path / keys[4][:2] / f"{keys[4]}.json").write_bytes(b"\xff not json")
    with caplog.at_level("WARNING"), ResponseCache(tmp_path) as c:
        assert [c.get(k) for k in keys] == [{"i": i} for i in range(4)] + [None]
    assert "ignoring damaged cache entry" in caplog.text
    assert not list(tmp_path.glob("??/*.json")) and not [
        p for p in tmp_path.iterdir() if p.is_dir()
    ]
    assert len(ResponseCache(tmp_path)) == 4


def test_processes_writing_one_cache_at_once_keep_every_answer(tmp_path) -> None:
    code = textwrap.dedent(f"""
        import sys
        from seedtune.core.cache import ResponseCache, cache_key
        with ResponseCache({str(tmp_path)!r}) as c:
            for i in range(200):
                c.put(cache_key((sys.argv[1], i)), i)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(n)]) for n in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    c = ResponseCache(tmp_path)
    assert len(c) == 800
    assert all(c.get(cache_key((str(n), i))) == i for n in range(4) for i in range(200))


def test_file_descriptors_are_released_with_the_cache(tmp_path) -> None:
    with ResponseCache(tmp_path) as c:
        c.put(cache_key(1), 1)
    del c
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        ResponseCache(tmp_path).get(cache_key(1))
    assert len(os.listdir("/proc/self/fd")) <= before + 2
