"""compose stage: conf/ -> params.yaml, the tutorial defaults, conf/local, `dvc exp run`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from support import composed_params

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
    text = yaml.safe_dump(composed_params(train={"lora": {"r": 8}}))
    out.write_text(text)
    monkeypatch.setenv("DVC_EXP_NAME", "exp-1")
    assert write_params(out, root / "conf") is False
    assert out.read_text() == text
    monkeypatch.delenv("DVC_EXP_NAME")
    assert write_params(out, root / "conf") is True
    assert yaml.safe_load(out.read_text())["train"]["lora"]["r"] == 4


def _conf(root: Path, tmp_path: Path) -> Path:
    shutil.copytree(root / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("local"))
    return tmp_path / "conf"


def test_unknown_keys_and_bad_values_are_all_listed_naming_their_file(
        root: Path, tmp_path: Path) -> None:
    conf = _conf(root, tmp_path)
    lora = conf / "lora" / "tutorial.yaml"
    lora.write_text(lora.read_text() + "rank: 8\n")
    cfg = conf / "config.yaml"
    cfg.write_text(cfg.read_text().replace("  per_seed: 20 ", "  per_seed: many ")
                   + "trian:\n  max_steps: 3\n")
    out = tmp_path / "params.yaml"
    with pytest.raises(ConfigError) as err:
        write_params(out, conf)
    lines = err.value.problems
    assert len(lines) == 3, lines
    assert any(x.startswith(f"{lora}: train.lora.rank: unknown key") for x in lines)
    assert any(x.startswith(f"{cfg}: queries.per_seed: ") and "'many'" in x for x in lines)
    assert any(x.startswith(f"{cfg}: trian: unknown key") for x in lines)
    assert "\n" not in str(err.value) and not out.exists()  # nothing written


def test_unknown_key_from_an_exp_run_override_fails(root: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "params.yaml"
    out.write_text(yaml.safe_dump(composed_params(train={"lora": {"rank": 8}})))
    monkeypatch.setenv("DVC_EXP_NAME", "exp-2")
    with pytest.raises(ConfigError, match=r"train\.lora\.rank: unknown key"):
        write_params(out, root / "conf")


def test_a_key_pasted_into_api_key_env_is_refused_without_echo(root: Path, tmp_path: Path
                                                                ) -> None:
    conf = _conf(root, tmp_path)
    (conf / "local").mkdir()
    key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
    (conf / "local" / "default.yaml").write_text(f"llm:\n  api_key_env: {key}\n")
    out = tmp_path / "params.yaml"
    with pytest.raises(ConfigError) as err:
        write_params(out, conf)
    assert "llm.api_key_env: must be the NAME" in str(err.value)
    assert key not in str(err.value) and key not in "".join(err.value.problems)
    assert not out.exists()


def test_broken_conf_yaml_is_one_line_naming_file_and_line(root: Path, tmp_path: Path) -> None:
    shutil.copytree(root / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("local"))
    (tmp_path / "conf" / "llm" / "openai.yaml").write_text("llm:\n  model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"conf/llm/openai\.yaml:\d+: not valid YAML"):
        compose_config(tmp_path / "conf")
    with pytest.raises(ConfigError, match="lora"):
        compose_config(root / "conf", overrides=["lora@train.lora=nonexistent"])
