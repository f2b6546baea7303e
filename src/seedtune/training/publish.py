"""Publishing the adapter and the dataset, each with its card, to Hugging Face Hub repos.

One commit per repository through ``huggingface_hub`` (``HfApi.create_repo`` private by
default, then ``create_commit`` of ``CommitOperationAdd``\\ s), the token from ``HF_TOKEN``,
the dvc.lock md5 of what is pushed in the commit message, so a repository's head names the
pipeline run it came from. Refused, in one line, before anything is sent: a card missing
(the train stage's models/adapter/README.md, the card stage's dataset card), an adapter the
evaluate stage did not judge (its card would carry no win rate), personal data left
unmasked in the dataset, or a workspace that is not what dvc.lock says (``dvc status``):
what is pushed must be what the lock file records.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from seedtune.core import paths, pii
from seedtune.core.errors import ConfigError, ServiceError
from seedtune.core.records import iter_jsonl, read_json, read_yaml_mapping
from seedtune.training.model_card import evaluation_of, render_published_card

log = logging.getLogger(__name__)

ADAPTER, DATASET, CARD = paths.ADAPTER, paths.INSTRUCTIONS, paths.DATASET_CARD
EVALUATION = str(paths.metrics_file("evaluate"))
#: The key of metrics/card.json counting personal data left unmasked (the card stage's).
UNMASKED_KEY = "pii_unmasked"


@dataclass
class Push:
    """One repository's commit: where, what (path in repo -> a file here, streamed by the
    upload, or bytes made for it), and its message."""

    repo_id: str
    repo_type: str  # model or dataset
    files: dict[str, Path | bytes]
    message: str
    description: str


def lock_md5(root: Path, path: str) -> str:
    """The md5 dvc.lock records for the output ``path`` (of whichever stage writes it)."""
    lock = read_yaml_mapping(root / "dvc.lock", missing_ok=True).get("stages") or {}
    for stage in lock.values():
        for out in stage.get("outs") or []:
            if out.get("path") == path and out.get("md5"):
                return str(out["md5"])
    raise ConfigError(f"dvc.lock: no md5 for {path}; run `dvc repro` (or `dvc pull`) first")


def dirty(root: Path) -> list[str]:
    """What differs between the workspace and dvc.lock (``dvc status``), one item per
    stage: [] when everything is as locked."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        status = repo.status()
    items = []
    for stage, changes in sorted(status.items()):
        what = []
        for change in changes if isinstance(changes, list) else [changes]:
            if isinstance(change, dict):
                for kind, detail in change.items():
                    names = ", ".join(sorted(detail)) if isinstance(detail, dict) else detail
                    what.append(f"{kind.replace('changed ', '')} {names}")
            else:
                what.append(str(change))
        items.append(f"{stage} ({'; '.join(what)})")
    return items


def unmasked_personal_data(root: Path, dataset: str) -> dict[str, int]:
    """Personal data left in the dataset: what the card stage counted as unmasked
    (``pii_unmasked`` in metrics/card.json), else, for a card made before it counted, the
    same scan here (:func:`seedtune.core.pii.unmasked_in_row`)."""
    card = root / paths.metrics_file("card")
    metrics = read_json(card) if card.is_file() else {}
    counted = metrics.get(UNMASKED_KEY)
    if isinstance(counted, dict):
        return {k: int(v) for k, v in counted.items() if int(v or 0) > 0}
    found: Counter[str] = Counter()
    for row in iter_jsonl(root / dataset):  # streamed: a dataset may be large
        found.update(pii.unmasked_in_row(row))
    return dict(found)


