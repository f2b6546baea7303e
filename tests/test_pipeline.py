"""End-to-end: the whole DAG with `dvc repro` in a temporary git repo, against the loopback
simulators and tiny models; then the DVC behaviours users rely on (no-op rerun, experiments,
conf edits, sharing through a remote)."""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from seedtune_sandbox.demo import (
    SIM_ENV,
    demo_params,
    local_config,
    prepare_workspace,
    sim_config,
    tool_env,
)

pytestmark = pytest.mark.slow

SEEDS = ["전세", "청약", "재건축", "양도소득세", "등기부등본"]


def dvc(
    ws: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["dvc", *args],
        cwd=ws,
        env=tool_env({**SIM_ENV, **(env or {})}),
        text=True,
        capture_output=True,
        timeout=900,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"dvc {' '.join(args)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def ran(proc: subprocess.CompletedProcess[str]) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", proc.stdout + proc.stderr))


def git(ws: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args],
        cwd=ws,
        check=True,
        text=True,
        capture_output=True,
    ).stdout


@pytest.fixture(scope="module")
def sim_server() -> Iterator[object]:
    from seedtune_sandbox.sim import SimServer

    with SimServer(sim_config()) as server:
        yield server


@pytest.fixture(scope="module")
def first_repro(
    tmp_path_factory: pytest.TempPathFactory, root: Path, tiny_models, sim_server
) -> tuple[Path, subprocess.CompletedProcess[str], str, str]:
    """One ``dvc repro`` of the whole DAG, committed: (workspace, the repro, the baseline
    commit, the machine settings then), which :func:`e2e` brings each test back to."""
    # endpoints and the models: map only through conf/local (machine settings); the sizes
    # as committed edits of the tracked conf/, as a user would make them
    sizes = {
        **demo_params(),
        "queries.per_seed": 3,
        "train.max_steps": 6,
        "train.eval_steps": 3,
        "train.logging_steps": 1,
        "evaluate.max_new_tokens": 16,
        "evaluate.max_questions": 4,
    }
    ws = prepare_workspace(
        root,
        tmp_path_factory.mktemp("e2e") / "ws",
        local_config(sim_server.url, tiny_models, sim_server.page_origins.values()),
        seeds=SEEDS,
        params=sizes,
    )
    proc = dvc(ws, "repro")
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", "baseline")
    local = (ws / "conf/local/default.yaml").read_text(encoding="utf-8")
    return ws, proc, git(ws, "rev-parse", "HEAD").strip(), local


