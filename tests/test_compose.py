"""compose stage: conf/ -> params.yaml, the tutorial defaults, conf/local, `dvc exp run`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from seedtune.core.compose import compose_config, write_params
from seedtune.core.errors import ConfigError


def test_committed_params_equal_composed_conf(root: Path) -> None:
    committed = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    conf = root / "conf"
    if (conf / "local").exists():  # a developer's own settings must not make this fail
        pytest.skip("conf/local/ present on this machine")
    assert committed == compose_config(conf)


def test_tutorial_defaults(root: Path, tmp_path: Path) -> None:
    shutil.copytree(root / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("local"))
    c = compose_config(tmp_path / "conf")
    t = c["train"]
    assert t["model"]["name_or_path"] == "google/gemma-2b-it"
    assert (t["lora"]["r"], t["lora"]["alpha"], t["lora"]["dropout"]) == (4, 32, 0.0)
    assert set(t["lora"]["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj",
                                                "gate_proj", "up_proj", "down_proj"}
    o = t["optim"]
    assert (o["name"], o["lr"], o["scheduler"]) == ("adamw_torch_fused", 1e-4, "cosine")
    assert (o["warmup_ratio"], o["max_grad_norm"]) == (0.05, 0.3)
    assert (t["batch_size"], t["grad_accum"], t["bf16"]) == (4, 2, True)
    assert c["llm"]["base_url"] == "https://api.openai.com/v1"
    assert c["search"]["base_url"] == "https://openapi.naver.com"
    assert c["rank"]["model"] == "intfloat/multilingual-e5-small"


@pytest.mark.parametrize("header", ["", "# @package _global_\n"])
def test_local_overrides_with_or_without_package_header(root: Path, tmp_path: Path,
                                                        header: str) -> None:
    shutil.copytree(root / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("local"))
    (tmp_path / "conf" / "local").mkdir()
    (tmp_path / "conf" / "local" / "default.yaml").write_text(
        header + "llm:\n  base_url: http://127.0.0.1:9/v1\ntrain:\n  max_steps: 3\n"
        "  model:\n    name_or_path: /models/tiny\nrank:\n  model: /models/e5\n")
    c = compose_config(tmp_path / "conf")
    assert c["llm"]["base_url"] == "http://127.0.0.1:9/v1"
    assert c["llm"]["model"] == "gpt-4o-mini"  # untouched keys keep defaults
    assert c["train"]["max_steps"] == 3
    assert c["train"]["model"]["name_or_path"] == "/models/tiny"
    assert c["train"]["lora"]["r"] == 4
    assert c["rank"]["model"] == "/models/e5"
    assert "local" not in c


def test_compose_leaves_params_alone_inside_dvc_exp_run(root: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "params.yaml"
    out.write_text("train: {lora: {r: 8}}\n")
    monkeypatch.setenv("DVC_EXP_NAME", "exp-1")
    assert write_params(out, root / "conf") is False
    assert out.read_text() == "train: {lora: {r: 8}}\n"
    monkeypatch.delenv("DVC_EXP_NAME")
    assert write_params(out, root / "conf") is True
    assert yaml.safe_load(out.read_text())["train"]["lora"]["r"] == 4


def test_broken_conf_yaml_is_one_line_naming_file_and_line(root: Path, tmp_path: Path) -> None:
    shutil.copytree(root / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("local"))
    (tmp_path / "conf" / "llm" / "openai.yaml").write_text("llm:\n  model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"conf/llm/openai\.yaml:\d+: not valid YAML"):
        compose_config(tmp_path / "conf")
    with pytest.raises(ConfigError, match="lora"):
        compose_config(root / "conf", overrides=["lora@train.lora=nonexistent"])
