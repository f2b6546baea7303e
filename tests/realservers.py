"""Real OpenAI-compatible servers from PyPI, serving the tiny Gemma on loopback, for
tests/test_real_servers.py.

Everything comes from PyPI and is made here; nothing comes from a model hub:

- ``tiny-gemma-*.gguf``: the tiny Gemma (:mod:`seedtune_sandbox.tiny`) converted by llama.cpp's
  own ``convert_hf_to_gguf.py`` (with its own ``gguf-py``), from the llama.cpp sources that
  llama-cpp-python's sdist vendors. The tiny Gemma has a ``tokenizer.json`` and no
  sentencepiece ``tokenizer.model``, which the converter's Gemma class reads; its vocabulary
  is read instead the way the converter reads other Llama-style byte-fallback BPE tokenizers
  (``_set_vocab_llama_hf``): same tokens, same ids, the real Gemma chat template;
- llama.cpp's ``llama-server``, built with cmake from those same sources, once per version,
  into the user's cache (a fresh clone, e.g. CI's, reuses it: the build takes minutes);
- llama-cpp-python's server (``python -m llama_cpp.server``) and ``transformers serve`` from
  this venv (the ``servers`` extra);
- a litellm proxy in front of llama-server, from a venv of its own: ``litellm[proxy]``
  pins other versions of openai, boto3 and fastapi than this project's.

``python tests/realservers.py build`` prepares all of it (``make test`` runs it); the
fixtures call the same functions, which return at once when their output exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Pinned: its sdist is where the llama.cpp sources (converter, server) come from.
LLAMA_CPP_PYTHON = "0.3.36"
LITELLM = "1.108.7"
#: The name llama-server, llama-cpp-python and litellm serve the tiny Gemma as.
SERVED_NAME = "tiny-gemma"
#: The litellm proxy refuses to start without a master key; clients send it as their key.
LITELLM_KEY_ENV, LITELLM_KEY = "SEEDTUNE_TEST_LITELLM_KEY", "sk-seedtune-loopback-test"
#: Bump when the GGUF conversion changes (invalidates cached GGUFs).
CONVERT_VERSION = "1"
GGUF_DIR = ROOT / ".cache" / "real-servers"
START_TIMEOUT_S = 180.0

# llama.cpp's converter, its Gemma class reading the tiny Gemma's tokenizer.json (see above)
_CONVERT = r"""
import runpy, sys
from pathlib import Path
src = Path(sys.argv[1])
sys.path[:0] = [str(src), str(src / "gguf-py")]
from conversion import gemma
def set_vocab(self):
    self._set_vocab_llama_hf()
    self.gguf_writer.add_add_space_prefix(False)
gemma.GemmaModel.set_vocab = set_vocab
sys.argv = [str(src / "convert_hf_to_gguf.py"), *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class Unavailable(RuntimeError):
    """A server cannot be had here (not installed, no compiler): the test says why."""


def tools_cache() -> Path:
    """Where built tools live (``SEEDTUNE_TOOLS_CACHE``, else ~/.cache/seedtune)."""
    env = os.environ.get("SEEDTUNE_TOOLS_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "seedtune"


def _log(msg: str) -> None:
    print(f"realservers: {msg}", file=sys.stderr, flush=True)


def _run(argv: Sequence[str | Path], log: Path, **kw: object) -> None:
    """Run a build step, its output in ``log``; a failure names the log and its tail."""
    with open(log, "ab") as fh:
        proc = subprocess.run([str(a) for a in argv], stdout=fh, stderr=subprocess.STDOUT, **kw)  # type: ignore[call-overload]
    if proc.returncode:
        tail = log.read_text(errors="replace")[-3000:]
        raise Unavailable(f"{argv[0]} exited {proc.returncode} (log: {log}):\n{tail}")


@contextlib.contextmanager
def _building(final: Path) -> Iterator[Path]:
    """A temporary sibling of ``final``, renamed into place when the block succeeds (so an
    interrupted build leaves nothing that looks complete)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would keep other users from the built tools
    try:
        yield tmp
        if final.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------- build


def llama_cpp_sources() -> Path:
    """The llama.cpp sources vendored by llama-cpp-python's sdist (downloaded once)."""
    final = tools_cache() / f"llama-cpp-python-{LLAMA_CPP_PYTHON}"
    src = final / "vendor" / "llama.cpp"
    if (src / "convert_hf_to_gguf.py").is_file():
        return src
    _log(f"downloading the llama-cpp-python {LLAMA_CPP_PYTHON} sdist (llama.cpp sources)")
    with _building(final) as tmp:
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"llama-cpp-python=={LLAMA_CPP_PYTHON}",
                "-d",
                tmp / "dl",
            ],
            tmp / "download.log",
        )
        (sdist,) = (tmp / "dl").glob("llama_cpp_python-*.tar.gz")
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp / "x", filter="data")
        for item in (tmp / "x" / f"llama_cpp_python-{LLAMA_CPP_PYTHON}").iterdir():
            item.rename(tmp / item.name)
        shutil.rmtree(tmp / "x")
        shutil.rmtree(tmp / "dl")
    return src