@pytest.fixture()
def e2e(first_repro) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The workspace exactly as the first repro left it, whatever an earlier test did:
    its commit, its machine settings (conf/local, git-ignored) and its outputs."""
    ws, proc, baseline, local = first_repro
    git(ws, "reset", "-q", "--hard", baseline)
    git(ws, "clean", "-fdq")  # untracked files; DVC outputs are ignored and stay
    (ws / "conf/local/default.yaml").write_text(local, encoding="utf-8")
    dvc(ws, "checkout", "--force")
    return ws, proc


def test_whole_dag_runs_with_dvc_repro(e2e, tiny_models) -> None:
    ws, proc = e2e
    assert ran(proc) == {
        "compose",
        "queries",
        "search",
        "crawl",
        "rank",
        "synthesize",
        "card",
        "train",
        "evaluate",
        "summary",
    }
    # grounded on the simulator's pages, and a dataset card beside the instructions
    assert json.loads((ws / "metrics/crawl.json").read_text())["with_text"] > 0
    assert "license: other" in (ws / "data/instructions.md").read_text(encoding="utf-8")
    assert (ws / "data/instructions.html").stat().st_size > 0
    questions = [json.loads(x) for x in (ws / "data/questions.jsonl").read_text().splitlines()]
    assert {q["seed"] for q in questions} == set(SEEDS)
    ranked = [json.loads(x) for x in (ws / "data/ranked.jsonl").read_text().splitlines()]
    assert len(ranked) == len(questions)
    for row in ranked:
        # rank.prefer_pages: page passages first, then snippets, each group best first
        kinds = [d["kind"] for d in row["documents"]]
        assert kinds == sorted(kinds)  # "page" < "snippet"
        for kind in ("page", "snippet"):
            scores = [d["score"] for d in row["documents"] if d["kind"] == kind]
            assert scores == sorted(scores, reverse=True)
        assert all(
            "<b>" not in d["passage"] and "&quot;" not in d["passage"] for d in row["documents"]
        )
    inst = [json.loads(x) for x in (ws / "data/instructions.jsonl").read_text().splitlines()]
    assert {r["split"] for r in inst} == {"train", "eval"}
    assert (ws / "models/adapter/adapter_config.json").is_file()
    assert (ws / "models/adapter/adapter_model.safetensors").is_file()
    assert "tuned vs base" in (ws / "reports/evaluation.md").read_text()
    # the headline alone in `dvc metrics show`; the stages' accounting in their own files
    shown = json.dumps(json.loads(dvc(ws, "metrics", "show", "--json").stdout))
    for key in ("win_rate", "win_rate_ci_low", "score_tuned", "eval_loss", "cost_usd"):
        assert f'"{key}"' in shown, key
    assert '"mean_top_score"' not in shown and '"train_loss"' not in shown
    summary = json.loads((ws / "metrics/summary.json").read_text())
    assert 0.0 <= summary["win_rate"] <= 1.0 and summary["cost_usd"] > 0
    assert json.loads((ws / "metrics/rank.json").read_text())["mean_kept"] > 0
    ev = json.loads((ws / "metrics/evaluate.json").read_text())
    assert (ws / "metrics/train/plots/metrics/train/loss.tsv").is_file()
    plots = dvc(ws, "plots", "show", "--json").stdout
    assert "Loss per step" in plots and "Judge scores" in plots
    # the report shows the reference answer beside both models'
    assert "| reference | tuned | base |" in (ws / "reports/evaluation.md").read_text()
    # nothing machine-specific in any tracked file or in the adapter others will pull
    for rel in ("params.yaml", "params.conf.yaml", "dvc.lock"):
        text = (ws / rel).read_text()
        for machine in (str(tiny_models.gemma), str(tiny_models.e5), "127.0.0.1", "base_url"):
            assert machine not in text, (rel, machine)
    adapter = json.loads((ws / "models/adapter/adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "google/gemma-2b-it"
    # the estimate prices what evaluate sent: per question two verdicts and two scores
    est = subprocess.run(
        ["seedtune", "estimate", "--json"],
        cwd=ws,
        env=tool_env({}),
        text=True,
        capture_output=True,
        timeout=120,
        check=True,
    ).stdout
    judged = {r["stage"]: r for r in json.loads(est)["llm"]}["evaluate"]
    assert judged["requests"] == 4 * (ev["n"] + ev["rejects"])


def _ask(ws: Path, *args: str, keys: bool = True) -> subprocess.CompletedProcess[str]:
    env = tool_env(SIM_ENV if keys else {})
    if not keys:
        for name in SIM_ENV:
            env.pop(name, None)
    return subprocess.run(
        [
            "seedtune",
            "ask",
            "전세 계약 시 주의할 점은 무엇인가요?",
            "--max-new-tokens",
            "12",
            *args,
        ],
        cwd=ws,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )


def test_ask_answers_with_the_tuned_adapter(e2e, sim_server) -> None:
    ws, _ = e2e
    proc = _ask(ws)
    assert proc.returncode == 0, proc.stderr[-2000:]
    searches = sim_server.stats()["search"]["ok"]
    pages = sim_server.stats()["pages"]["requests"]
    proc = _ask(ws, "--rag")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sim_server.stats()["search"]["ok"] > searches  # --rag searched
    assert sim_server.stats()["pages"]["requests"] > pages  # and read pages, as crawl does
    assert "출처 (sources):" in proc.stdout and "[1]" in proc.stdout
    proc = _ask(ws, "--rag", keys=False)
    assert proc.returncode == 2
    assert "NAVER_CLIENT_ID" in proc.stderr.strip().splitlines()[-1]


def test_second_repro_runs_nothing(e2e) -> None:
    ws, _ = e2e
    proc = dvc(ws, "repro")
    assert ran(proc) == set()
    assert "Data and pipelines are up to date" in dvc(ws, "status").stdout


def test_no_secret_reaches_any_file(e2e) -> None:
    ws, _ = e2e
    for path in ws.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            blob = path.read_bytes()
            for value in SIM_ENV.values():
                assert value.encode() not in blob, f"{value} leaked into {path}"


def test_exp_run_reruns_only_train_and_evaluate(e2e) -> None:
    ws, _ = e2e
    proc = dvc(ws, "exp", "run", "-S", "train.lora.r=8")
    assert {"train", "evaluate"} <= ran(proc) <= {"compose", "train", "evaluate", "summary"}
    params = yaml.safe_load((ws / "params.yaml").read_text())
    assert params["train"]["lora"]["r"] == 8
    adapter = json.loads((ws / "models/adapter/adapter_config.json").read_text())
    assert adapter["r"] == 8
    assert "train.lora.r" in dvc(ws, "exp", "show", "--csv").stdout


def test_an_unknown_key_fails_the_experiment(e2e) -> None:
    ws, _ = e2e
    proc = dvc(ws, "exp", "run", "-S", "+train.lora.rank=8", check=False)
    assert proc.returncode != 0
    assert "train.lora.rank: unknown key" in proc.stdout + proc.stderr


def test_editing_lora_conf_reruns_only_compose_train_evaluate(e2e) -> None:
    ws, _ = e2e
    lora = ws / "conf/lora/tutorial.yaml"
    lora.write_text(lora.read_text().replace("alpha: 32", "alpha: 16"))
    proc = dvc(ws, "repro")
    assert ran(proc) == {"compose", "train", "evaluate", "summary"}
    assert yaml.safe_load((ws / "params.yaml").read_text())["train"]["lora"]["alpha"] == 16
    adapter = json.loads((ws / "models/adapter/adapter_config.json").read_text())
    assert adapter["lora_alpha"] == 16


def _r(ws: Path) -> int:
    return yaml.safe_load((ws / "params.yaml").read_text())["train"]["lora"]["r"]


def test_an_applied_experiment_survives_repro_exp_run_and_conf_edits(e2e) -> None:
    ws, _ = e2e
    dvc(ws, "exp", "run", "-S", "train.lora.r=8", "-n", "r8")
    git(ws, "checkout", "--", ".")
    dvc(ws, "checkout", "--force")
    assert _r(ws) == 4
    dvc(ws, "exp", "apply", "r8")
    assert _r(ws) == 8
    assert ran(dvc(ws, "repro")) == set() and _r(ws) == 8  # nothing stale, nothing undone
    assert ran(dvc(ws, "exp", "run")) == set() and _r(ws) == 8
    # a conf/ edit would undo r=8: compose stops, names the key and the command
    lora = ws / "conf/lora/tutorial.yaml"
    lora.write_text(lora.read_text().replace("dropout: 0.0", "dropout: 0.05"))
    proc = dvc(ws, "repro", check=False)
    assert proc.returncode != 0 and _r(ws) == 8
    assert "train.lora.r" in proc.stderr and "seedtune compose --adopt" in proc.stderr
    subprocess.run(
        ["seedtune", "compose", "--adopt"], cwd=ws, env=tool_env(), check=True, capture_output=True
    )
    assert "r: 8" in lora.read_text()
    proc = dvc(ws, "repro")
    assert ran(proc) == {"compose", "train", "evaluate", "summary"}
    lora_params = yaml.safe_load((ws / "params.yaml").read_text())["train"]["lora"]
    assert (lora_params["r"], lora_params["dropout"]) == (8, 0.05)


def test_changing_a_machine_setting_makes_nothing_stale(e2e) -> None:
    ws, _ = e2e
    local = ws / "conf/local/default.yaml"
    cfg = yaml.safe_load(local.read_text())
    cfg["llm"]["concurrency"] = 2
    cfg.setdefault("evaluate", {})["batch_size"] = 2
    cfg["rank"]["batch_size"] = 8
    local.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    env = {"SEEDTUNE_LLM_TIMEOUT_S": "30"}
    assert "up to date" in dvc(ws, "status", env=env).stdout
    assert ran(dvc(ws, "repro", env=env)) == set()
    assert not git(ws, "status", "--porcelain")  # nothing tracked changed


def test_endpoint_outage_fails_the_stage_keeps_the_lock_and_pays_nothing_twice(
    e2e, sim_server
) -> None:
    """The case users hit: a new seed word while the LLM endpoint is down used to be
    recorded as a reject, exit 0 and update dvc.lock, losing the seed's questions."""
    ws, _ = e2e
    seeds = ws / "data/seed_words.txt"
    original = seeds.read_text(encoding="utf-8")
    seeds.write_text(original + "분양권\n", encoding="utf-8")
    local = ws / "conf/local/default.yaml"
    cfg = yaml.safe_load(local.read_text())
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    good = dict(cfg["llm"])
    lock = yaml.safe_load((ws / "dvc.lock").read_text())["stages"]["queries"]
    prompts = json.loads((ws / "metrics/queries.json").read_text())["titles"]["prompts"]

    def machine(llm: dict) -> None:  # a machine setting: no recompose, nothing stale
        cfg["llm"] = llm
        local.write_text(yaml.safe_dump(cfg, allow_unicode=True))

    machine({**good, "base_url": down, "max_retries": 1})
    proc = dvc(ws, "repro", "queries", check=False)
    assert proc.returncode != 0
    assert f"queries: error: {down}/chat/completions: ClientConnectorError" in proc.stderr
    assert yaml.safe_load((ws / "dvc.lock").read_text())["stages"]["queries"] == lock
    assert not (ws / "data/questions.jsonl").exists()  # no output that looks complete

    machine(good)
    calls = sim_server.stats()["chat"]["ok"]
    dvc(ws, "repro", "queries")
    # only the new seed word is paid: its questions, and its forum titles' prompts
    new = json.loads((ws / "metrics/queries.json").read_text())["titles"]["prompts"] - prompts
    assert new >= 1 and sim_server.stats()["chat"]["ok"] - calls == 1 + new
    questions = [json.loads(x) for x in (ws / "data/questions.jsonl").read_text().splitlines()]
    assert "분양권" in {q["seed"] for q in questions}
    # the seed word taken back: its answers stay cached, nothing is asked again
    seeds.write_text(original, encoding="utf-8")
    dvc(ws, "repro")
    assert sim_server.stats()["chat"]["ok"] - calls == 1 + new


