"""Answers from an inference server (``generate.base_url``): against a stand-in serving the
base and the adapter by name as vLLM does (seedtune_sandbox.sim.inference), evaluate asks
each model by its name with the question as one user turn, greedy, stopping at the end of
turn, and records which generator answered; it refuses a server whose base is not the
adapter's, retries a busy one, and stops with one line on an outage. `seedtune serve`
prints the vLLM command for the adapter dvc made."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from seedtune_sandbox.demo import SIM_ENV, sim_config
from seedtune_sandbox.sim import SimServer
from seedtune_sandbox.sim.inference import RUN_ON, InferenceSim
from support import ROOT, Workspace, last_line

from seedtune.core.errors import ConfigError, ServiceError
from seedtune.evaluation.remote import GenerateConfig, answer_via_server, generate_settings

BASE = "google/gemma-2b-it"
QUESTIONS = ["전세 계약 전에 무엇을 확인하나요?", "보증금은 어떻게 돌려받나요?"]


def make_adapter(path: Path, base: str = BASE, r: int = 4) -> Path:
    """An adapter directory as train writes it, enough for a server to be asked about it:
    its config (base, rank), the base's chat template, weights bytes."""
    path.mkdir(parents=True, exist_ok=True)
    config = {"base_model_name_or_path": base, "r": r, "lora_alpha": 32, "peft_type": "LORA"}
    (path / "adapter_config.json").write_text(json.dumps(config), encoding="utf-8")
    template = ROOT / ".cache/tiny-models/gemma/chat_template.jinja"
    if template.is_file():
        shutil.copy(template, path / "chat_template.jinja")
    else:  # the turn markers are what matters here
        (path / "chat_template.jinja").write_text(
            "{% for m in messages %}<start_of_turn>{{ m.role }}\n{{ m.content }}<end_of_turn>\n"
            "{% endfor %}<start_of_turn>model\n",
            encoding="utf-8",
        )
    (path / "adapter_model.safetensors").write_bytes(b"weights")
    return path


def _ask(sim: InferenceSim, adapter: Path, **gen: object) -> dict[str, list[str]]:
    cfg = GenerateConfig(**{"base_url": sim.base_url, "max_retries": 2, **gen})  # type: ignore[arg-type]
    return answer_via_server(cfg, BASE, "main", QUESTIONS, adapter, 64).answers


def test_each_model_is_asked_by_name_greedy_and_stopping_at_end_of_turn(tmp_path: Path) -> None:
    adapter = make_adapter(tmp_path / "adapter")
    with InferenceSim() as sim:
        answers = _ask(sim, adapter)
    assert [r["model"] for r in sim.requests] == [BASE] * 2 + ["tuned"] * 2
    for r in sim.requests:
        assert r["messages"] in ([{"role": "user", "content": q}] for q in QUESTIONS)
        assert r["temperature"] == 0 and r["max_tokens"] == 64
        assert r["stop"] == ["<end_of_turn>"]  # Gemma's end of turn, not only its eos
        assert "response_format" not in r
    assert all(a.startswith("[기본]") for a in answers["base"])
    assert all(a.startswith("[튜닝]") for a in answers["tuned"])
    assert not any("<start_of_turn>" in a or "다음 질문" in a for v in answers.values() for a in v)
    assert QUESTIONS[0] in answers["tuned"][0]


def test_a_server_on_another_base_is_refused_in_one_line(tmp_path: Path) -> None:
    adapter = make_adapter(tmp_path / "adapter")
    with InferenceSim(base="google/gemma-2-2b-it") as sim:  # the LoRA on another base
        with pytest.raises(ConfigError) as err:
            _ask(sim, adapter, base_model="google/gemma-2-2b-it")
    msg = str(err.value)
    assert "\n" not in msg and "google/gemma-2-2b-it" in msg and "adapter_config.json" in msg
    assert sim.requests == []  # refused before any answer was asked for


def test_an_alias_of_the_base_passes_by_its_weights(tmp_path: Path) -> None:
    """``--served-model-name gemma`` for the base: its ``root`` is what the adapter names."""
    adapter = make_adapter(tmp_path / "adapter")
    with InferenceSim(base="gemma", root=BASE) as sim:
        answers = _ask(sim, adapter, base_model="gemma")
    assert {r["model"] for r in sim.requests} == {"gemma", "tuned"}
    assert len(answers["base"]) == 2


def test_a_busy_server_is_retried(tmp_path: Path) -> None:
    adapter = make_adapter(tmp_path / "adapter")
    with InferenceSim(fail_first=2) as sim:
        answers = _ask(sim, adapter, concurrency=1)
    assert len(sim.requests) == 6 and len(answers["tuned"]) == 2


