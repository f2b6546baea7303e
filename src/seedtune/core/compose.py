"""Compose conf/ (pipeline params only) into params.yaml, validated, keeping an experiment's
values.

Run: ``python stages/compose.py`` (the compose stage), ``seedtune compose [--adopt |
--discard]``. Inside ``dvc exp run`` (``DVC_EXP_NAME`` set) DVC has already written your
``-S`` overrides into params.yaml: it is validated and left alone. Outside, values an
experiment put there (``dvc exp apply``) hold while conf/ is unchanged; see
:func:`write_params`. They are validated as they stand, named as params.yaml's (``-S``): an
unknown key a failed ``dvc exp run -S +key=value`` left behind fails every rerun, never
adopted. Machine settings are never composed (:mod:`seedtune.core.machine`).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from seedtune.core.config import machine_keys_in, validate_params
from seedtune.core.errors import ConfigError, one_line
from seedtune.core.paths import CONF_DIR, PARAMS_CONF_FILE, PARAMS_FILE
from seedtune.core.records import atomic_write_text, read_yaml_mapping

log = logging.getLogger(__name__)

HEADER = (
    "# Composed from conf/ by the compose stage (`dvc repro`) or by `dvc exp run`.\n"
    "# Do not edit: change conf/ (or pass `dvc exp run -S key=value`) instead.\n"
)


def compose_config(
    conf_dir: Path | str = CONF_DIR, config_name: str = "config", overrides: Sequence[str] = ()
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


def conf_files(conf_dir: Path | str) -> list[tuple[Path, str]]:
    """The conf files config.yaml composes, in its defaults order (``_self_`` included),
    each with the package its keys land under (``model@train.model`` -> ``train.model``)."""
    conf_dir = Path(conf_dir)
    root = _load_yaml(conf_dir / "config.yaml")
    files: list[tuple[Path, str]] = []
    for entry in root.get("defaults") or [] if isinstance(root, dict) else []:
        if entry == "_self_":
            files.append((conf_dir / "config.yaml", ""))
        elif isinstance(entry, dict) and len(entry) == 1:
            ((spec, option),) = entry.items()
            group, _, package = str(spec).removeprefix("optional ").partition("@")
            path = conf_dir / group / f"{option}.yaml"
            if path.is_file():
                files.append((path, "" if package == "_global_" else (package or group)))
    return files


def key_sources(conf_dir: Path | str) -> dict[str, str]:
    """Dotted key -> the conf file that sets it last, for error messages."""
    sources: dict[str, str] = {}
    for path, prefix in conf_files(conf_dir):
        data = _load_yaml(path)
        if isinstance(data, dict) and path.name == "config.yaml" and prefix == "":
            data = {k: v for k, v in data.items() if k != "defaults"}
        for key in flatten(data, prefix) if isinstance(data, dict) else {}:
            parts = key.split(".")
            for i in range(1, len(parts) + 1):  # a section names its file too
                sources[".".join(parts[:i])] = str(path)
    return sources


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}


def check_params(params: dict[str, Any], sources: dict[str, str], fallback: str) -> None:
    """Validate a whole composed config; :class:`ConfigError` lists every unknown key and
    every bad value, one line each, naming the file that set it where it can."""

    def source_of(key: str) -> str:
        while key:
            if key in sources:
                return sources[key]
            key = key.rpartition(".")[0]
        return fallback

    misplaced = machine_keys_in(params, source_of)
    if misplaced:
        raise ConfigError(misplaced[0], misplaced)
    validate_params(params, source_of)


def override_sources(
    conf_dir: Path | str, current: dict[str, Any], conf_params: dict[str, Any], out: Path | str
) -> dict[str, str]:
    """:func:`key_sources` with every key whose value in ``current`` (params.yaml) is not what
    conf/ gives (``conf_params``) named as ``out``: DVC's ``-S`` (or ``exp apply``) wrote it,
    so blaming the conf file that holds the section would send the user to the wrong place.
    A key conf/ lacks names ``out`` down from its first part conf/ does not have."""
    sources = key_sources(conf_dir)
    known = {
        ".".join(k.split(".")[:i]) for k in flatten(conf_params) for i in range(1, k.count(".") + 2)
    }
    label = f"{out} (set by `dvc exp run -S`?)"
    for key in experiment_values(current, conf_params):
        parts = key.split(".")
        sources[key] = label
        for i in range(1, len(parts)):
            if ".".join(parts[:i]) not in known:
                sources[".".join(parts[:i])] = label
    return sources


def _check_applied(current: dict[str, Any], sources: dict[str, str], out: Path) -> None:
    """:func:`check_params` on params.yaml as an experiment left it, the way out added."""
    hint = (
        f"; or drop what experiments left in {out} with `seedtune compose --discard` "
        "(or `git checkout params.yaml`)"
    )
    try:
        check_params(current, sources, f"{out} (set by `dvc exp run -S`?)")
    except ConfigError as exc:
        lines = exc.problems or [str(exc)]
        raise ConfigError(one_line(exc) + hint, [line + hint for line in lines]) from None


def dump_params(params: dict[str, Any]) -> str:
    """YAML text for params.yaml: block style, unicode kept, keys in config order."""
    return HEADER + yaml.safe_dump(params, sort_keys=False, allow_unicode=True)


#: Beside params.yaml: what conf/ alone composed to last time. Values in params.yaml that
#: differ from it came from an experiment (``dvc exp apply``, ``-S``), not from conf/.
BASE_NAME = PARAMS_CONF_FILE
BASE_HEADER = (
    "# What conf/ alone composes to (written by the compose stage with params.yaml).\n"
    "# compose compares params.yaml with it to find the values an experiment set.\n"
)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists are values)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def experiment_values(current: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The keys (dotted) whose value in params.yaml is not what conf/ composed to."""
    cur, old = flatten(current), flatten(base)
    return {k: v for k, v in cur.items() if old.get(k, _MISSING) != v}