def _tracked_outputs(ws: Path) -> list[Path]:
    files = []
    for rel in ("data", "models/adapter", "metrics", "reports"):
        files += [p for p in (ws / rel).rglob("*") if p.is_file() and p.name != ".gitignore"]
    return files


def _roundtrip(ws: Path, tmp: Path, remote: str, extra_env: dict[str, str] | None = None) -> None:
    env_extra = extra_env or {}
    os.environ.update(env_extra)  # dvc subprocesses inherit via tool_env
    try:
        dvc(ws, "push", "-r", remote)
        clone = tmp / f"clone-{remote}"
        subprocess.run(["git", "clone", "-q", str(ws), str(clone)], check=True)
        dvc(clone, "pull", "-r", remote)
        assert "Data and pipelines are up to date" in dvc(clone, "status").stdout
        originals = _tracked_outputs(ws)
        assert len(originals) > 10
        for path in originals:
            twin = clone / path.relative_to(ws)
            assert twin.is_file(), f"missing in clone: {path.relative_to(ws)}"
            assert filecmp.cmp(path, twin, shallow=False), path.relative_to(ws)
    finally:
        for key in env_extra:
            os.environ.pop(key, None)


def test_push_clone_pull_local_remote(e2e, tmp_path: Path) -> None:
    ws, _ = e2e
    dvc(ws, "remote", "add", "-f", "localremote", str(tmp_path / "remote"))
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", "remote", "--allow-empty")
    _roundtrip(ws, tmp_path, "localremote")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.s3
def test_push_clone_pull_s3_remote(e2e, tmp_path: Path) -> None:
    pytest.importorskip("dvc_s3")
    pytest.importorskip("moto")
    boto3 = pytest.importorskip("boto3")
    ws, _ = e2e
    port = _free_port()
    creds = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        boto3.client(
            "s3",
            endpoint_url=url,
            **{k.lower(): v for k, v in creds.items() if k != "AWS_DEFAULT_REGION"},
            region_name="us-east-1",
        ).create_bucket(Bucket="seedtune")
        dvc(ws, "remote", "add", "-f", "s3remote", "s3://seedtune/store")
        dvc(ws, "remote", "modify", "s3remote", "endpointurl", url)
        git(ws, "add", "-A")
        git(ws, "commit", "-qm", "s3 remote", "--allow-empty")
        _roundtrip(ws, tmp_path, "s3remote", creds)
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(tmp_path / "clone-s3remote", ignore_errors=True)