def test_an_outage_is_one_line(tmp_path: Path) -> None:
    adapter = make_adapter(tmp_path / "adapter")
    with InferenceSim(fail_first=10**6) as sim:
        with pytest.raises(ServiceError) as err:
            _ask(sim, adapter, max_retries=1)
    assert "\n" not in str(err.value) and "503" in str(err.value)


def test_an_unknown_tuned_name_names_the_setting(tmp_path: Path) -> None:
    adapter = make_adapter(tmp_path / "adapter")
    with InferenceSim(loras={"other": "x"}, list_models=False) as sim:
        with pytest.raises(ConfigError) as err:
            _ask(sim, adapter)
    assert "generate.tuned_model='tuned'" in str(err.value)


def test_generate_settings_are_machine_settings(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SEEDTUNE_GENERATE_BASE_URL", "http://127.0.0.1:9/v1")
    assert generate_settings(tmp_path).base_url == "http://127.0.0.1:9/v1"
    assert generate_settings(tmp_path).tuned_model == "tuned"
    monkeypatch.setenv("SEEDTUNE_GENERATE_API_KEY_ENV", "sk-abc")
    with pytest.raises(ConfigError, match="SEEDTUNE_GENERATE_API_KEY_ENV: generate.api_key_env"):
        generate_settings(tmp_path)


def _eval_workspace(ws: Workspace, judge: str, server: str) -> Workspace:
    ws.params(
        llm={"base_url": judge, "max_retries": 1},
        evaluate={"max_new_tokens": 32, "bootstrap": 50},
        generate={"base_url": server, "max_retries": 1},
    )
    rows = [
        {"question": q, "answer": "등기부등본을 확인하세요.", "split": "eval"} for q in QUESTIONS
    ]
    ws.write("data/instructions.jsonl", rows)
    ws.write("data/eval_questions.txt", "")
    make_adapter(ws.path / "models/adapter")
    return ws


def test_evaluate_stage_through_a_server_records_the_generator(workspace: Workspace) -> None:
    """No model is loaded here: the server answers, the judge judges, and the metrics and
    the report say the answers came from the server, by which names."""
    with SimServer(sim_config()) as judge, InferenceSim() as server:
        ws = _eval_workspace(workspace, judge.openai_base_url, server.base_url)
        proc = ws.run("evaluate", keys=SIM_ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = ws.metrics("evaluate")
    assert metrics["generator"] == "server" and metrics["generator_base"] == BASE
    assert metrics["generator_tuned"] == "tuned" and metrics["generator_base_checked"] is True
    assert metrics["n"] == 2
    assert "| generator | server |" in (ws.path / "reports/evaluation.md").read_text()
    answers = ws.rows("reports/answers.jsonl")
    assert all(r["tuned"].startswith("[튜닝]") and RUN_ON not in r["tuned"] for r in answers)
    assert len(server.requests) == 4


def test_evaluate_stage_refuses_a_server_on_another_base(workspace: Workspace) -> None:
    with SimServer(sim_config()) as judge, InferenceSim(parent="google/gemma-7b-it") as server:
        ws = _eval_workspace(workspace, judge.openai_base_url, server.base_url)
        proc = ws.run("evaluate", keys=SIM_ENV)
    assert proc.returncode != 0
    assert "google/gemma-7b-it" in last_line(proc.stderr)
    assert "adapter_config.json" in last_line(proc.stderr)


def _seedtune(ws: Workspace, *argv: str, keys: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "seedtune.cli", *argv],
        cwd=ws.path,
        env=ws.env(keys),
        text=True,
        capture_output=True,
        timeout=300,
    )


def test_serve_prints_the_vllm_command_for_the_adapter(workspace: Workspace) -> None:
    workspace.params()
    make_adapter(workspace.path / "models/adapter", r=16)
    proc = _seedtune(workspace, "serve", "--print")
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith(f"vllm serve {BASE} --enable-lora")
    assert "--lora-modules tuned=models/adapter" in line and "--max-lora-rank 16" in line


def test_serve_refuses_without_an_adapter(workspace: Workspace) -> None:
    workspace.params()
    proc = _seedtune(workspace, "serve", "--print")
    assert proc.returncode != 0 and "adapter_config.json" in last_line(proc.stderr)


def test_ask_answers_from_the_server(workspace: Workspace) -> None:
    workspace.params()
    make_adapter(workspace.path / "models/adapter")
    with InferenceSim() as server:
        keys = {"SEEDTUNE_GENERATE_BASE_URL": server.base_url}
        proc = _seedtune(workspace, "ask", QUESTIONS[0], keys=keys)
        base = _seedtune(workspace, "ask", QUESTIONS[0], "--adapter", "none", keys=keys)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith("[튜닝]") and "<end_of_turn>" not in proc.stdout
    assert base.stdout.strip().startswith("[기본]")
    assert [r["model"] for r in server.requests] == ["tuned", BASE]
    assert server.requests[0]["stop"] == ["<end_of_turn>"]
