"""evaluate: judging against stand-in judges (position bias gives exactly 0.5, a judge that
always prefers the tuned answer gives 1.0, malformed judge output is a recorded reject) and
the verdict arithmetic (both orders, win rate, bootstrap interval), and which questions are
judged (every question source, interleaved)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from seedtune_sandbox.demo import SIM_ENV, sim_config
from seedtune_sandbox.sim import SimServer
from support import composed_params

from seedtune.core.cache import ResponseCache
from seedtune.core.config import Params
from seedtune.evaluation.evaluate import eval_questions, judge_all
from seedtune.evaluation.judging import bootstrap_ci, win_rate
from seedtune.llm.client import LLMClient, LLMOutcome
from seedtune.tasks.judge import combine

QUESTIONS = [f"전세 계약 {i}번째 질문은 무엇인가요?" for i in range(6)]
ANSWERS = {
    "tuned": [f"[튜닝] 전세 계약 전에는 등기부등본을 확인해야 합니다 {i}." for i in range(6)],
    "base": [f"잘 모르겠습니다 {i}." for i in range(6)],
}


def _params(base_url: str) -> Params:
    raw = composed_params(llm={"base_url": base_url, "model": "judge"}, evaluate={"bootstrap": 200})
    return Params.model_validate({k: raw[k] for k in ("llm", "train", "evaluate", "seed")})


def _judge(base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", SIM_ENV["OPENAI_API_KEY"])
    p = _params(base_url)
    client = LLMClient(p.llm, ResponseCache(tmp_path / "cache"), desc="judge")
    return judge_all(p, client, QUESTIONS, ANSWERS)


def test_position_biased_judge_gives_exactly_half(tmp_path, monkeypatch) -> None:
    with SimServer(sim_config(judge="first")) as sim:  # always the first enum value: "A"
        summary, rows = _judge(sim.openai_base_url, tmp_path, monkeypatch)
    assert summary["win_rate"] == 0.5 and summary["ties"] == 6 and summary["rejects"] == 0
    assert summary["win_rate_ci_low"] == summary["win_rate_ci_high"] == 0.5
    assert all(1 <= summary[k] <= 10 for k in ("score_tuned", "score_base"))
    assert all(r["result"] == "tie" for r in rows)


class _PrefersTuned(BaseHTTPRequestHandler):
    """An OpenAI-compatible judge that prefers whichever answer carries the [튜닝] marker."""

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        if "[답변 A]" in prompt:
            a = re.search(r"\[답변 A\]\n(.*?)\n\n\[답변 B\]", prompt, re.S).group(1)
            answer = {"verdict": "A" if "[튜닝]" in a else "B", "reason": "튜닝 답변이 낫다."}
        else:
            answer = {"score": 9 if "[튜닝]" in prompt else 2, "reason": "근거가 있다."}
        out = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5},
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": json.dumps(answer)},
                    }
                ],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def prefers_tuned() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PrefersTuned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_judge_that_prefers_tuned_gives_one(prefers_tuned, tmp_path, monkeypatch) -> None:
    summary, _ = _judge(prefers_tuned, tmp_path, monkeypatch)
    assert summary["win_rate"] == 1.0 and summary["wins"] == 6
    assert (summary["score_tuned"], summary["score_base"]) == (9.0, 2.0)


def test_malformed_judge_output_is_a_reject_not_a_crash(tmp_path, monkeypatch) -> None:
    with SimServer(sim_config(fault_truncated_rate=1.0)) as sim:
        summary, rows = _judge(sim.openai_base_url, tmp_path, monkeypatch)
    assert summary["rejects"] == 6 and summary["n"] == 0 and summary["win_rate"] is None
    assert all(r["result"] is None and "malformed" in r["reject"] for r in rows)


# --------------------------------------------------------------------------- questions


def test_judged_questions_interleave_every_source_then_your_own(tmp_path) -> None:
    """A cap below the eval split's size still judges every source: the eval rows are
    round-robin across ``question_source`` (in file order within each), not the first
    ``max_questions`` of the file (which here would all be the LLM's)."""
    rows = [{"question": f"llm {i}", "question_source": "llm", "split": "eval"} for i in range(20)]
    rows += [{"question": f"옛 행 {i}", "split": "eval"} for i in range(2)]  # counts as llm
    rows += [
        {"question": f"titles {i}", "question_source": "titles", "split": "eval"} for i in range(3)
    ]
    rows += [
        {"question": "titles train", "question_source": "titles", "split": "train"},
        {"question": "user 0", "question_source": "user", "split": "eval"},
    ]
    (tmp_path / "data").mkdir()
    (tmp_path / "data/eval_questions.txt").write_text("titles 1\n내 질문\n", encoding="utf-8")
    raw = composed_params(
        evaluate={"max_questions": 7, "questions_file": "data/eval_questions.txt"}
    )
    p = Params.model_validate({k: raw[k] for k in ("llm", "train", "evaluate", "seed")})
    got = eval_questions(p, rows, tmp_path)
    assert got == [
        "llm 0",
        "titles 0",
        "user 0",
        "llm 1",
        "titles 1",
        "llm 2",
        "titles 2",
        "내 질문",
    ]
    assert eval_questions(p, list(reversed(rows)), tmp_path)[:3] == [
        "옛 행 1",
        "titles 2",
        "user 0",
    ]  # deterministic: sources by name, rows in file order
    p = Params.model_validate(
        {
            **{k: raw[k] for k in ("llm", "train", "seed")},
            "evaluate": {**raw["evaluate"], "max_questions": 50},
        }
    )
    got = eval_questions(p, rows, tmp_path)
    assert len(got) == 26 + 1 and got[-1] == "내 질문"  # every eval row once, then yours
    assert got.count("titles 1") == 1


# --------------------------------------------------------------------------- judging


def _verdicts(first: str, second: str) -> list[LLMOutcome]:
    return [
        LLMOutcome("0:tuned_first", value={"verdict": first, "reason": "r"}),
        LLMOutcome("0:base_first", value={"verdict": second, "reason": "r"}),
    ]


@pytest.mark.parametrize(
    "first,second,result",
    [
        ("A", "B", "win"),
        ("B", "A", "loss"),
        ("A", "A", "tie"),
        ("B", "B", "tie"),
        ("tie", "tie", "tie"),
        ("A", "tie", "tie"),
    ],
)
def test_order_swapped_verdicts(first: str, second: str, result: str) -> None:
    assert combine(_verdicts(first, second), 1)[0]["result"] == result


def test_position_biased_judge_gives_half() -> None:
    results = [combine(_verdicts("A", "A"), 1)[0]["result"] for _ in range(14)]
    assert win_rate(results) == 0.5
    assert win_rate(["win", "win", "tie", "loss"]) == pytest.approx(0.625)
    lo, hi = bootstrap_ci(["win"] * 10 + ["loss"] * 10, 500, seed=0)
    assert lo < 0.5 < hi and 0 <= lo and hi <= 1
    assert win_rate([]) is None


def test_reject_is_recorded_not_crashed() -> None:
    out = combine(
        [
            LLMOutcome("0:tuned_first", reject="invalid answer"),
            LLMOutcome("0:base_first", value={"verdict": "A", "reason": "r"}),
        ],
        1,
    )
    assert out[0]["result"] is None and out[0]["reject"] == "invalid answer"


# --------------------------------------------------------------------------- generation


def test_generation_stops_at_the_end_of_turn_a_tuned_model_writes(tiny_models) -> None:
    """google/gemma-2b-it's generation_config.json stops on <eos> (id 1) alone, and so does
    the tiny model's. A model tuned on the chat template ends its answer with <end_of_turn>
    and, if nothing stops it there, goes on to write the next turns itself; this one is
    scripted to do exactly that."""
    import torch

    from seedtune.evaluation.generation import generate_answers, load_model, stop_token_ids

    model, tok = load_model(str(tiny_models.gemma))
    assert model.generation_config.eos_token_id == tok.eos_token_id  # as the real model
    eot = tok.convert_tokens_to_ids("<end_of_turn>")
    answer, leak = "등기부등본을 확인하세요", "<start_of_turn>user\n또 질문"
    script = (
        tok.encode(answer, add_special_tokens=False)
        + [eot]
        + tok.encode("\n" + leak, add_special_tokens=False)
    )

    class Scripted(torch.nn.Module):  # the LM head of a model that learned to run on
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def forward(self, hidden: torch.Tensor) -> torch.Tensor:
            logits = torch.zeros(*hidden.shape[:-1], len(tok), dtype=hidden.dtype)
            logits[..., script[min(self.calls, len(script) - 1)]] = 10.0
            self.calls += 1
            return logits

    model.lm_head = Scripted()
    assert eot in stop_token_ids(tok, model)
    (got,) = generate_answers(model, tok, ["전세 계약 전 확인할 것은?"], max_new_tokens=40)
    assert got == answer
    model.lm_head = Scripted()
    enc = tok.apply_chat_template(
        [{"role": "user", "content": "질문"}],
        return_tensors="pt",
        add_generation_prompt=True,
        return_dict=True,
    )
    with torch.no_grad():  # what generation did before: the model's own eos alone
        out = model.generate(
            **enc, max_new_tokens=len(script), do_sample=False, pad_token_id=tok.pad_token_id
        )
    assert "또 질문" in tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
