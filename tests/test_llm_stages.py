"""The queries and synthesize stages as a user runs them (subprocesses), against the
simulator: faults, kill -9, forced reruns, incremental growth, missing keys, leaked keys."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from seedtune.compose import compose_config
from seedtune.demo import SIM_ENV, sim_config
from seedtune.sim import SimServer

ROOT = Path(__file__).resolve().parents[1]


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    for k, v in over.items():
        base[k] = _merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return base


def workspace(tmp: Path, sim: SimServer, llm: dict[str, Any] | None = None,
              seeds: list[str] | None = None, questions: int = 0) -> Path:
    """A directory with params.yaml (real conf/ + simulator endpoints) and stage inputs."""
    params = _merge(compose_config(ROOT / "conf"), {
        "llm": {"base_url": sim.openai_base_url, "model": "sim-gpt", **(llm or {})},
        "queries": {"per_seed": 3}})
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    (tmp / "data").mkdir(exist_ok=True)
    (tmp / "data/seed_words.txt").write_text("\n".join(seeds or ["전세", "청약"]) + "\n")
    rows = [{"question": f"전세 계약 {i}번째 주의할 점은 무엇인가요?",
             "documents": [{"passage": f"전세 계약 전 등기부등본을 확인하세요 {i}.",
                            "link": f"https://x/{i}", "score": 0.9}]} for i in range(questions)]
    (tmp / "data/ranked.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                   for r in rows))
    return tmp


def stage_cmd(stage: str) -> list[str]:
    return [sys.executable, str(ROOT / "stages" / f"{stage}.py")]


def stage_env(with_keys: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SIM_ENV}
    if with_keys:
        env.update(SIM_ENV)
    return env


def run(stage: str, ws: Path, with_keys: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(stage_cmd(stage), cwd=ws, env=stage_env(with_keys), text=True,
                          capture_output=True, timeout=300)


def metrics(ws: Path, stage: str) -> dict[str, Any]:
    return json.loads((ws / "metrics" / f"{stage}.json").read_text())


def ok_calls(sim: SimServer) -> int:
    return sim.stats()["chat"]["ok"]


def test_synthesize_survives_faults_and_accounts_for_every_item(tmp_path: Path) -> None:
    cfg = sim_config(fault_429_rate=0.25, retry_after_s=0.02, fault_5xx_rate=0.1,
                     fault_timeout_rate=0.05, timeout_s=2.0, fault_truncated_rate=0.1,
                     fault_fenced_rate=0.2, seed=7)
    with SimServer(cfg) as sim:
        ws = workspace(tmp_path, sim, {"timeout_s": 0.5, "max_retries": 10}, questions=30)
        proc = run("synthesize", ws)
        faults = sim.stats()["chat"]["faults"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = metrics(ws, "synthesize")
    assert m["answers"] + m["rejects"] == 30
    assert m["answers"] >= 27 and m["retries"] > 0
    assert all(faults[k] for k in ("429", "5xx", "timeout", "truncated", "fenced"))
    rows = [json.loads(x) for x in (ws / "data/instructions.jsonl").read_text().splitlines()]
    rejects = (ws / "data/rejects/synthesize.jsonl").read_text().splitlines()
    assert len(rows) + len(rejects) == 30


def test_forced_rerun_makes_zero_calls_and_needs_no_key(sim, tmp_path: Path) -> None:
    ws = workspace(tmp_path, sim, questions=12)
    assert run("synthesize", ws).returncode == 0
    first = (ws / "data/instructions.jsonl").read_bytes()
    calls = ok_calls(sim)
    proc = run("synthesize", ws, with_keys=False)  # everything is cached: no key needed
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert ok_calls(sim) == calls
    assert (ws / "data/instructions.jsonl").read_bytes() == first
    m = metrics(ws, "synthesize")
    assert (m["calls"], m["cache_hits"], m["cost_usd"]) == (0, 12, 0.0)
    assert m["saved_usd"] > 0


def test_one_new_seed_word_costs_only_its_calls(sim, tmp_path: Path) -> None:
    ws = workspace(tmp_path, sim, seeds=["전세", "청약", "재건축"])
    assert run("queries", ws).returncode == 0
    before = ok_calls(sim)
    (ws / "data/seed_words.txt").write_text("분양권\n전세\n청약\n재건축\n")  # inserted first
    assert run("queries", ws).returncode == 0
    assert ok_calls(sim) - before == 1
    m = metrics(ws, "queries")
    assert (m["calls"], m["cache_hits"], m["seeds"]) == (1, 3, 4)
    seeds = {json.loads(x)["seed"] for x in (ws / "data/questions.jsonl").read_text().split("\n")
             if x}
    assert seeds == {"분양권", "전세", "청약", "재건축"}


def test_missing_key_stops_before_any_request(sim, tmp_path: Path) -> None:
    ws = workspace(tmp_path, sim)
    proc = run("queries", ws, with_keys=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("queries: error:") and "OPENAI_API_KEY" in last
    assert ok_calls(sim) == 0
    assert not (ws / "data/questions.jsonl").exists()


def test_kill_9_mid_stage_then_rerun_repeats_at_most_in_flight_calls(tmp_path: Path) -> None:
    concurrency, n = 4, 40
    with SimServer(sim_config(latency_ms=150)) as sim:
        ws = workspace(tmp_path, sim, {"concurrency": concurrency}, questions=n)
        proc = subprocess.Popen(stage_cmd("synthesize"), cwd=ws, env=stage_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while ok_calls(sim) < 12 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not (ws / "data/instructions.jsonl").exists()  # no partial output
        assert run("synthesize", ws).returncode == 0
        total = ok_calls(sim)
    assert n <= total <= n + concurrency
    assert metrics(ws, "synthesize")["answers"] == n


def test_no_key_value_in_any_file_or_log(sim, tmp_path: Path) -> None:
    ws = workspace(tmp_path, sim, questions=5)
    logs = run("queries", ws).stderr + run("synthesize", ws).stderr
    for value in SIM_ENV.values():
        assert value not in logs
        for path in ws.rglob("*"):
            if path.is_file():
                assert value.encode() not in path.read_bytes(), path


def test_estimate_predicts_the_calls_a_run_makes(sim, tmp_path: Path) -> None:
    ws = workspace(tmp_path, sim, seeds=["전세", "청약", "재건축"], questions=7)

    def estimate() -> dict[str, dict[str, Any]]:
        out = subprocess.run([sys.executable, "-m", "seedtune.cli", "estimate", "--json"],
                             cwd=ws, env=stage_env(), text=True, capture_output=True,
                             check=True).stdout
        return {r["stage"]: r for r in json.loads(out)}

    before = estimate()
    assert (before["queries"]["calls"], before["synthesize"]["calls"]) == (3, 7)
    assert before["queries"]["usd"] > 0 and before["synthesize"]["prompt_tokens"] > 0
    assert ok_calls(sim) == 0  # estimating spends nothing
    assert run("queries", ws).returncode == 0 and run("synthesize", ws).returncode == 0
    assert ok_calls(sim) == 10
    after = estimate()
    assert (after["queries"]["calls"], after["queries"]["cached"]) == (0, 3)
    assert (after["synthesize"]["calls"], after["synthesize"]["cached"]) == (0, 7)