def plan(root: Path, model_repo: str, dataset_repo: str) -> list[Push]:
    """The two commits, or one line saying why nothing may be pushed."""
    adapter = root / ADAPTER
    adapter_card = adapter / "README.md"
    if not adapter_card.is_file():
        raise ConfigError(f"{ADAPTER}/README.md: the model card is missing; run `dvc repro train`")
    if not (root / CARD).is_file():
        raise ConfigError(f"{CARD}: the dataset card is missing; run `dvc repro card`")
    evaluation = evaluation_of(adapter, root / EVALUATION)
    if evaluation is None or evaluation.get("win_rate") is None:
        raise ConfigError(
            f"{EVALUATION}: has no win rate for this adapter (its card would carry none); "
            "run `dvc repro evaluate`"
        )
    found = unmasked_personal_data(root, DATASET)
    if found:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(found.items()))
        raise ConfigError(
            f"{DATASET}: personal data left unmasked ({kinds}); mask it "
            "(`dvc repro` with the masking fixed) before publishing"
        )
    stale = dirty(root)
    if stale:
        raise ConfigError(
            f"the workspace is not what dvc.lock records: {stale[0]}"
            f"{f' [+{len(stale) - 1} more]' if len(stale) > 1 else ''}; run `dvc repro` "
            "(or `dvc checkout`) and commit dvc.lock before publishing"
        )
    adapter_md5, data_md5 = lock_md5(root, ADAPTER), lock_md5(root, DATASET)
    card = render_published_card(
        adapter_card.read_text(encoding="utf-8"), evaluation, EVALUATION, dataset_repo
    )
    files: dict[str, Path | bytes] = {
        p.relative_to(adapter).as_posix(): p
        for p in sorted(adapter.rglob("*"))
        if p.is_file() and p.name != "README.md"
    }
    files["README.md"] = card.encode()
    described = yaml.safe_dump(
        {"adapter_md5": adapter_md5, "data_md5": data_md5}, sort_keys=False
    ).strip()
    return [
        Push(
            model_repo,
            "model",
            files,
            f"seedtune: {ADAPTER} (dvc.lock md5 {adapter_md5})",
            f"Tuned on {dataset_repo} ({DATASET}, dvc.lock md5 {data_md5}).\n\n{described}",
        ),
        Push(
            dataset_repo,
            "dataset",
            {
                Path(DATASET).name: root / DATASET,
                "README.md": root / CARD,
            },
            f"seedtune: {DATASET} (dvc.lock md5 {data_md5})",
            f"The data {model_repo} was tuned on.\n\n{described}",
        ),
    ]


def push(pushes: list[Push], token: str, private: bool = True) -> list[str]:
    """Create each repository (``private``; an existing one is kept as it is) and commit
    its files in one commit; the commit URLs."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi(token=token)
    urls = []
    for p in pushes:
        try:
            api.create_repo(p.repo_id, repo_type=p.repo_type, private=private, exist_ok=True)
            info = api.create_commit(
                p.repo_id,
                [
                    CommitOperationAdd(path, data if isinstance(data, bytes) else str(data))
                    for path, data in sorted(p.files.items())
                ],
                commit_message=p.message,
                commit_description=p.description,
                repo_type=p.repo_type,
            )
        except OfflineModeIsEnabled:
            raise ConfigError("HF_HUB_OFFLINE is set: publishing needs the Hub; unset it") from None
        except (HfHubHTTPError, RuntimeError) as exc:  # RuntimeError: an LFS upload failed
            cause = exc.__cause__ if isinstance(exc.__cause__, HfHubHTTPError) else exc
            said = str(cause).strip().splitlines()[0][:200] if str(cause).strip() else "no message"
            raise ServiceError(
                f"{p.repo_type} repo {p.repo_id}: the Hub refused ({said})"
            ) from None
        log.info("%s %s: %s", p.repo_type, p.repo_id, info.commit_url)
        urls.append(info.commit_url)
    return urls


def hub_token() -> str:
    """``HF_TOKEN`` (the environment or .env), or one line saying it is needed."""
    from seedtune.core.credentials import get_secret

    return get_secret("HF_TOKEN", "publishing needs a Hugging Face token with write access")
