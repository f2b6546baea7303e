"""A stage ends its work when it is told to: SIGTERM, SIGINT (Ctrl-C), or the death of the
``dvc repro`` that started it.

DVC (3.x, ``dvc/stage/run.py``) runs a stage's ``cmd`` as ``$SHELL -c "<cmd>"`` (``/bin/sh``
when ``SHELL`` is unset), in dvc's own process group, and ignores SIGINT while it waits. bash
execs a lone command, so the stage is dvc's child; dash (``/bin/sh`` on Debian) does not, so
a shell sits between them. Killing dvc (SIGTERM) left the stage running as an orphan,
fetching and paying, beside the next ``dvc repro``. So :func:`stop_on_signals`, called by
every stage before its work:

- turns SIGTERM and SIGINT into :class:`Interrupted` (a :class:`KeyboardInterrupt`) in the
  main thread, the path the clients already treat as Ctrl-C: no new call starts, answers in
  flight get :data:`GRACE_S` to land in the cache, outputs (written atomically) are not
  replaced. A second signal, or the grace running out, ends the process at once
  (:func:`os._exit`): the calls still in flight are lost, nothing that arrived is;
- learns of the signal also from a thread (the wakeup fd), so the grace is counted even while
  the main thread sits in one long C call;
- when started by dvc (``DVC_STAGE`` is set), asks Linux for SIGTERM when its parent dies
  (``PR_SET_PDEATHSIG``) and polls from a thread whether its parent, or the parent of a shell
  in between, changed (the portable fallback; a reparented process lost its launcher);
- on the way out stops the processes it started (dataloader workers, ``accelerate launch``
  and its workers), SIGTERM then SIGKILL, so nothing of the stage outlives it.

The process group is left alone: it is dvc's (and the terminal's), not the stage's.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

#: Seconds the calls in flight get to land in the cache after the first signal.
GRACE_S = 3.0
#: Seconds the stage's own child processes get between SIGTERM and SIGKILL.
CHILD_GRACE_S = 0.5
#: How often the watchdog looks whether the launching process is still there.
POLL_S = 0.2
#: Process names of shells that may sit between dvc and the stage.
SHELLS = frozenset({"sh", "dash", "bash", "zsh", "fish", "ksh", "mksh", "ash", "busybox"})
_PR_SET_PDEATHSIG = 1


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT reached the stage: it stops, keeping what was paid for."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _State:
    """What this process's handlers share (one stage per process)."""

    def __init__(self) -> None:
        self.stage = "stage"
        self.owner = -1  # the pid that installed the handlers (forked children inherit them)
        self.signum: int | None = None
        self.started = threading.Event()  # the grace is running
        self.reported = threading.Lock()  # held by whoever printed the one line
        self.children: dict[int, str] = {}  # pid -> start time, seen when the signal came


_state = _State()


def exit_status(signum: int) -> int:
    """The shell's convention for a process ended by ``signum``: 128 + its number."""
    return 128 + signum


def stop_on_signals(stage: str) -> None:
    """Install the stopping behaviour described in the module doc (main thread only)."""
    _state.stage, _state.owner = stage, os.getpid()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _on_signal)
    _watch_wakeups()
    if os.environ.get("DVC_STAGE"):
        # only under dvc: a stage started by hand under nohup must outlive its shell
        _watch_launcher()


def interrupted(exc: KeyboardInterrupt) -> int:
    """After :class:`Interrupted` (or a plain KeyboardInterrupt) unwound the stage: say so in
    one line, stop the stage's children, and return the exit status (128 + the signal)."""
    # a handler on the way may have re-raised a plain KeyboardInterrupt: the signal is noted
    signum = getattr(exc, "signum", None) or _state.signum or signal.SIGINT
    _report(signum, "answers that arrived are cached; a rerun continues from them")
    with contextlib.suppress(ValueError):  # not the main thread
        # torch's SIGCHLD handler raises when a worker dies: not while we stop them
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    stop_children()
    return exit_status(signum)


