"""A loopback stand-in for the Hugging Face Hub endpoints ``huggingface_hub`` calls to
create a repository and commit files to it (point ``HF_ENDPOINT`` at :attr:`HubSim.url`).

The shapes are the Hub's, as ``huggingface_hub`` (2.x) sends and reads them:

- ``POST /api/repos/create`` ``{name, organization, type?, visibility | private}``:
  ``{"url"}``; 409 when it exists (``exist_ok`` passes on it);
- ``POST /api/validate-yaml`` ``{content, repoType}`` (a README's front matter):
  ``{"errors": [], "warnings": []}``, 400 with errors when it is not a YAML mapping;
- ``POST /api/{models|datasets}/{repo}/preupload/{rev}`` ``{files: [{path, sample, size}]}``:
  ``{files: [{path, uploadMode: regular|lfs, shouldIgnore, oid}]}``: LFS for binary
  samples and files over 10 MB, as the Hub decides;
- ``POST /{repo}.git/info/lfs/objects/batch`` (``/datasets/{repo}.git/...`` for datasets),
  git-lfs's batch API: an upload and a verify action per object, the upload a ``PUT`` of
  the bytes to a presigned URL here (no token, as to the Hub's S3), checked against the
  sha256 oid;
- ``POST /api/{models|datasets}/{repo}/commit/{rev}``, NDJSON: a ``header`` line
  ``{summary, description}``, then ``file`` (base64 content) and ``lfsFile`` (oid of an
  uploaded object) lines: ``{commitUrl, commitOid, pullRequestUrl}``.

Every other call needs ``Authorization: Bearer <token>`` (401 otherwise). The LFS protocol is
served, not Xet: clients run with ``HF_HUB_DISABLE_XET=1``. What was created and
committed is in :attr:`HubSim.repos` (``(type, "owner/name")`` -> :class:`Repo`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Files over this size go to LFS whatever they hold (the Hub's threshold).
LFS_THRESHOLD = 10 * 1024 * 1024
_API = re.compile(r"^/api/(models|datasets)/([^/]+/[^/]+)/(preupload|commit)/([^/?]+)")
_BATCH = re.compile(r"^/(datasets/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch$")


@dataclass
class Commit:
    """One commit: its message and the files it wrote (path -> bytes)."""

    summary: str
    description: str
    files: dict[str, bytes]
    oid: str
    lfs: set[str] = field(default_factory=set)  # paths committed as LFS pointers


@dataclass
class Repo:
    """A repository as created, and its commits in order."""

    private: bool
    commits: list[Commit] = field(default_factory=list)

    def files(self) -> dict[str, bytes]:
        """The files at the head (each commit's on top of the ones before)."""
        out: dict[str, bytes] = {}
        for c in self.commits:
            out.update(c.files)
        return out


def _binary(sample: bytes) -> bool:
    """Whether a file's first bytes look binary (as the Hub tells LFS files)."""
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return b"\x00" in sample


class HubSim:
    """The stand-in on ``127.0.0.1`` (port chosen by the OS); use as a context manager."""

    def __init__(self, token: str = "hf_sim_token") -> None:
        self.token = token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.objects: dict[str, bytes] = {}  # LFS objects by sha256 oid
        self.calls: list[tuple[str, str]] = []  # (method, path) of every request
        self._lock = threading.Lock()

    def __enter__(self) -> HubSim:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        """What ``HF_ENDPOINT`` names."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def repo(self, repo_type: str, repo_id: str) -> Repo:
        """The repository ``repo_id`` of ``repo_type`` (model or dataset)."""
        return self.repos[(repo_type, repo_id)]

    # ----------------------------------------------------------------- endpoints

    def create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        repo_type = body.get("type") or "model"
        repo_id = f"{body.get('organization')}/{body.get('name')}"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.url}/{prefix}{repo_id}"
        with self._lock:
            if (repo_type, repo_id) in self.repos:
                return 409, {"error": "You already created this model repo", "url": url}
            private = body.get("visibility") == "private" or body.get("private") is True
            self.repos[(repo_type, repo_id)] = Repo(private=private)
        return 200, {"url": url, "name": repo_id, "id": repo_id}

    def preupload(self, repo_type: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        files = []
        for f in body.get("files") or []:
            sample = base64.b64decode(f.get("sample") or "")
            lfs = int(f.get("size") or 0) > LFS_THRESHOLD or _binary(sample)
            files.append(
                {
                    "path": f["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": None,
                }
            )
        return 200, {"files": files, "commitOid": "0" * 40}

    def batch(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        objects = []
        for o in body.get("objects") or []:
            objects.append(
                {
                    "oid": o["oid"],
                    "size": o["size"],
                    "authenticated": True,
                    "actions": {
                        # presigned, as the Hub's S3 URLs: no Authorization header is sent
                        "upload": {"href": f"{self.url}/lfs/{o['oid']}?sig={self._sign(o['oid'])}"},
                        "verify": {"href": f"{self.url}/lfs/verify", "header": {}},
                    },
                }
            )
        return 200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}

    def _sign(self, oid: str) -> str:
        return hashlib.sha256(f"{self.token}:{oid}".encode()).hexdigest()[:16]

    def upload(self, oid: str, sig: str, data: bytes) -> tuple[int, dict[str, Any]]:
        if sig != self._sign(oid):
            return 403, {"error": "the signature of the upload URL does not match"}
        if hashlib.sha256(data).hexdigest() != oid:
            return 400, {"error": "the uploaded bytes do not match the oid"}
        with self._lock:
            self.objects[oid] = data
        return 200, {}

    def commit(self, repo_type: str, repo_id: str, data: bytes) -> tuple[int, dict[str, Any]]:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            return 404, {"error": "Repository not found"}
        lines = [json.loads(line) for line in data.splitlines() if line.strip()]
        header = next((x["value"] for x in lines if x.get("key") == "header"), None)
        if header is None or not header.get("summary"):
            return 400, {"error": "A commit needs a header line with a summary"}
        files: dict[str, bytes] = {}
        lfs: set[str] = set()
        for line in lines:
            value = line.get("value") or {}
            if line.get("key") == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif line.get("key") == "lfsFile":
                blob = self.objects.get(value.get("oid"))
                if blob is None:
                    return 422, {"error": f"LFS object of {value.get('path')} was never uploaded"}
                files[value["path"]] = blob
                lfs.add(value["path"])
        oid = hashlib.sha1(data).hexdigest()
        with self._lock:
            repo.commits.append(
                Commit(header["summary"], header.get("description") or "", files, oid, lfs)
            )
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.url}/{prefix}{repo_id}/commit/{oid}"
        return 200, {"commitUrl": url, "commitOid": oid, "pullRequestUrl": None, "success": True}


def _handler(hub: HubSim) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            out = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _route(self, method: str) -> None:
            path, _, query = self.path.partition("?")
            data = self._body()
            hub.calls.append((method, path))
            if method == "PUT" and path.startswith("/lfs/"):  # presigned: no token
                sig = query.removeprefix("sig=")
                self._send(*hub.upload(path.removeprefix("/lfs/"), sig, data))
                return
            if self.headers.get("Authorization") != f"Bearer {hub.token}":
                self._send(401, {"error": "Invalid credentials in Authorization header"})
                return
            if path == "/lfs/verify":
                self._send(200, {})
            elif path == "/api/repos/create":
                self._send(*hub.create(json.loads(data)))
            elif path == "/api/validate-yaml":
                self._send(200, {"errors": [], "warnings": []})
            elif m := _BATCH.match(path):
                self._send(*hub.batch(json.loads(data)))
            elif m := _API.match(path):
                kind, repo_id, verb = m.group(1)[:-1], m.group(2), m.group(3)
                if verb == "preupload":
                    self._send(*hub.preupload(kind, json.loads(data)))
                else:
                    self._send(*hub.commit(kind, repo_id, data))
            else:
                self._send(404, {"error": f"no route {method} {path}"})

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            self._route("POST")

        def do_PUT(self) -> None:  # noqa: N802 - http.server API
            self._route("PUT")

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            self._route("GET")

        def log_message(self, *args: object) -> None:
            pass

    return Handler
