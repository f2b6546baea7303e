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

    Returns False (and writes nothing) inside ``dvc exp run``, where DVC already wrote it.
    The file is only rewritten when its content changes, so its mtime stays meaningful.
    """
    if respect_exp and os.environ.get("DVC_EXP_NAME"):
        log.info("inside `dvc exp run` (%s): keeping params.yaml as DVC composed it",
                 os.environ["DVC_EXP_NAME"])
        return False
    text = dump_params(compose_config(conf_dir, overrides=overrides))
    out = Path(out)
    if out.is_file() and out.read_text(encoding="utf-8") == text:
        log.info("%s is up to date with %s/", out, conf_dir)
        return True
    atomic_write_text(out, text)
    log.info("wrote %s from %s/", out, conf_dir)
    return True


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
