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
    assert set(t["lora"]["target_modules"]) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    o = t["optim"]
    assert (o["name"], o["lr"], o["scheduler"]) == ("adamw_torch_fused", 1e-4, "cosine")
    assert (o["warmup_ratio"], o["max_grad_norm"]) == (0.05, 0.3)
    assert (t["batch_size"], t["grad_accum"], t["bf16"]) == (4, 2, True)
    assert c["llm"]["model"] == "gpt-4o-mini"
    assert c["rank"]["model"] == "intfloat/multilingual-e5-small"


def _conf(root: Path, tmp_path: Path) -> Path:
    shutil.copytree(root / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("local"))
    return tmp_path / "conf"


def test_machine_settings_never_reach_params(root: Path, tmp_path: Path) -> None:
    conf = _conf(root, tmp_path)
    (conf / "local").mkdir()
    (conf / "local" / "default.yaml").write_text(
        "llm:\n  base_url: http://127.0.0.1:9/v1\n  concurrency: 2\nrank:\n  device: cpu\n"
        "models:\n  google/gemma-2b-it: /models/gemma\n"
    )
    out = tmp_path / "params.yaml"
    write_params(out, conf)
    text = out.read_text()
    for machine in ("base_url", "concurrency", "device", "/models/", "127.0.0.1", "api_key_env"):
        assert machine not in text
    assert yaml.safe_load(text)["train"]["model"]["name_or_path"] == "google/gemma-2b-it"


def test_a_machine_setting_in_tracked_conf_is_an_error_naming_the_file(
    root: Path, tmp_path: Path
) -> None:
    conf = _conf(root, tmp_path)
    llm = conf / "llm" / "openai.yaml"
    llm.write_text(llm.read_text() + "concurrency: 4\n")
    with pytest.raises(ConfigError, match=rf"^{llm}: llm.concurrency: a machine setting"):
        write_params(tmp_path / "params.yaml", conf)


