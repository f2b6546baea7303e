"""``seedtune publish``: the adapter and the dataset, each with its card, to the Hub.

Run: ``seedtune publish --model-repo OWNER/NAME --dataset-repo OWNER/NAME [--public]``.
Pushes models/adapter/ with its model card (base model, data version, params, metrics, the
judge's win rate with its interval, intended use, the base's licence) to the model repo and
data/instructions.jsonl with the card stage's dataset card to the dataset repo: private
unless ``--public``, one commit each, the dvc.lock md5 in its message, ``HF_TOKEN``'s
account. Refuses (one line) when a card is missing, personal data is left unmasked, or the
workspace is not what dvc.lock records (:mod:`seedtune.training.publish`).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from seedtune.core.errors import ConfigError
from seedtune.training.publish import hub_token, plan, push

#: What the Hub takes as a repository id here: OWNER/NAME.
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")


def _repo(flag: str, value: str) -> str:
    if not REPO_ID.fullmatch(value) or ".." in value or value.endswith((".git", ".")):
        raise ConfigError(f"{flag} {value!r}: expected OWNER/NAME (letters, digits, - _ .)")
    return value


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``seedtune publish``."""
    ap = argparse.ArgumentParser(prog="seedtune publish", description=__doc__.splitlines()[0])
    ap.add_argument("--model-repo", required=True, help="OWNER/NAME of the adapter's repo")
    ap.add_argument("--dataset-repo", required=True, help="OWNER/NAME of the dataset's repo")
    ap.add_argument("--public", action="store_true", help="create the repos public")
    args = ap.parse_args(argv)
    model_repo = _repo("--model-repo", args.model_repo)
    dataset_repo = _repo("--dataset-repo", args.dataset_repo)
    token = hub_token()  # before the checks: a run without one fails at once
    pushes = plan(Path("."), model_repo, dataset_repo)
    for p, url in zip(pushes, push(pushes, token, private=not args.public), strict=True):
        print(f"{p.repo_type} {p.repo_id}: {url}")
    return 0
