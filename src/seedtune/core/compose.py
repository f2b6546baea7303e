"""Compose conf/ into params.yaml, the way `dvc exp run` does, for plain `dvc repro`.

Run: ``python stages/compose.py`` (the compose stage) or ``seedtune compose``.

Inside ``dvc exp run`` DVC has already composed conf/ (with the ``-S`` overrides) into
params.yaml and sets ``DVC_EXP_NAME``; recomposing there would drop those overrides, so the
stage leaves the file alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from seedtune.core.config import validate_params
from seedtune.core.errors import ConfigError, one_line
from seedtune.core.records import atomic_write_text

log = logging.getLogger(__name__)

HEADER = (
    "# Composed from conf/ by the compose stage (`dvc repro`) or by `dvc exp run`.\n"
    "# Do not edit: change conf/ (or pass `dvc exp run -S key=value`) instead.\n"
)


def compose_config(
    conf_dir: Path | str = "conf", config_name: str = "config", overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """Compose the Hydra config under ``conf_dir`` into a plain, fully resolved dict."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    conf_dir = Path(conf_dir).resolve()
    if not (conf_dir / f"{config_name}.yaml").is_file():
        raise ConfigError(f"{conf_dir / (config_name + '.yaml')}: no such config file")
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=list(overrides))
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{mark.name}:{mark.line + 1}" if mark else str(conf_dir)
        raise ConfigError(f"{where}: not valid YAML ({exc.problem or exc.context})") from None
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(f"{conf_dir}: {one_line(exc)}") from None
    finally:
        GlobalHydra.instance().clear()


def key_sources(conf_dir: Path | str) -> dict[str, str]:
    """Dotted key -> the conf file that sets it last, following config.yaml's defaults list
    (``group@package: option`` entries, ``_self_``, ``optional``), for error messages."""
    conf_dir = Path(conf_dir)
    sources: dict[str, str] = {}

    def walk(node: Any, prefix: str, source: str) -> None:
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            dotted = f"{prefix}.{key}" if prefix else str(key)
            sources[dotted] = source
            walk(value, dotted, source)

    def load(path: Path) -> Any:
        try:
            return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return {}

    root = load(conf_dir / "config.yaml")
    if not isinstance(root, dict):
        return sources
    for entry in root.get("defaults") or []:
        if entry == "_self_":
            walk({k: v for k, v in root.items() if k != "defaults"}, "",
                 str(conf_dir / "config.yaml"))
        elif isinstance(entry, dict) and len(entry) == 1:
            (spec, option), = entry.items()
            group, _, package = str(spec).removeprefix("optional ").partition("@")
            path = conf_dir / group / f"{option}.yaml"
            if path.is_file():
                prefix = "" if package == "_global_" else (package or group)
                walk(load(path), prefix, str(path))
    return sources


def check_params(params: dict[str, Any], sources: dict[str, str], fallback: str) -> None:
    """Validate a whole composed config; :class:`ConfigError` lists every unknown key and
    every bad value, one line each, naming the file that set it where it can."""
    def source_of(key: str) -> str:
        while key:
            if key in sources:
                return sources[key]
            key = key.rpartition(".")[0]
        return fallback

    validate_params(params, source_of)


def dump_params(params: dict[str, Any]) -> str:
    """YAML text for params.yaml: block style, unicode kept, keys in config order."""
    return HEADER + yaml.safe_dump(params, sort_keys=False, allow_unicode=True)


def write_params(
    out: Path | str = "params.yaml",
    conf_dir: Path | str = "conf",
    overrides: Sequence[str] = (),
    respect_exp: bool = True,
) -> bool:
    """Compose ``conf_dir`` and write ``out`` atomically.

    The whole config is validated first (:func:`check_params`): nothing is written when a
    key is unknown or a value bad. Inside ``dvc exp run``, where DVC already wrote the file
    with your ``-S`` overrides, it is validated as it is and left alone (returns False).
    The file is only rewritten when its content changes, so its mtime stays meaningful.
    """
    out = Path(out)
    if respect_exp and os.environ.get("DVC_EXP_NAME"):
        log.info("inside `dvc exp run` (%s): checking params.yaml as DVC composed it",
                 os.environ["DVC_EXP_NAME"])
        check_params(_read_yaml(out), key_sources(conf_dir), f"{out} (your -S override?)")
        return False
    params = compose_config(conf_dir, overrides=overrides)
    check_params(params, key_sources(conf_dir), f"{out} (an override?)")
    text = dump_params(params)
    if out.is_file() and out.read_text(encoding="utf-8") == text:
        log.info("%s is up to date with %s/", out, conf_dir)
        return True
    atomic_write_text(out, text)
    log.info("wrote %s from %s/", out, conf_dir)
    return True


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a mapping of params")
    return data


def main(argv: list[str] | None = None) -> int:
    """``seedtune compose``: write params.yaml from conf/ (also right after editing conf/local/)."""
    import argparse

    ap = argparse.ArgumentParser(prog="seedtune compose",
                                 description="compose conf/ into params.yaml")
    ap.add_argument("--conf", default="conf")
    ap.add_argument("--out", default="params.yaml")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. train.lora.r=8")
    args = ap.parse_args(argv)
    write_params(args.out, args.conf, args.overrides, respect_exp=False)
    return 0
