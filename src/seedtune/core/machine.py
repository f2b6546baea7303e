"""Machine settings: how this machine runs the pipeline, never what its outputs are.

Endpoints, the name of the key variable, concurrency, rate limits, timeouts, retries,
devices, inference batch sizes and where model weights live (``models:``, model id ->
local directory). They are read at run time, are never written to params.yaml, dvc.lock
or any tracked file, are in no stage's ``params:``, and changing them makes nothing stale.

Sources, later ones win:

1. ``conf/machine.yaml``: tracked defaults (the real services), commented;
2. ``conf/local/default.yaml``: this machine (git-ignored); a pipeline param there is an
   error naming it. Experiments that DVC runs in a temporary copy
   (``dvc exp run --queue/--temp``) read the repository's own file;
3. environment variables ``SEEDTUNE_<SECTION>_<KEY>``, e.g. ``SEEDTUNE_LLM_CONCURRENCY=4``,
   and ``SEEDTUNE_LOCAL_CONF`` to read another file than conf/local/default.yaml.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from seedtune.core.errors import ConfigError
from seedtune.core.records import read_yaml_mapping

#: Every machine setting by section (the ``models:`` map aside).
MACHINE_KEYS: dict[str, tuple[str, ...]] = {
    "llm": (
        "base_url",
        "api_key_env",
        "timeout_s",
        "max_retries",
        "concurrency",
        "rpm",
        "tpm",
        "structured_output",
        "system_role",
        "service_tier",
        "mode",
        "batch_wait_s",
        "batch_poll_s",
    ),
    "search": ("base_url", "timeout_s", "max_retries", "rps", "daily_quota"),
    "crawl": (
        "user_agent",
        "concurrency",
        "per_host",
        "host_rps",
        "timeout_s",
        "max_retries",
        "allow_networks",
        "max_crawl_delay_s",
    ),
    "rank": ("device", "batch_size"),
    "evaluate": ("batch_size",),
    # an OpenAI-compatible inference server for evaluate's and `seedtune ask`'s answers
    # (seedtune.evaluation.remote); no pipeline param has this section
    "generate": (
        "base_url",
        "api_key_env",
        "base_model",
        "tuned_model",
        "concurrency",
        "timeout_s",
        "max_retries",
    ),
}
MACHINE_FILE = Path("conf/machine.yaml")
LOCAL_FILE = Path("conf/local/default.yaml")
LOCAL_ENV = "SEEDTUNE_LOCAL_CONF"


def is_machine_key(dotted: str) -> bool:
    """Whether ``section.key`` (or ``models...``) is a machine setting."""
    section, _, key = dotted.partition(".")
    return section == "models" or key.split(".")[0] in MACHINE_KEYS.get(section, ())


def env_name(section: str, key: str) -> str:
    """The environment variable that overrides ``section.key``."""
    return f"SEEDTUNE_{section.upper()}_{key.upper()}"


def local_file(root: Path = Path(".")) -> Path:
    """This machine's settings file: ``$SEEDTUNE_LOCAL_CONF``, else conf/local/default.yaml
    of the workspace, or of the repository a DVC experiment copy runs inside of."""
    if os.environ.get(LOCAL_ENV):
        return Path(os.environ[LOCAL_ENV])
    here = root / LOCAL_FILE
    if here.is_file():
        return here
    repo = exp_repository(root)
    return repo / LOCAL_FILE if repo is not None else here


def exp_repository(root: Path = Path(".")) -> Path | None:
    """The repository a ``dvc exp run --queue/--temp`` copy runs inside of
    (``<repo>/.dvc/tmp/exps/<tmp>/``), None elsewhere: git-ignored files (this machine's
    settings, ``.env``) are not copied there."""
    for parent in root.resolve().parents:
        if (
            parent.name == "exps"
            and parent.parent.name == "tmp"
            and parent.parent.parent.name == ".dvc"
        ):
            return parent.parent.parent.parent
    return None


def _check_keys(path: Path, data: dict[str, Any]) -> None:
    """Only machine settings: a pipeline param names where it belongs instead."""
    problems = []
    for section, values in data.items():
        if section == "models":
            if not isinstance(values, dict):
                problems.append(f"{path}: models: expected a map of model id -> directory")
            continue
        if not isinstance(values, dict):
            problems.append(f"{path}: {section}: expected a mapping")
            continue
        for key in values:
            dotted = f"{section}.{key}"
            if key in MACHINE_KEYS.get(section, ()):
                continue
            problems.append(
                f"{path}: {dotted}: a pipeline param, not a machine setting; set "
                f"it in conf/ (tracked) or with `dvc exp run -S {dotted}=...`"
            )
    if problems:
        raise ConfigError(problems[0], problems)


def load_machine(root: Path = Path(".")) -> dict[str, Any]:
    """This machine's settings: ``{section: {key: value}, "models": {id: dir}}``."""
    base, local_path = root / MACHINE_FILE, local_file(root)
    merged: dict[str, Any] = {"models": {}}
    for path in (base, local_path):
        data = read_yaml_mapping(path, missing_ok=True)
        _check_keys(path, data)
        for section, values in data.items():
            merged.setdefault(section, {}).update(values or {})
    for section, keys in MACHINE_KEYS.items():
        for key in keys:
            value = os.environ.get(env_name(section, key))
            if value is not None:  # YAML scalars: 4 is an int, null is None
                merged.setdefault(section, {})[key] = yaml.safe_load(value) if value else None
    return merged


