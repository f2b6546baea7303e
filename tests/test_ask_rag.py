"""``seedtune ask --rag`` grounds the tuned model on what the pipeline would: the passages the
search, crawl and rank stages give the same question, cut as the synthesize stage cuts them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from seedtune_sandbox.demo import SIM_ENV, local_config
from support import Workspace, composed_params

from seedtune.cli.ask import build_prompt, retrieve
from seedtune.core.config import load_params

QUESTION = "전세 계약 전에 무엇을 확인해야 하나요?"


def test_ask_rag_shows_the_passages_the_stages_rank(
    sim, tiny_models, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace
    ws.write("params.yaml", yaml.safe_dump(composed_params(), allow_unicode=True))
    machine = local_config(sim.url, tiny_models, sim.page_origins.values())
    ws.write("conf/local/default.yaml", yaml.safe_dump(machine, allow_unicode=True))
    ws.write("data/questions.jsonl", [{"question": QUESTION}])
    for stage in ("search", "crawl", "rank"):
        proc = ws.run(stage, keys=SIM_ENV)
        assert proc.returncode == 0, proc.stderr
    (ranked,) = ws.rows("data/ranked.jsonl")

    monkeypatch.chdir(ws.path)
    for key, value in SIM_ENV.items():
        monkeypatch.setenv(key, value)
    p = load_params("params.yaml", ("search", "crawl", "rank", "synthesize"))
    shown = retrieve(p, QUESTION, Path(".cache/ask/search"))

    top_k = p.synthesize.top_k
    assert any(d["kind"] == "page" for d in ranked["documents"][:top_k])  # pages were read
    want = ranked["documents"][:top_k]
    assert [(d["link"], d["passage"]) for d in shown] == [(d["link"], d["passage"]) for d in want]
    assert [d["score"] for d in shown] == pytest.approx([d["score"] for d in want], abs=1e-5)
    prompt = build_prompt(QUESTION, shown, top_k)
    assert prompt.count("</참고자료>") == 1 and f"[{len(want)}] " in prompt