def _digest(gemma: Path) -> str:
    h = hashlib.sha256(f"{CONVERT_VERSION}\0{LLAMA_CPP_PYTHON}\0".encode())
    for f in sorted(p for p in gemma.iterdir() if p.is_file()):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def tiny_gguf(gemma: Path) -> Path:
    """The tiny Gemma as a GGUF (f32, 1.4 MB), made by llama.cpp's converter, cached in
    .cache/real-servers by the model's content."""
    out = GGUF_DIR / f"tiny-gemma-{_digest(gemma)}.gguf"
    if out.is_file():
        return out
    src = llama_cpp_sources()
    GGUF_DIR.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    log = GGUF_DIR / "convert.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    _run(
        [sys.executable, "-c", _CONVERT, src, gemma, "--outfile", tmp, "--outtype", "f32"],
        log,
        env=env,
    )
    tmp.replace(out)
    return out


def llama_server_binary() -> Path:
    """llama.cpp's llama-server: ``SEEDTUNE_LLAMA_SERVER`` if set, else built from the
    vendored sources (static, CPU, no web UI) into the tools cache."""
    env = os.environ.get("SEEDTUNE_LLAMA_SERVER")
    if env:
        return Path(env)
    final = tools_cache() / f"llama-server-{LLAMA_CPP_PYTHON}"
    binary = final / "llama-server"
    if binary.is_file():
        return binary
    if not shutil.which("cmake") or not (shutil.which("c++") or shutil.which("g++")):
        raise Unavailable(
            "llama-server is built with cmake and a C++ compiler: neither "
            "found (apt-get install cmake g++), or set SEEDTUNE_LLAMA_SERVER"
        )
    src = llama_cpp_sources()
    _log("building llama.cpp's llama-server (minutes; once per version)")
    with _building(final) as tmp:
        build, log = tmp / "build", tmp / "build.log"
        gen = ["-G", "Ninja"] if shutil.which("ninja") else []
        _run(
            [
                "cmake",
                "-S",
                src,
                "-B",
                build,
                *gen,
                "-DCMAKE_BUILD_TYPE=Release",
                "-DBUILD_SHARED_LIBS=OFF",
                "-DLLAMA_BUILD_TESTS=OFF",
                "-DLLAMA_BUILD_EXAMPLES=OFF",
                "-DLLAMA_BUILD_TOOLS=ON",
                "-DLLAMA_BUILD_SERVER=ON",
                "-DLLAMA_USE_PREBUILT_UI=OFF",
                "-DLLAMA_BUILD_UI=OFF",
            ],
            log,
        )
        _run(
            ["cmake", "--build", build, "--target", "llama-server", "-j", str(os.cpu_count() or 2)],
            log,
        )
        shutil.copy2(build / "bin" / "llama-server", tmp / "llama-server")
        shutil.rmtree(build)  # the binary is static: the objects are not needed
    return binary