def source_of(dotted: str, root: Path = Path(".")) -> str:
    """Where a machine setting's value comes from (for error messages)."""
    section, _, key = dotted.partition(".")
    key = key.split(".")[0]
    if os.environ.get(env_name(section, key)) is not None:
        return env_name(section, key)
    local = local_file(root)
    if key in (read_yaml_mapping(local, missing_ok=True).get(section) or {}):
        return str(local)
    return str(root / MACHINE_FILE) if str(root) != "." else str(MACHINE_FILE)


def resolve_model(name_or_path: str, root: Path = Path(".")) -> str:
    """The local directory ``models:`` maps a model id to, else the id itself (then the
    Hugging Face cache or hub finds it). Params keep the id, so a teammate's clone is not
    stale because your weights live elsewhere."""
    models = load_machine(root).get("models") or {}
    found = models.get(name_or_path)
    return str(Path(found).expanduser()) if found else name_or_path


def looks_local(name: str) -> bool:
    """Whether ``name`` is a path rather than a hub id (``name`` or ``org/name``)."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or Path(name).exists()


def locate_model(
    name_or_path: str,
    key: str,
    revision: str | None = None,
    token: str | None = None,
    root: Path = Path("."),
) -> str:
    """:func:`resolve_model`, checked before any loader sees it: the directory exists and
    holds a config.json, or the hub id is in the Hugging Face cache (or the hub has it).

    Every model loader goes through this, so an id that resolves nowhere is one
    :class:`ConfigError` naming ``key`` (``train.model.name_or_path``, ``rank.model``,
    ``--base``), the id, ``models:`` and the cache, instead of a loader's traceback. Only
    config.json is fetched; with ``HF_HUB_OFFLINE`` set only the cache is read.
    """
    path = resolve_model(name_or_path, root)
    via = f" (models: maps it to {path})" if path != name_or_path else ""
    fix = (
        f"; map it to a local directory under models: in {LOCAL_FILE}, or put it in the "
        "Hugging Face cache (`hf download ID`)"
    )
    if looks_local(path):
        where = Path(path).expanduser()
        if not where.is_dir():
            raise ConfigError(f"{key}={name_or_path!r}: no such directory{via}{fix}")
        if not (where / "config.json").is_file():
            raise ConfigError(
                f"{key}={name_or_path!r}: not a model directory (no config.json){via}{fix}"
            )
        return path
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        hf_hub_download(path, "config.json", revision=revision, token=token)
    except GatedRepoError:
        raise ConfigError(
            f"{key}={name_or_path!r}: a gated model; accept its license on the "
            "hub and set HF_TOKEN" + fix
        ) from None
    except LocalEntryNotFoundError:
        why = (
            "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the hub could not be reached"
        )
        raise ConfigError(
            f"{key}={name_or_path!r}: not under models: and not in the Hugging "
            f"Face cache ({why}){fix}"
        ) from None
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise ConfigError(
            f"{key}={name_or_path!r}: not under models: and the hub has no such "
            f"model (revision {revision or 'main'}){fix}"
        ) from None
    except (OSError, ValueError) as exc:  # not a repo id, a broken cache entry, ...
        why = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{key}={name_or_path!r}: cannot be located ({why}){fix}") from None
    return path