def test_compose_leaves_params_alone_inside_dvc_exp_run(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "params.yaml"
    text = yaml.safe_dump(composed_params(train={"lora": {"r": 8}}))
    out.write_text(text)
    monkeypatch.setenv("DVC_EXP_NAME", "exp-1")
    assert write_params(out, root / "conf") is False
    assert out.read_text() == text
    monkeypatch.delenv("DVC_EXP_NAME")
    assert write_params(out, root / "conf") is True
    assert yaml.safe_load(out.read_text())["train"]["lora"]["r"] == 4


def test_unknown_keys_and_bad_values_are_all_listed_naming_their_file(
    root: Path, tmp_path: Path
) -> None:
    conf = _conf(root, tmp_path)
    lora = conf / "lora" / "tutorial.yaml"
    lora.write_text(lora.read_text() + "rank: 8\n")
    cfg = conf / "config.yaml"
    cfg.write_text(
        cfg.read_text().replace("  per_seed: 20 ", "  per_seed: many ", 1)
        + "trian:\n  max_steps: 3\n"
    )
    out = tmp_path / "params.yaml"
    with pytest.raises(ConfigError) as err:
        write_params(out, conf)
    lines = err.value.problems
    assert len(lines) == 3, lines
    assert any(x.startswith(f"{lora}: train.lora.rank: unknown key") for x in lines)
    assert any(x.startswith(f"{cfg}: queries.per_seed: ") and "'many'" in x for x in lines)
    assert any(x.startswith(f"{cfg}: trian: unknown key") for x in lines)
    assert "\n" not in str(err.value) and not out.exists()  # nothing written


def test_unknown_key_from_an_exp_run_override_fails(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "params.yaml"
    out.write_text(yaml.safe_dump(composed_params(train={"lora": {"rank": 8}})))
    monkeypatch.setenv("DVC_EXP_NAME", "exp-2")
    with pytest.raises(ConfigError, match=r"train\.lora\.rank: unknown key"):
        write_params(out, root / "conf")


# --------------------------------------------------------------------------- round trip


def _applied(root: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A composed workspace where `dvc exp apply` then set train.lora.r=8 in params.yaml."""
    conf = _conf(root, tmp_path)
    out = tmp_path / "params.yaml"
    write_params(out, conf)
    data = yaml.safe_load(out.read_text())
    data["train"]["lora"]["r"] = 8
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return conf, out


def test_applied_values_hold_while_conf_is_unchanged(root: Path, tmp_path: Path) -> None:
    conf, out = _applied(root, tmp_path)
    write_params(out, conf)  # compose reruns (say its code changed): r stays
    assert yaml.safe_load(out.read_text())["train"]["lora"]["r"] == 8


def test_a_conf_edit_stops_instead_of_undoing_an_experiment(root: Path, tmp_path: Path) -> None:
    conf, out = _applied(root, tmp_path)
    lora = conf / "lora" / "tutorial.yaml"
    lora.write_text(lora.read_text().replace("alpha: 32", "alpha: 16"))
    before = out.read_text()
    with pytest.raises(ConfigError) as err:
        write_params(out, conf)
    assert "train.lora.r" in str(err.value) and "seedtune compose --adopt" in str(err.value)
    assert "--discard" in str(err.value) and "\n" not in str(err.value)
    assert out.read_text() == before  # nothing undone


def test_adopt_writes_applied_values_into_conf_keeping_comments(root: Path, tmp_path: Path) -> None:
    conf, out = _applied(root, tmp_path)
    lora = conf / "lora" / "tutorial.yaml"
    lora.write_text(lora.read_text().replace("alpha: 32", "alpha: 16"))
    write_params(out, conf, resolve="adopt")
    params = yaml.safe_load(out.read_text())["train"]["lora"]
    assert (params["r"], params["alpha"]) == (8, 16)
    text = lora.read_text()
    assert "r: 8" in text and "#" in text  # the file keeps its comments
    write_params(out, conf)  # in step again: nothing left to adopt
    assert yaml.safe_load(out.read_text())["train"]["lora"]["r"] == 8


def test_discard_returns_params_to_conf(root: Path, tmp_path: Path) -> None:
    conf, out = _applied(root, tmp_path)
    write_params(out, conf, resolve="discard")
    assert yaml.safe_load(out.read_text())["train"]["lora"]["r"] == 4


# --------------------------------------------------------------------------- -S leftovers


def _exp_set(out: Path, **train: object) -> None:
    """What `dvc exp run -S +train.lora.rank=8` does before any stage runs: edit params.yaml
    itself (Hydra's `+` adds a key conf/ does not have; DVC's Hydra compose is off)."""
    data = yaml.safe_load(out.read_text())
    data["train"]["lora"].update(train)
    out.write_text(yaml.safe_dump(data, sort_keys=False))


def test_an_unknown_key_an_experiment_left_is_never_adopted(root: Path, workspace) -> None:
    ws = workspace.path
    shutil.copytree(root / "conf", ws / "conf", ignore=shutil.ignore_patterns("local"))
    assert workspace.run("compose").returncode == 0
    _exp_set(ws / "params.yaml", rank=8)
    inside = workspace.run("compose", {"DVC_EXP_NAME": "exp-3"})  # the failed `dvc exp run`
    assert inside.returncode == 2, inside.stderr
    for run in (inside, workspace.run("compose"), workspace.run("compose")):  # plain reruns
        (line,) = [x for x in run.stderr.splitlines() if ": error: " in x]  # besides logs
        assert "Traceback" not in run.stderr
        assert run.returncode == 2, run.stderr
        assert line.startswith(
            "compose: error: params.yaml (set by `dvc exp run -S`?): train.lora.rank: unknown key"
        ), line
        assert "lora" not in line.split("train.lora.rank")[0]  # not blamed on conf/lora/
    assert "seedtune compose --discard" in line
    base = yaml.safe_load((ws / "params.conf.yaml").read_text())
    assert "rank" not in base["train"]["lora"]  # never recorded as what conf/ gives
    write_params(ws / "params.yaml", ws / "conf", resolve="discard")
    assert "rank" not in yaml.safe_load((ws / "params.yaml").read_text())["train"]["lora"]


def test_adopt_refuses_an_unknown_key_instead_of_writing_it_into_conf(
    root: Path, tmp_path: Path
) -> None:
    conf, out = _applied(root, tmp_path)
    _exp_set(out, rank=8)
    lora = conf / "lora" / "tutorial.yaml"
    text = lora.read_text()
    with pytest.raises(ConfigError, match=r"train\.lora\.rank: unknown key"):
        write_params(out, conf, resolve="adopt")
    assert lora.read_text() == text


def test_a_bad_value_from_s_names_params_yaml(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = _conf(root, tmp_path)
    out = tmp_path / "params.yaml"
    write_params(out, conf)
    _exp_set(out, r="eight")
    monkeypatch.setenv("DVC_EXP_NAME", "exp-4")
    with pytest.raises(
        ConfigError,
        match=rf"^{out} \(set by `dvc exp run -S`\?\): train\.lora"
        r"\.r: .*'eight'",
    ):
        write_params(out, conf)