def litellm_executable() -> Path:
    """litellm's proxy CLI: ``SEEDTUNE_LITELLM`` if set, else from a venv of its own in
    the tools cache (created once)."""
    env = os.environ.get("SEEDTUNE_LITELLM")
    if env:
        return Path(env)
    final = tools_cache() / f"litellm-{LITELLM}"
    exe, stamp = final / "bin" / "litellm", final / ".installed"
    if stamp.is_file():  # written last: the install finished
        return exe
    _log(f"installing litellm[proxy]=={LITELLM} into a venv of its own")
    # a venv's scripts name their interpreter by absolute path: build it in place
    if final.exists():
        shutil.rmtree(final)
    try:
        _run([sys.executable, "-m", "venv", final], final.parent / "litellm-venv.log")
        _run(
            [final / "bin" / "python", "-m", "pip", "install", "-q", f"litellm[proxy]=={LITELLM}"],
            final.parent / "litellm-venv.log",
        )
        stamp.write_text(LITELLM, encoding="utf-8")
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return exe


def transformers_executable() -> Path:
    """This venv's ``transformers`` CLI, when its serving dependencies are installed."""
    exe = Path(sys.executable).parent / "transformers"
    try:
        from transformers.utils.import_utils import is_serve_available
    except ImportError as e:
        raise Unavailable(f"transformers is not importable: {e}") from e
    if not exe.is_file() or not is_serve_available():
        raise Unavailable(
            "transformers serve needs its serving extra: pip install -e "
            "'.[servers]' (make test does)"
        )
    return exe


def llama_cpp_python_available() -> None:
    """Raise :class:`Unavailable` unless llama-cpp-python's server is installed here."""
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as e:
        raise Unavailable(
            f"llama-cpp-python[server] is not installed ({e}): pip install -e "
            "'.[servers]' (make test does)"
        ) from e


# --------------------------------------------------------------------------- run


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A server process on loopback: what ``llm.base_url`` and ``llm.model`` name."""

    name: str
    base_url: str  # ends in /v1
    model: str  # what llm.model must say for this server to answer
    log: Path
    proc: subprocess.Popen[bytes]
    api_key_env: str | None = None  # what llm.api_key_env names (None: no key)
    api_key: str | None = None

    def keys(self) -> dict[str, str]:
        """The environment a client of this server needs (its key, if any)."""
        return {self.api_key_env: self.api_key} if self.api_key_env and self.api_key else {}

    def log_text(self) -> str:
        """What the server printed so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def logged(self, text: str, within_s: float = 15) -> bool:
        """Whether the server's log shows ``text`` (waiting a little: a traceback may be
        written after the response)."""
        deadline = time.monotonic() + within_s
        while text not in self.log_text():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def get(self, path: str) -> tuple[int, str]:
        """``GET {base_url}{path}``: status and body."""
        return _request(self.base_url + path, key=self.api_key)

    def post(self, path: str, body: dict[str, object]) -> tuple[int, str]:
        """``POST {base_url}{path}`` with a JSON body: status and body."""
        return _request(self.base_url + path, json.dumps(body).encode(), key=self.api_key)


