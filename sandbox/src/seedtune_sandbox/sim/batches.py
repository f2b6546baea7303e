"""OpenAI Files and Batch API emulation: ``/v1/files`` and ``/v1/batches``.

Follows the API reference: a file is uploaded as multipart form data (``purpose=batch``,
``file``) and read back with ``GET /v1/files/{id}/content``; a batch is created from an input
file of JSON Lines (``custom_id``, ``method``, ``url``, ``body``; at most
:data:`MAX_REQUESTS` requests and :data:`MAX_BYTES` bytes, one model per file), moves
``validating -> in_progress -> finalizing -> completed`` over (wall-clock) time and then
names an output file (one line per answered request: ``{"id", "custom_id", "response":
{"status_code", "request_id", "body"}, "error": null}``) and an error file (requests that
failed: a ``response`` with a non-200 ``status_code``, or ``response: null`` with an
``error: {code, message}`` such as ``batch_expired``). ``POST /v1/batches/{id}/cancel``
moves it to ``cancelling`` then ``cancelled``; ``GET /v1/batches`` lists, newest first.

Faults (switchable on :class:`BatchStore`, in-process, or through ``SimConfig``): the first
``expire_first`` batches expire with only ``expire_share`` of their requests answered; the
first ``fail_first`` fail validation; ``error_rate`` of the requests get a 500 (transport-
like, worth another batch), ``reject_rate`` a 400, and the requests whose ``custom_id`` is in
``fail_ids`` a 500 every time; ``refuse_system`` (an HTTP status, 0: off) answers every
request with a system turn as a chat template that refuses it does (llama-server's "System
role not supported"); ``unavailable`` answers the next that many calls to these endpoints
503; ``hold`` keeps every batch in progress until cleared; ``no_list`` answers 404 on
``GET /v1/batches`` (a server, or a stub, that has every route but the list). Answers are those of
:func:`seedtune_sandbox.sim.openai_api.chat_completion`.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from seedtune_sandbox.sim import openai_api

#: Per input file (OpenAI's documented limits).
MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1024 * 1024
ENDPOINTS = ("/v1/chat/completions",)
TERMINAL = ("completed", "failed", "expired", "cancelled")


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def obj(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


@dataclass
class _Batch:
    id: str
    input_file_id: str
    endpoint: str
    created_at: int
    started: float  # monotonic
    metadata: dict[str, Any] | None
    lines: list[dict[str, Any]]
    fate: str = "complete"  # complete | expire | fail
    status: str = "validating"
    errors: list[dict[str, Any]] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed: int = 0
    failed: int = 0
    stamps: dict[str, int] = field(default_factory=dict)

    def obj(self) -> dict[str, Any]:
        total = 0 if self.fate == "fail" else len(self.lines)
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": self.stamps.get("in_progress"),
            "expires_at": self.created_at + 24 * 3600,
            "finalizing_at": self.stamps.get("finalizing"),
            "completed_at": self.stamps.get("completed"),
            "failed_at": self.stamps.get("failed"),
            "expired_at": self.stamps.get("expired"),
            "cancelling_at": self.stamps.get("cancelling"),
            "cancelled_at": self.stamps.get("cancelled"),
            "request_counts": {
                "total": total,
                "completed": self.completed,
                "failed": self.failed,
            },
            "metadata": self.metadata,
        }


class BatchError(Exception):
    """An API error: HTTP status and OpenAI-shaped body."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.payload = openai_api.error_body(message, param=param)