# -- signals ------------------------------------------------------------------------------
def _on_signal(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _state.owner:  # a forked child (a dataloader worker): act as default
        if signum == signal.SIGINT:
            signal.default_int_handler(signum, frame)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if _state.signum is not None:
        _hard_exit(signum, "a second signal")
    _state.signum = signum
    _start_grace(signum)
    raise Interrupted(signum)


def _start_grace(signum: int) -> None:
    """Snapshot the children and start the countdown to a hard exit (once)."""
    if _state.started.is_set():
        return
    _state.started.set()
    _state.children = _descendants()

    def countdown() -> None:
        time.sleep(GRACE_S)
        _hard_exit(signum, f"work still in flight after {GRACE_S:g} s was dropped")

    threading.Thread(target=countdown, name="stop-deadline", daemon=True).start()


def _hard_exit(signum: int, why: str) -> None:
    # a progress bar may still hold the line: start a fresh one
    _report(signum, f"{why}; answers that arrived are cached", start="\n")
    stop_children()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(exit_status(signum))


def _report(signum: int, what: str, start: str = "") -> None:
    if _state.reported.acquire(blocking=False):
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            print(
                f"{start}{_state.stage}: interrupted by {signal.Signals(signum).name}: {what}",
                file=sys.stderr,
                flush=True,
            )


def _watch_wakeups() -> None:
    """Count the grace from the moment a signal arrives, even while the main thread is
    inside one long C call (Python runs handlers only between its bytecodes)."""
    try:
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except (OSError, ValueError, AttributeError):
        return

    def wait() -> None:
        while True:
            for signum in os.read(read_fd, 64):
                if signum in (signal.SIGTERM, signal.SIGINT):
                    _start_grace(signum)

    threading.Thread(target=wait, name="signal-wakeup", daemon=True).start()


# -- the launcher -------------------------------------------------------------------------
def _watch_launcher() -> None:
    """SIGTERM to this process when whatever launched it goes away."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    shell = parent if _name(parent) in SHELLS else None
    above = _parent_of(shell) if shell is not None else None

    def launcher_gone() -> bool:
        if os.getppid() != parent:
            return True
        return shell is not None and _parent_of(shell) != above

    if launcher_gone():  # it died before the prctl above took effect
        os.kill(os.getpid(), signal.SIGTERM)
        return

    def poll() -> None:
        while not launcher_gone():
            time.sleep(POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=poll, name="launcher-watch", daemon=True).start()


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _parent_of(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if fields else None


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


# -- children -----------------------------------------------------------------------------
def _descendants() -> dict[int, str]:
    """pid -> start time of every live process below this one (Linux; {} elsewhere)."""
    try:
        pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:
        return {}
    children: dict[int, list[int]] = {}
    started: dict[int, str] = {}
    for pid in pids:
        fields = _stat(pid)
        if fields and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(pid)
            started[pid] = fields[19]
    found: dict[int, str] = {}
    todo = [os.getpid()]
    while todo:
        for pid in children.get(todo.pop(), []):
            if pid not in found:
                found[pid] = started[pid]
                todo.append(pid)
    return found


def _alive(pid: int, start: str) -> bool:
    fields = _stat(pid)
    if not fields:
        return False
    return fields[0] != "Z" and fields[19] == start


def stop_children() -> None:
    """SIGTERM every process this stage started (now or when the signal came), SIGKILL what
    is left after :data:`CHILD_GRACE_S`. Outside Linux: the multiprocessing children."""
    if not Path("/proc/self/stat").exists():
        import multiprocessing

        for child in multiprocessing.active_children():
            child.terminate()
        return
    targets = {**_state.children, **_descendants()}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        live = [pid for pid, start in targets.items() if _alive(pid, start)]
        for pid in live:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.monotonic() + CHILD_GRACE_S
        while live and time.monotonic() < deadline:
            time.sleep(0.02)
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(-1, os.WNOHANG)[0]:  # reap ours, or they stay zombies
                    pass
            live = [pid for pid in live if _alive(pid, targets[pid])]
        if not live:
            return
