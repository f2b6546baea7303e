"""Records on disk: atomic writes (files and directories), JSON Lines I/O, file versions.

Every output of the pipeline is written to a temporary file (or directory) beside its target
and renamed into place, so a crash or ``kill -9`` never leaves a partial output that looks
complete.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from seedtune.core.errors import ConfigError, InputError

log = logging.getLogger(__name__)


def _process_umask() -> int:
    """This process's umask, read without changing it where Linux allows (os.umask sets it,
    which would race with threads that create files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _process_umask()
#: The modes open() and mkdir() give under this umask (0644 and 0755 under the usual 022).
FILE_MODE = 0o666 & ~_UMASK
DIR_MODE = 0o777 & ~_UMASK


def honour_umask(root: Path) -> None:
    """Give ``root`` and everything under it the modes open()/mkdir() would have: writers
    that go through a temp file (safetensors 0.8 writes 0600 weights, mkstemp/mkdtemp make
    0600/0700) leave files that teammates sharing a machine cannot read."""
    root.chmod(DIR_MODE if root.is_dir() else FILE_MODE)
    for parent, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(parent, name), DIR_MODE)
        for name in files:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, FILE_MODE)


def atomic_write_text(path: Path | str, text: str, durable: bool = True) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically: see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"), durable)


def atomic_write_bytes(path: Path | str, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and ``os.replace``.

    The rename alone makes the write atomic for other processes and survives ``kill -9``
    (the page cache outlives the process); ``durable`` also fsyncs, so the content
    survives a power cut, at about half a millisecond per file.
    """
    with atomic_open(path, durable, sweep=False) as fh:
        fh.write(data)


#: A temporary file or folder this old was left by a killed process, not a live one.
STALE_TMP_S = 3600.0


def sweep_stale(directory: Path | str, pattern: str, max_age_s: float = STALE_TMP_S) -> None:
    """Delete what killed writers left in ``directory`` (files or folders matching
    ``pattern``, older than ``max_age_s``): their results never replaced anything, and a
    younger one may belong to a writer still at work."""
    now = time.time()
    for stale in Path(directory).glob(pattern):
        try:
            if now - stale.stat().st_mtime <= max_age_s:
                continue
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink()
        except FileNotFoundError:
            pass


@contextmanager
def atomic_open(path: Path | str, durable: bool = True, sweep: bool = True) -> Iterator[BinaryIO]:
    """A binary file to stream an output into, a temp file beside ``path``: on a clean
    exit it replaces ``path`` in one rename (``durable`` also fsyncs it), on an error it is
    removed. With ``sweep``, a killed writer's temp file of the same output is removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if sweep:
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes 0600 files; outputs get the mode open() would give them (0644 under
        # the usual umask), as DVC gives the files it checks out
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            yield fh
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path | str, obj: Any) -> None:
    """Write ``obj`` as pretty UTF-8 JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=False) + "\n")


def read_json(path: Path | str) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_jsonl(path: Path | str, rows: Iterable[dict[str, Any]], never_empty: bool = False) -> int:
    """Write rows as JSON Lines, atomically, one row at a time; returns the number of rows.
    ``never_empty``: see :class:`JsonlWriter`."""
    with JsonlWriter(path, never_empty=never_empty) as out:
        for row in rows:
            out.write(row)
    return out.count


class JsonlWriter:
    """Stream rows to a JSON Lines file that appears only when complete.

    Rows go to a temp file beside ``path`` as they come (memory holds one row); leaving the
    ``with`` block without an error fsyncs it and renames it into place, an error (or a kill)
    leaves no ``path`` that looks complete, and the temp file is removed (a kill's is swept
    by the next writer of the same file).

    ``never_empty``: a file without rows holds one newline (zero rows to every JSON Lines
    reader: ours, jq, pandas), not zero bytes, for outputs that are often empty (the
    rejects): DVC warns "'<file>' is empty." each time a stage saves an empty output.
    """

    def __init__(self, path: Path | str, durable: bool = True, never_empty: bool = False) -> None:
        self.path = Path(path)
        self.durable = durable
        self.never_empty = never_empty
        self.count = 0
        self._file: Any = None
        self._fh: Any = None

    def __enter__(self) -> JsonlWriter:
        self._file = atomic_open(self.path, self.durable)
        self._fh = io.TextIOWrapper(self._file.__enter__(), encoding="utf-8", newline="\n")
        return self

    def write(self, row: dict[str, Any]) -> None:
        """Append one row."""
        self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.count += 1

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            if self.never_empty and not self.count:
                self._fh.write("\n")
            self._fh.flush()
        self._fh.detach()  # atomic_open closes (and renames or removes) the file itself
        self._file.__exit__(*exc)


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """Read a JSON Lines file; a malformed line is an error naming the file and line."""
    return list(iter_jsonl(path))


def iter_jsonl(path: Path | str) -> Iterator[dict[str, Any]]:
    """Iterate the rows of a JSON Lines file, skipping blank lines, reading one line at a
    time (memory holds one row, not the file). Undecodable input is one
    :class:`InputError` naming the file and line, as :func:`read_text` words it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: missing (run the upstream stage: `dvc repro`)")
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            if n == 1:
                raw = strip_bom(path, raw)
            line = decode_line(path, n, raw)
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{n}: not valid JSON ({exc.msg})") from None


def strip_bom(path: Path, data: bytes) -> bytes:
    """``data`` (a file's start) without a UTF-8 byte-order mark; UTF-16 is an error."""
    if data.startswith(codecs.BOM_UTF8):
        log.warning("%s: ignoring its UTF-8 byte-order mark", path)
        return data[len(codecs.BOM_UTF8) :]
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputError(f"{path}: UTF-16 text; save it as UTF-8")
    return data


def decode_line(path: Path, line: int, data: bytes) -> str:
    """One line's bytes as UTF-8 text; anything else names the file and line."""
    if b"\x00" in data:
        raise InputError(f"{path}:{line}: binary data (a NUL byte), not UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, line, data[exc.start]) from None


def _not_utf8(path: Path, line: int, byte: int) -> InputError:
    return InputError(
        f"{path}:{line}: not UTF-8 (byte 0x{byte:02x}); save it as UTF-8, e.g. "
        "`iconv -f cp949 -t utf-8`"
    )


def read_text(path: Path | str) -> str:
    """The text of a UTF-8 input file; anything else is one :class:`InputError` line naming
    the file and line. A UTF-8 byte-order mark (Windows Notepad writes one) is dropped."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a file") from None
    data = strip_bom(path, data)
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise InputError(f"{path}:{line}: binary data (a NUL byte), not UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _not_utf8(path, line, data[exc.start]) from None


def read_lines(path: Path | str) -> list[str]:
    """Non-empty, stripped lines of a UTF-8 text file (``#`` starts a comment line)."""
    out = []
    for line in read_text(path).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def read_yaml_mapping(path: Path | str, missing_ok: bool = False) -> dict[str, Any]:
    """A YAML file of settings or params as a dict ({} when empty, or missing and
    ``missing_ok``); anything else is one :class:`ConfigError` line naming the file (and
    line)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise ConfigError(f"{path}: missing") from None
    except yaml.MarkedYAMLError as exc:
        line = f":{exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({exc.problem})") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: unreadable ({type(exc).__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys")
    return data


def data_version(path: Path | str) -> str:
    """md5 of the file's bytes: what DVC 3 records as its ``md5`` in dvc.lock."""
    digest = hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class save_atomically:  # noqa: N801 - used as a context manager
    """Yield a temp dir beside ``target``; on success it replaces ``target`` in one rename.

    With ``enabled=False`` (the other processes of a distributed run) it only yields the
    same temp path, creating and renaming nothing.
    """

    def __init__(self, target: Path, enabled: bool = True) -> None:
        self.target = target
        self.enabled = enabled
        self.tmp = target.with_name(f".{target.name}.tmp")

    def __enter__(self) -> Path:
        if self.enabled:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp.mkdir(parents=True)
        return self.tmp

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if not self.enabled:
            return
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        honour_umask(self.tmp)  # before the rename: the target is never seen 0600
        old = self.target.with_name(f".{self.target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if self.target.exists():
            self.target.rename(old)
        self.tmp.rename(self.target)
        shutil.rmtree(old, ignore_errors=True)
