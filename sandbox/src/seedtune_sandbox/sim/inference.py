"""A loopback stand-in for an inference server serving a base model and a LoRA by name.

It answers as vLLM started with ``vllm serve BASE --enable-lora --lora-modules
tuned=models/adapter`` does on the wire: ``GET /v1/models`` lists the base (``root``: its
weights, ``parent``: null) and each LoRA (``root``: its directory, ``parent``: the base),
``POST /v1/chat/completions`` answers by model name, and an unknown name is vLLM's 404
(``The model `x` does not exist.``). Every chat request body is recorded (``requests``),
so tests see what a client sent: names, messages, ``stop``, ``temperature``,
``max_tokens``.

Answers are deterministic text that runs past the end of the turn into a next turn, as a
model does that nothing stops: the server cuts each at the first ``stop`` string it was
sent, and at ``max_tokens`` words (``finish_reason: length``). ``fail_first`` answers the
first N chat requests with 503, for retries.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: What each model writes after its answer when nothing stops it (Gemma's turn markers).
RUN_ON = "<end_of_turn>\n<start_of_turn>user\n다음 질문을 스스로 씁니다<end_of_turn>"


def answer_text(model: str, prompt: str, tuned: str) -> str:
    """The deterministic answer ``model`` writes to ``prompt``, run on past its turn."""
    tag = "[튜닝]" if model == tuned else "[기본]"
    return f"{tag} {prompt.strip()}에 대한 답변입니다. 등기부등본을 먼저 확인하세요.{RUN_ON}"


@dataclass
class InferenceSim:
    """The stand-in, on ``127.0.0.1`` (port chosen by the OS); use as a context manager."""

    base: str = "google/gemma-2b-it"
    loras: dict[str, str] = field(default_factory=lambda: {"tuned": "models/adapter"})
    #: the base each LoRA names as ``parent`` (None: the base itself; another: a mismatch)
    parent: str | None = None
    root: str | None = None  # the base's weights (``--served-model-name`` apart from them)
    api_key: str | None = None
    fail_first: int = 0
    list_models: bool = True  # False: no /v1/models route (404), as some servers
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __enter__(self) -> InferenceSim:
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        """What ``generate.base_url`` names (ends in /v1)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def models(self) -> dict[str, Any]:
        """vLLM's ``GET /v1/models`` body."""
        created = int(time.time())
        data = [
            {
                "id": self.base,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": self.root or self.base,
                "parent": None,
                "max_model_len": 8192,
            }
        ]
        data += [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": path,
                "parent": self.parent or self.base,
                "max_model_len": 8192,
            }
            for name, path in self.loras.items()
        ]
        return {"object": "list", "data": data}

    def chat(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(status, body) of one chat completions request."""
        with self._lock:
            self.requests.append(body)
            n = len(self.requests)
        if n <= self.fail_first:
            return 503, {"object": "error", "message": "busy", "type": "ServiceUnavailable"}
        model = body.get("model")
        if model != self.base and model not in self.loras:
            return 404, {
                "object": "error",
                "message": f"The model `{model}` does not exist.",
                "type": "NotFoundError",
                "param": None,
                "code": 404,
            }
        prompt = str(body["messages"][-1]["content"])
        text = answer_text(model, prompt, next(iter(self.loras), ""))
        for stop in body.get("stop") or []:
            text = text.split(stop, 1)[0]
        words, finish = text.split(" "), "stop"
        limit = int(body.get("max_tokens") or body.get("max_completion_tokens") or 10**6)
        if len(words) > limit:
            text, finish = " ".join(words[:limit]), "length"
        return 200, {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ],
            "usage": {"prompt_tokens": len(prompt), "completion_tokens": len(text.split())},
        }


def _handler(sim: InferenceSim) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, payload: dict[str, Any]) -> None:
            out = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def _authorized(self) -> bool:
            if sim.api_key and self.headers.get("Authorization") != f"Bearer {sim.api_key}":
                self._send(401, {"object": "error", "message": "Unauthorized", "code": 401})
                return False
            return True

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            if not self._authorized():
                return
            if self.path.rstrip("/") == "/v1/models" and sim.list_models:
                self._send(200, sim.models())
            else:
                self._send(404, {"detail": "Not Found"})

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            if not self._authorized():
                return
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"detail": "Not Found"})
                return
            self._send(*sim.chat(body))

        def log_message(self, *args: object) -> None:
            pass

    return Handler