_MISSING = object()


def write_params(
    out: Path | str = PARAMS_FILE,
    conf_dir: Path | str = CONF_DIR,
    overrides: Sequence[str] = (),
    respect_exp: bool = True,
    resolve: str | None = None,
) -> bool:
    """Compose ``conf_dir`` into ``out`` (and :data:`BASE_NAME` beside it), atomically.

    The whole config is validated first (:func:`check_params`): nothing is written when a
    key is unknown or a value bad. Inside ``dvc exp run``, where DVC already wrote the file
    with your ``-S`` overrides, it is validated as it is and left alone (returns False).

    Values an experiment put in ``out`` (``dvc exp apply``, ``-S``) are kept while conf/ is
    unchanged. When conf/ changed too, recomposing would silently undo them, so it stops
    with a :class:`ConfigError` naming each key, unless ``resolve`` says what to do:
    ``"adopt"`` writes them into the conf/ files that set them, ``"discard"`` drops them.
    """
    out, conf_dir = Path(out), Path(conf_dir)
    if respect_exp and os.environ.get("DVC_EXP_NAME"):
        log.info(
            "inside `dvc exp run` (%s): checking params.yaml as DVC composed it",
            os.environ["DVC_EXP_NAME"],
        )
        composed = read_yaml_mapping(out)
        fallback = f"{out} (your -S override?)"
        try:
            check_params(composed, key_sources(conf_dir), fallback)
        except ConfigError:
            # only a bad value needs conf/ composed: to name `-S` rather than the conf file
            check_params(
                composed,
                override_sources(conf_dir, composed, compose_config(conf_dir), out),
                fallback,
            )
            raise
        return False
    base_path = out.with_name(BASE_NAME)
    current = read_yaml_mapping(out) if out.is_file() else None
    base = read_yaml_mapping(base_path) if base_path.is_file() else current
    applied: dict[str, Any] = {}
    if current is not None and base is not None:  # base is current when no base file
        applied = experiment_values(current, base)
        if applied and resolve != "discard":
            # what an experiment (or a failed `dvc exp run -S +key=...`) left in params.yaml
            # is checked as it stands, naming params.yaml: an unknown key is never kept or
            # adopted
            _check_applied(current, override_sources(conf_dir, current, base, out), out)
    if applied and resolve == "adopt":
        set_conf_values(conf_dir, applied)
        log.info("adopted into %s/: %s", conf_dir, ", ".join(sorted(applied)))
    params = compose_config(conf_dir, overrides=overrides)
    check_params(params, key_sources(conf_dir), f"{out} (an override?)")
    if applied and resolve is None:
        if params == base:  # conf/ unchanged: the experiment's values hold
            log.info(
                "%s keeps the values an experiment set (%s); conf/ is unchanged",
                out,
                ", ".join(sorted(applied)),
            )
            return True
        new = flatten(params)
        lost = {k: v for k, v in applied.items() if new.get(k, _MISSING) != v}
        if lost:
            lines = [
                f"{out}: {k}={v!r} was set by an experiment (dvc exp apply or -S) and conf/ "
                f"now gives {new.get(k, '(nothing)')!r}"
                for k, v in sorted(lost.items())
            ]
            hint = (
                "; keep them with `seedtune compose --adopt` (writes them into conf/) or "
                "drop them with `seedtune compose --discard`, then `dvc repro`"
            )
            raise ConfigError(
                f"conf/ changed after an experiment set {', '.join(sorted(lost))}" + hint,
                [line + hint for line in lines],
            )
    _write_if_changed(out, dump_params(params))
    _write_if_changed(
        base_path, BASE_HEADER + yaml.safe_dump(params, sort_keys=False, allow_unicode=True)
    )
    return True