def _request(
    url: str, data: bytes | None = None, timeout: float = 120, key: str | None = None
) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"} if data else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """The server's whole process group ended (workers too): TERM, then KILL."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def serve(
    name: str,
    argv: Sequence[str | Path],
    port: int,
    model: str,
    log_dir: Path,
    health: str = "/health",
    env: dict[str, str] | None = None,
    timeout_s: float = START_TIMEOUT_S,
    key: tuple[str, str] | None = None,
) -> Iterator[Server]:
    """Start ``argv`` (a server listening on ``port``) in a session of its own, wait until
    ``health`` answers 200, and end its process group on exit."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    full_env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [str(a) for a in argv],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            start_new_session=True,
        )
    server = Server(name, f"http://127.0.0.1:{port}/v1", model, log, proc, *(key or (None, None)))
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited {proc.returncode} before it answered "
                    f"{health}:\n{server.log_text()[-3000:]}"
                )
            with contextlib.suppress(OSError):
                if _request(f"http://127.0.0.1:{port}{health}", timeout=5)[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name} did not answer {health} within {timeout_s:.0f} s:"
                    f"\n{server.log_text()[-3000:]}"
                )
            time.sleep(0.3)
        yield server
    finally:
        _stop(proc)


def llama_server(gguf: Path, log_dir: Path) -> contextlib.AbstractContextManager[Server]:
    """llama.cpp's llama-server on ``gguf``, as :data:`SERVED_NAME`, Jinja chat template."""
    port = free_port()
    return serve(
        "llama-server",
        [
            llama_server_binary(),
            "-m",
            gguf,
            "--alias",
            SERVED_NAME,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "-c",
            "2048",
            "-np",
            "1",
            "-t",
            "2",
            "--jinja",
            "--no-webui",
        ],
        port,
        SERVED_NAME,
        log_dir,
    )


def llama_cpp_python_server(gguf: Path, log_dir: Path) -> contextlib.AbstractContextManager[Server]:
    """llama-cpp-python's server on ``gguf``, as :data:`SERVED_NAME`."""
    llama_cpp_python_available()
    port = free_port()
    return serve(
        "llama-cpp-python",
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            gguf,
            "--model_alias",
            SERVED_NAME,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--n_threads",
            "2",
        ],
        port,
        SERVED_NAME,
        log_dir,
        health="/v1/models",
    )


def transformers_server(gemma: Path, log_dir: Path) -> contextlib.AbstractContextManager[Server]:
    """``transformers serve`` pinned to the tiny Gemma's directory (its model name)."""
    exe = transformers_executable()
    port = free_port()
    return serve(
        "transformers-serve",
        [exe, "serve", gemma, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
        port,
        str(gemma),
        log_dir,
    )


def litellm_proxy(upstream: Server, log_dir: Path) -> contextlib.AbstractContextManager[Server]:
    """A litellm proxy serving ``upstream``'s model under the same name; its master key is
    the clients' key (:data:`LITELLM_KEY` in :data:`LITELLM_KEY_ENV`)."""
    exe = litellm_executable()
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    config = log_dir / "litellm.yaml"
    config.write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": upstream.model,
                        "litellm_params": {
                            "model": f"openai/{upstream.model}",
                            "api_base": upstream.base_url,
                            "api_key": "none",
                        },
                    }
                ]
            }
        ),
        encoding="utf-8",
    )  # JSON is YAML
    # the cost map ships with the package: never fetched (nothing outside is reachable)
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_MASTER_KEY": LITELLM_KEY,
    }
    return serve(
        "litellm",
        [
            exe,
            "--config",
            config,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--telemetry",
            "False",
        ],
        port,
        upstream.model,
        log_dir,
        health="/health/liveliness",
        env=env,
        key=(LITELLM_KEY_ENV, LITELLM_KEY),
    )


def main(argv: Sequence[str]) -> int:
    """``build``: everything the real-server tests need, made or installed once."""
    if list(argv) != ["build"]:
        print("usage: python tests/realservers.py build", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT / "src"))
    from seedtune_sandbox.tiny import build_tiny_models

    t0 = time.monotonic()
    gemma = build_tiny_models(ROOT / ".cache" / "tiny-models").gemma
    for what, make in (
        ("tiny GGUF", lambda: tiny_gguf(gemma)),
        ("llama-server", llama_server_binary),
        ("litellm", litellm_executable),
    ):
        try:
            _log(f"{what}: {make()}")
        except Unavailable as e:  # the tests skip with this reason; the build goes on
            _log(f"{what} unavailable: {e}")
    _log(f"ready in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