class BatchStore:
    """Files and batches of one simulator, behind one lock; status follows the clock."""

    def __init__(
        self,
        seed: int = 0,
        judge: str = "hash",
        validating_s: float = 0.05,
        in_progress_s: float = 0.2,
        finalizing_s: float = 0.05,
    ) -> None:
        self.lock = threading.Lock()
        self.judge = judge
        self.validating_s, self.in_progress_s, self.finalizing_s = (
            validating_s,
            in_progress_s,
            finalizing_s,
        )
        self.rng = random.Random(f"{seed}:batches")
        # faults, switchable at any time
        self.hold = False
        self.expire_first = 0
        self.expire_share = 0.5
        self.fail_first = 0
        self.error_rate = 0.0
        self.reject_rate = 0.0
        self.fail_ids: set[str] = set()
        self.refuse_system = 0
        self.unavailable = 0
        self.no_list = False
        self.reset()

    def reset(self) -> None:
        """Forget every file and batch (and the counts)."""
        with self.lock:
            self.files: dict[str, _File] = {}
            self.batches: dict[str, _Batch] = {}
            self.submitted: Counter[str] = Counter()  # custom_id -> batches it was sent in
            self.created = 0

    def snapshot(self) -> dict[str, Any]:
        """Counts for tests: batches created, requests submitted, distinct custom ids."""
        with self.lock:
            return {
                "batches": self.created,
                "requests": sum(self.submitted.values()),
                "distinct": len(self.submitted),
                "resent": sum(1 for n in self.submitted.values() if n > 1),
                "status": dict(Counter(self._advance(b).status for b in self.batches.values())),
            }

    # --- files ----------------------------------------------------------------------------
    def upload(self, content_type: str, body: bytes) -> dict[str, Any]:
        """``POST /v1/files`` (multipart: ``purpose``, ``file``)."""
        if "multipart/form-data" not in content_type:
            raise BatchError(400, "Expected multipart/form-data with 'file' and 'purpose'.")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
        )
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
        if "file" not in fields:
            raise BatchError(400, "Missing required parameter: 'file'.", "file")
        purpose = fields.get("purpose", (None, b""))[1].decode("utf-8", "replace")
        if purpose not in ("batch", "fine-tune", "assistants", "vision", "user_data", "evals"):
            raise BatchError(400, f"Invalid value for 'purpose': {purpose!r}.", "purpose")
        filename, data = fields["file"]
        if purpose == "batch" and len(data) > MAX_BYTES:
            raise BatchError(400, f"File is larger than the {MAX_BYTES} bytes allowed for batch.")
        return self._add_file(filename or "upload.jsonl", purpose, data).obj()

    def _add_file(self, filename: str, purpose: str, data: bytes) -> _File:
        f = _File(f"file-{uuid.uuid4().hex[:24]}", filename, purpose, data, int(time.time()))
        with self.lock:
            self.files[f.id] = f
        return f

    def file(self, file_id: str) -> _File:
        """The file or a 404."""
        with self.lock:
            f = self.files.get(file_id)
        if f is None:
            raise BatchError(404, f"No such File object: {file_id}", "id")
        return f

    # --- batches --------------------------------------------------------------------------
    def create(self, body: Any) -> dict[str, Any]:
        """``POST /v1/batches``: validates the request, then the input file (a problem in the
        file makes the batch ``failed``, as the API does, not the request)."""
        if not isinstance(body, dict):
            raise BatchError(400, "We could not parse the JSON body of your request.")
        for key in ("input_file_id", "endpoint", "completion_window"):
            if not body.get(key):
                raise BatchError(400, f"Missing required parameter: '{key}'.", key)
        if body["endpoint"] not in ENDPOINTS:
            raise BatchError(
                400, f"Invalid value for 'endpoint': {body['endpoint']!r}.", "endpoint"
            )
        if body["completion_window"] != "24h":
            raise BatchError(400, "Invalid value for 'completion_window': only '24h'.")
        f = self.file(str(body["input_file_id"]))
        if f.purpose != "batch":
            raise BatchError(400, "The input file must be uploaded with purpose 'batch'.")
        lines, errors = _read_input(f.data, body["endpoint"])
        with self.lock:
            self.created += 1
            n = self.created
            fate = (
                "fail"
                if errors or n <= self.fail_first
                else "expire"
                if n <= self.fail_first + self.expire_first
                else "complete"
            )
            if fate == "fail" and not errors:
                errors = [{"code": "server_error", "message": "Batch failed (simulated)."}]
            batch = _Batch(
                id=f"batch_{uuid.uuid4().hex[:24]}",
                input_file_id=f.id,
                endpoint=body["endpoint"],
                created_at=int(time.time()),
                started=time.monotonic(),
                metadata=body.get("metadata"),
                lines=lines,
                fate=fate,
            )
            batch.errors = errors if fate == "fail" else []
            for line in lines:
                self.submitted[str(line.get("custom_id"))] += 1
            self.batches[batch.id] = batch
            return batch.obj()

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        """``GET /v1/batches/{id}``, status advanced to now."""
        with self.lock:
            return self._advance(self._get(batch_id)).obj()

    def cancel(self, batch_id: str) -> dict[str, Any]:
        """``POST /v1/batches/{id}/cancel``: ``cancelling`` now, ``cancelled`` next look."""
        with self.lock:
            b = self._advance(self._get(batch_id))
            if b.status in TERMINAL:
                raise BatchError(409, f"Cannot cancel a batch with status '{b.status}'.")
            b.status = "cancelling"
            b.stamps["cancelling"] = int(time.time())
            return b.obj()

    def list(self, query: str) -> dict[str, Any]:
        """``GET /v1/batches?limit=&after=``, newest first."""
        q = parse_qs(query)
        limit = max(1, min(100, int((q.get("limit") or ["20"])[0])))
        after = (q.get("after") or [None])[0]
        with self.lock:
            ordered = list(reversed(self.batches.values()))
            if after is not None:
                ids = [b.id for b in ordered]
                ordered = ordered[ids.index(after) + 1 :] if after in ids else []
            page = [self._advance(b).obj() for b in ordered[:limit]]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(ordered) > limit,
        }

    def _get(self, batch_id: str) -> _Batch:
        b = self.batches.get(batch_id)
        if b is None:
            raise BatchError(404, f"No batch found with id '{batch_id}'.", "batch_id")
        return b

    def _advance(self, b: _Batch) -> _Batch:
        """Move ``b`` along by the time passed since it was created (under the lock)."""
        if b.status in TERMINAL:
            return b
        now = int(time.time())
        if b.status == "cancelling":
            self._finish(b, "cancelled", answered=0)
            return b
        age = time.monotonic() - b.started
        if b.fate == "fail":
            if age >= self.validating_s:
                b.status = "failed"
                b.stamps["failed"] = now
            return b
        if age >= self.validating_s and b.status == "validating":
            b.status = "in_progress"
            b.stamps["in_progress"] = now
        if self.hold:
            return b
        if age >= self.validating_s + self.in_progress_s and b.status == "in_progress":
            if b.fate == "expire":
                self._finish(b, "expired", answered=int(len(b.lines) * self.expire_share))
                return b
            b.status = "finalizing"
            b.stamps["finalizing"] = now
        if age >= self.validating_s + self.in_progress_s + self.finalizing_s:
            if b.status == "finalizing":
                self._finish(b, "completed", answered=len(b.lines))
        return b

    def _finish(self, b: _Batch, status: str, answered: int) -> None:
        """Answer the first ``answered`` requests; the rest (if the batch stopped early) go
        to the error file as ``batch_expired`` / ``batch_cancelled``."""
        out, err = [], []
        for i, line in enumerate(b.lines):
            rid = f"batch_req_{uuid.uuid4().hex[:24]}"
            if i >= answered:
                code = "batch_expired" if status == "expired" else "batch_cancelled"
                err.append(
                    {
                        "id": rid,
                        "custom_id": line.get("custom_id"),
                        "response": None,
                        "error": {
                            "code": code,
                            "message": "This request could not be executed before the "
                            "completion window expired."
                            if status == "expired"
                            else "This request was cancelled.",
                        },
                    }
                )
                continue
            code, payload = self._answer(line)
            row = {
                "id": rid,
                "custom_id": line.get("custom_id"),
                "response": {
                    "status_code": code,
                    "request_id": uuid.uuid4().hex,
                    "body": payload,
                },
                "error": None,
            }
            (out if code == 200 else err).append(row)
        b.completed, b.failed = len(out), len(err)
        if out:
            b.output_file_id = self._add_unlocked(f"{b.id}_output.jsonl", out).id
        if err:
            b.error_file_id = self._add_unlocked(f"{b.id}_error.jsonl", err).id
        b.status = status
        b.stamps[status] = int(time.time())

    def _answer(self, line: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        body = line.get("body")
        u = self.rng.random()
        if line.get("custom_id") in self.fail_ids:
            return 500, openai_api.server_error_body(500)
        if self.refuse_system and any(
            isinstance(m, dict) and m.get("role") == "system"
            for m in (body.get("messages") or [] if isinstance(body, dict) else [])
        ):
            return self.refuse_system, {
                "error": {
                    "code": self.refuse_system,
                    "message": "System role not supported",
                    "type": "server_error",
                }
            }
        if u < self.error_rate:
            return 500, openai_api.server_error_body(500)
        if u < self.error_rate + self.reject_rate:
            return 400, openai_api.error_body("Invalid request (simulated).", code="invalid_value")
        try:
            return 200, openai_api.chat_completion(body, judge=self.judge)
        except openai_api.ChatError as exc:
            return exc.status, exc.payload

    def _add_unlocked(self, name: str, rows: list[dict[str, Any]]) -> _File:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
        f = _File(f"file-{uuid.uuid4().hex[:24]}", name, "batch_output", data, int(time.time()))
        self.files[f.id] = f
        return f


def _read_input(data: bytes, endpoint: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The input file's requests, and what is wrong with it (``errors.data`` items)."""
    lines: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    models: set[str] = set()

    def bad(code: str, message: str, line: int | None = None) -> None:
        problems.append({"code": code, "message": message, "param": None, "line": line})

    if len(data) > MAX_BYTES:
        bad("file_too_large", f"The input file is larger than {MAX_BYTES} bytes.")
    for n, raw in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError:
            bad("invalid_json_line", "This line is not parseable as valid JSON.", n)
            continue
        cid = row.get("custom_id") if isinstance(row, dict) else None
        if not isinstance(cid, str) or cid in seen:
            bad(
                "duplicate_custom_id",
                "The custom_id for this request is missing or a duplicate.",
                n,
            )
            continue
        if row.get("method") != "POST" or row.get("url") != endpoint:
            bad("mismatched_endpoint", f"The url of this request does not match {endpoint}.", n)
            continue
        seen.add(cid)
        if isinstance(row.get("body"), dict):
            models.add(str(row["body"].get("model")))
        lines.append(row)
    if len(lines) > MAX_REQUESTS:
        bad("too_many_requests", f"The input file has more than {MAX_REQUESTS} requests.")
    if len(models) > 1:
        bad("mismatched_model", "Every request of a batch must use the same model.")
    if not lines and not problems:
        bad("empty_file", "The input file has no requests.")
    return lines, problems


def handle(
    store: BatchStore, method: str, path: str, query: str, content_type: str, body: bytes
) -> tuple[int, Any, str]:
    """Route one ``/v1/files...`` or ``/v1/batches...`` request: (status, payload, type);
    a ``bytes`` payload is a file's content."""
    parts = [p for p in path.split("/") if p][1:]  # drop "v1"
    with store.lock:
        down = store.unavailable > 0
        store.unavailable -= down
    if down:
        return 503, openai_api.server_error_body(503), "application/json"
    try:
        if parts == ["files"] and method == "POST":
            return 200, store.upload(content_type, body), "application/json"
        if len(parts) == 2 and parts[0] == "files" and method == "GET":
            return 200, store.file(parts[1]).obj(), "application/json"
        if len(parts) == 3 and parts[0] == "files" and parts[2] == "content" and method == "GET":
            return 200, store.file(parts[1]).data, "application/octet-stream"
        if parts == ["batches"] and method == "POST":
            try:
                req = json.loads(body.decode("utf-8")) if body else None
            except (UnicodeDecodeError, json.JSONDecodeError):
                req = None
            return 200, store.create(req), "application/json"
        if parts == ["batches"] and method == "GET" and not store.no_list:
            return 200, store.list(query), "application/json"
        if len(parts) == 2 and parts[0] == "batches" and method == "GET":
            return 200, store.retrieve(parts[1]), "application/json"
        if len(parts) == 3 and parts[0] == "batches" and parts[2] == "cancel" and method == "POST":
            return 200, store.cancel(parts[1]), "application/json"
    except BatchError as exc:
        return exc.status, exc.payload, "application/json"
    return 404, openai_api.error_body(f"Invalid URL ({method} {path})"), "application/json"