def _write_if_changed(path: Path, text: str) -> None:
    """Write only when the content changes, so the file's mtime stays meaningful."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        log.info("%s is up to date", path)
        return
    atomic_write_text(path, text)
    log.info("wrote %s", path)


def set_conf_values(conf_dir: Path, values: dict[str, Any]) -> None:
    """Write dotted ``values`` into the conf/ files that set those keys (conf/config.yaml
    for keys no file sets), keeping their comments and layout (ruamel round trip)."""
    from ruamel.yaml import YAML

    ryaml = YAML()
    ryaml.preserve_quotes = True
    ryaml.width = 4096  # never re-wrap a line
    sources = key_sources(conf_dir)
    prefixes = {str(path): prefix for path, prefix in conf_files(conf_dir)}
    by_file: dict[Path, dict[str, Any]] = {}
    for key, value in values.items():
        path = Path(sources.get(key, conf_dir / "config.yaml"))
        by_file.setdefault(path, {})[key] = value
    for path, items in by_file.items():
        doc = ryaml.load(path.read_text(encoding="utf-8")) or {}
        prefix = prefixes.get(str(path), "")
        for key, value in items.items():
            rel = key[len(prefix) + 1 :] if prefix and key.startswith(prefix + ".") else key
            node = doc
            *parents, leaf = rel.split(".")
            for part in parents:
                if part not in node or not isinstance(node[part], dict):
                    node[part] = {}
                node = node[part]
            node[leaf] = value
        buf = io.StringIO()
        ryaml.dump(doc, buf)
        atomic_write_text(path, buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    """``seedtune compose``: write params.yaml from conf/ (``--adopt``/``--discard``: resolve
    the values an experiment set, see :func:`write_params`)."""
    import argparse

    ap = argparse.ArgumentParser(
        prog="seedtune compose", description="compose conf/ into params.yaml"
    )
    ap.add_argument("--conf", default=CONF_DIR)
    ap.add_argument("--out", default=PARAMS_FILE)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. train.lora.r=8")
    choice = ap.add_mutually_exclusive_group()
    choice.add_argument(
        "--adopt",
        action="store_const",
        const="adopt",
        dest="resolve",
        help="write the values an experiment set into conf/, then compose",
    )
    choice.add_argument(
        "--discard",
        action="store_const",
        const="discard",
        dest="resolve",
        help="drop the values an experiment set: params.yaml = conf/ again",
    )
    args = ap.parse_args(argv)
    write_params(args.out, args.conf, args.overrides, respect_exp=False, resolve=args.resolve)
    return 0
