"""Stages end when told to, with one line: SIGTERM or Ctrl-C to the stage, the death of the
``dvc repro`` that started it (SIGTERM to dvc), a full disk, a shell without the venv."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support import ROOT, last_line

from seedtune.core.cache import ResponseCache
from seedtune.core.errors import EXIT_USER_ERROR, run_main

STAGES = ROOT / "stages"


def processes_in(folder: Path, needle: str) -> list[int]:
    """Live processes whose working directory is ``folder`` and whose command line holds
    ``needle`` (zombies have no command line)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if needle in cmdline and Path(cwd) == folder:
            found.append(int(proc.name))
    return found


def wait_gone(folder: Path, needle: str, limit_s: float = 5.0) -> list[int]:
    """The processes of :func:`processes_in` still alive ``limit_s`` after now (the issue's
    bound for a stage to end), returning as soon as there are none."""
    deadline = time.monotonic() + limit_s
    while (alive := processes_in(folder, needle)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


#: A stage whose work never ends by itself: a child process, a thread pool of sleepers (the
#: LLM and search stages' shape), and the stage's pid in ``pid`` once it is under way.
BUSY_STAGE = """
import subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from seedtune.core.stage import run_stage

def main():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    Path("child").write_text(str(child.pid))
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(time.sleep, 120) for _ in range(16)]
        Path("pid.tmp").write_text(str(__import__("os").getpid()))
        Path("pid.tmp").rename("pid")  # whole, for the test that waits on it
        for f in futures:
            f.result()

run_stage("busy", main)
"""


def start_busy(
    tmp_path: Path, launcher: list[str] | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    (tmp_path / "busy_stage.py").write_text(BUSY_STAGE)
    cmd = [*(launcher or []), sys.executable, "busy_stage.py"]
    if launcher and launcher[-1] == "-c":
        cmd = [*launcher, f"{sys.executable} busy_stage.py"]
    base = {k: v for k, v in os.environ.items() if k != "DVC_STAGE"}
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env={**base, **(env or {})}, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while not (tmp_path / "pid").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    return proc


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_stage_and_its_children_with_one_line(tmp_path, signum) -> None:
    """Work in flight in a thread pool does not hold the stage past the grace, the child
    process it started goes with it, and stderr says so in one line (no traceback)."""
    proc = start_busy(tmp_path)
    child = int((tmp_path / "child").read_text())
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signum
    assert "Traceback" not in err
    assert last_line(err).startswith(f"busy: interrupted by {signal.Signals(signum).name}: ")
    assert "answers that arrived are cached" in last_line(err)
    assert not wait_gone(tmp_path, "busy_stage.py")
    assert not alive(child)


@pytest.mark.parametrize("shell", ["/bin/bash", "/bin/sh"])
def test_the_stage_ends_when_the_dvc_that_started_it_dies(tmp_path, shell) -> None:
    """As dvc runs it (``$SHELL -c cmd`` with DVC_STAGE set): bash execs the stage (its
    parent is the launcher: PR_SET_PDEATHSIG), dash keeps a shell in between (the stage
    watches the shell's parent). SIGKILL to the launcher, as to a dvc that cannot clean up:
    the stage and its child end within the issue's 5 s."""
    if not Path(shell).exists():
        pytest.skip(f"no {shell}")
    launcher = [
        sys.executable,
        "-c",
        "import subprocess, sys; subprocess.run(sys.argv[1:])",
        shell,
        "-c",
    ]
    proc = start_busy(tmp_path, launcher, env={"DVC_STAGE": "busy"})
    child = int((tmp_path / "child").read_text())
    proc.kill()
    proc.wait()
    assert not wait_gone(tmp_path, "busy_stage.py")
    assert not alive(child)


def test_without_dvc_the_stage_outlives_its_parent(tmp_path) -> None:
    """Started by hand (no DVC_STAGE: ``nohup python stages/x.py &`` then logging out), the
    stage keeps working when its parent goes."""
    launcher = [sys.executable, "-c", "import subprocess, sys; subprocess.run(sys.argv[1:])"]
    proc = start_busy(tmp_path, launcher)
    pid = int((tmp_path / "pid").read_text())
    proc.kill()
    proc.wait()
    try:
        time.sleep(1.0)  # several polls of the watchdog, were it on
        assert alive(pid)
    finally:
        os.kill(pid, signal.SIGKILL)


# -- dvc repro ----------------------------------------------------------------------------
@pytest.mark.slow
def test_sigterm_to_dvc_repro_stops_the_crawl_and_a_rerun_pays_nothing_twice(tmp_path) -> None:
    """The issue's report: SIGTERM to ``dvc repro`` left the crawl fetching. Now no process
    of the stage survives 5 s, the simulator's page count stops growing, nothing looks
    complete, and a rerun fetches again at most the pages that were in flight."""
    from seedtune_sandbox.demo import SIM_ENV, prepare_workspace, sim_config, tool_env
    from seedtune_sandbox.sim import SimServer

    concurrency = 2
    with SimServer(sim_config(page_delay_s=0.4)) as sim:
        slow = sim.page_origins["slow"]
        local = {
            "crawl": {
                "host_rps": 100,
                "per_host": concurrency,
                "concurrency": concurrency,
                "timeout_s": 10,
                "max_retries": 0,
                "allow_networks": ["127.0.0.0/8", "::1/128"],
            }
        }
        ws = prepare_workspace(ROOT, tmp_path / "ws", local)
        docs = [
            {
                "question": f"전세 계약 {q}번째 질문?",
                "documents": [
                    {
                        "category": "blog",
                        "title": "t",
                        "description": "d",
                        "link": f"{slow}/board/{q * 3 + i + 1}",
                    }
                    for i in range(3)
                ],
            }
            for q in range(16)
        ]
        (ws / "data").mkdir(exist_ok=True)
        (ws / "data/documents.jsonl").write_text(
            "".join(__import__("json").dumps(d, ensure_ascii=False) + "\n" for d in docs)
        )
        env = {**tool_env(SIM_ENV), "SHELL": "/bin/sh"}  # dash: a shell sits in between
        log = tmp_path / "dvc.log"  # a file, not a pipe: an orphaned stage would hold a pipe
        with log.open("w") as out:
            dvc = subprocess.Popen(
                ["dvc", "repro", "--single-item", "crawl"],
                cwd=ws,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while sim.stats()["pages"]["requests"] < 6:
            assert dvc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        dvc.send_signal(signal.SIGTERM)
        assert dvc.wait(timeout=30) == -signal.SIGTERM
        assert not wait_gone(ws, "stages/crawl.py"), log.read_text()[-2000:]
        time.sleep(0.4 + 0.3)  # requests the server took before the stage ended are answered
        settled = sim.stats()["pages"]["requests"]
        time.sleep(1.5)
        assert sim.stats()["pages"]["requests"] == settled
        assert settled < len(docs) * 3
        assert not (ws / "data/pages.jsonl").exists()  # nothing that looks complete
        assert last_line(log.read_text()).startswith("crawl: interrupted by SIGTERM: ")
        rerun = subprocess.run(
            ["dvc", "repro", "--single-item", "crawl"],
            cwd=ws,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
        twice = [u for u, n in sim.stats()["pages"]["by_url"].items() if n > 1]
        assert len(twice) <= concurrency, twice  # the pages in flight, asked again
        rows = [line for line in (ws / "data/pages.jsonl").read_text().splitlines() if line]
        assert len(rows) == len(docs) * 3


# -- a full disk --------------------------------------------------------------------------
class _FillingDisk:
    """A segment file whose disk fills up once ``full`` is set: a write lands partly, then
    fails with ENOSPC, as a write that runs out of blocks does."""

    full = False

    def __init__(self, raw) -> None:
        self.raw = raw

    def write(self, data) -> int:
        if not _FillingDisk.full:
            return self.raw.write(data)
        if len(data) > 10:
            return self.raw.write(data[: len(data) // 2])  # a short write, then the error
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str):
        return getattr(self.raw, name)


def _fill_disk(monkeypatch) -> None:
    real = ResponseCache._start_segment

    def start(self) -> None:
        real(self)
        self._writer = _FillingDisk(self._writer)

    monkeypatch.setattr(_FillingDisk, "full", False)
    monkeypatch.setattr(ResponseCache, "_start_segment", start)


def test_a_full_disk_keeps_every_earlier_entry_intact(tmp_path, monkeypatch) -> None:
    _fill_disk(monkeypatch)
    cache = ResponseCache(tmp_path / "c")
    for i in range(3):
        cache.put(f"{i:064x}", {"answer": i})
    _FillingDisk.full = True
    with pytest.raises(OSError) as info:
        cache.put(f"{9:064x}", {"answer": "x" * 100})
    assert info.value.errno == errno.ENOSPC
    assert str(tmp_path / "c" / "seg-") in info.value.filename
    cache.close()
    again = ResponseCache(tmp_path / "c")
    assert [again.get(f"{i:064x}") for i in range(3)] == [{"answer": i} for i in range(3)]
    assert again.get(f"{9:064x}") is None and again.damaged == 0  # no torn line left
    with pytest.raises(OSError):  # a put that cannot write its first line leaves no file
        again.put(f"{9:064x}", {"answer": "x" * 100})
    assert len(list((tmp_path / "c").glob("seg-*"))) == 1


def test_a_full_disk_is_one_line(capsys) -> None:
    def main() -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "data/cache/crawl/seg-1.jsonl")

    assert run_main("crawl", main) == EXIT_USER_ERROR
    assert capsys.readouterr().err == (
        "crawl: error: disk full writing data/cache/crawl/seg-1.jsonl: free space and rerun; "
        "nothing cached is lost\n"
    )


#: Runs a stage script as ``python stages/<stage>.py`` would, with the cache's disk filling
#: up after ``argv[2]`` pages.
_FULL_AFTER = """
import runpy, sys
from pathlib import Path
sys.path.insert(0, str(Path(sys.argv[1]).parent))
from seedtune.core import cache
put = cache.ResponseCache.put
left = [int(sys.argv[2])]
def full_put(self, key, value):
    if self.root.name == "crawl":  # the fetched pages' cache, not the derived rows'
        if left[0] <= 0:
            raise OSError(28, "No space left on device", str(self.root / "seg-x.jsonl"))
        left[0] -= 1
    put(self, key, value)
cache.ResponseCache.put = full_put
sys.argv = sys.argv[1:2]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_full_disk_mid_crawl_is_one_line_and_the_rerun_keeps_the_pages(workspace) -> None:
    from seedtune_sandbox.demo import SIM_ENV, sim_config
    from seedtune_sandbox.sim import SimServer

    with SimServer(sim_config()) as sim:
        blog = sim.page_origins["web"]
        ws = workspace.params(
            crawl={
                "per_question": 3,
                "host_rps": 100,
                "per_host": 1,
                "concurrency": 1,
                "timeout_s": 5,
                "allow_networks": ["127.0.0.0/8", "::1/128"],
            }
        )
        ws.write(
            "data/documents.jsonl",
            [
                {
                    "question": f"질문 {q}?",
                    "documents": [
                        {
                            "category": "blog",
                            "title": "t",
                            "description": "d",
                            "link": f"{blog}/board/{q * 3 + i + 1}",
                        }
                        for i in range(3)
                    ],
                }
                for q in range(3)
            ],
        )
        proc = subprocess.run(
            [sys.executable, "-c", _FULL_AFTER, str(STAGES / "crawl.py"), "4"],
            cwd=ws.path,
            env=ws.env(SIM_ENV),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == EXIT_USER_ERROR, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr
        assert last_line(proc.stderr) == (
            "crawl: error: disk full writing data/cache/crawl/seg-x.jsonl: free space and "
            "rerun; nothing cached is lost"
        )
        assert not (ws.path / "data/pages.jsonl").exists()
        cached = ResponseCache(ws.path / "data/cache/crawl")
        assert len(cached) and cached.damaged == 0
        rerun = ws.run("crawl", keys=SIM_ENV)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert len(ws.rows("data/pages.jsonl")) == 9
        # only the page whose answer found the disk full is asked again
        twice = [u for u, n in sim.stats()["pages"]["by_url"].items() if n > 1]
        assert len(twice) <= 1, twice


# -- the environment ----------------------------------------------------------------------
SYSTEM_PYTHON = Path("/usr/bin/python3")


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="no system python")
def test_a_stage_outside_the_venv_names_the_fix(tmp_path) -> None:
    """``dvc repro`` from a shell without the venv runs the system python: one line saying
    to activate the venv, exit 2 (``-E -s``: no PYTHONPATH, no user site, like a fresh
    shell)."""
    isolated = [str(SYSTEM_PYTHON), "-E", "-s"]
    if subprocess.run([*isolated, "-c", "import seedtune"], capture_output=True).returncode == 0:
        pytest.skip("the system python has seedtune installed")
    proc = subprocess.run(
        [*isolated, str(STAGES / "crawl.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == EXIT_USER_ERROR
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("crawl: error: ")
    assert "source .venv/bin/activate" in proc.stderr


@pytest.mark.parametrize("where", ["import", "main"])
def test_a_missing_dependency_names_make_setup(tmp_path, where) -> None:
    """A package missing from the venv (torch, say), imported at the top of a stage script
    or inside its work, ends with one line naming ``make setup``."""
    script = tmp_path / "deps.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # what `pip uninstall torch` leaves
        sys.path.insert(0, {str(STAGES)!r})
        import _guard
        if {where == "import"!r}:
            import torch
        from seedtune.core.stage import run_stage
        def main():
            import torch
        run_stage("train", main)
    """)
    )
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == EXIT_USER_ERROR
    assert "Traceback" not in proc.stderr
    assert last_line(proc.stderr) == (
        f"deps: error: no module named 'torch' in "
        f"{sys.executable}: a dependency is missing; run "
        "`make setup`"
    )
