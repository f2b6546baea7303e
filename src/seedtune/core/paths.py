"""Where each artifact of the pipeline lives, relative to the workspace (the repository root,
where dvc.yaml runs every stage): the one place these paths are spelled in code.

dvc.yaml declares the same paths as outs and deps (and DESIGN.md fixes them: a workspace
made before keeps working). Files are strings, as messages, argparse defaults and the
dataset card show them; directories are :class:`~pathlib.Path`, as stages join below them.
"""

from __future__ import annotations

from pathlib import Path

#: What compose writes from conf/: the params every stage reads.
PARAMS_FILE = "params.yaml"
#: What conf/ alone composes to (compose tells an experiment's values from conf/ edits).
PARAMS_CONF_FILE = "params.conf.yaml"
CONF_DIR = "conf"

QUESTIONS = "data/questions.jsonl"
DOCUMENTS = "data/documents.jsonl"
PAGES = "data/pages.jsonl"
RANKED = "data/ranked.jsonl"
#: The dataset (also its path in a Hub dataset repo), its card and its browsable page.
INSTRUCTIONS = "data/instructions.jsonl"
DATASET_CARD = "data/instructions.md"
DATASET_PAGE = "data/instructions.html"

#: The trained LoRA adapter (with tokenizer, chat template and model card).
ADAPTER = "models/adapter"
#: Checkpoints for resuming a training run: git-ignored scratch, not a DVC output.
CHECKPOINTS = "models/checkpoints"
#: ``seedtune export``'s merged model: a local artifact, rebuilt from the adapter.
MERGED = "models/merged"

EVALUATION_REPORT = "reports/evaluation.md"
SCORES = "reports/scores.json"
#: What evaluate judged: ``seedtune estimate`` rebuilds the judge's requests from it.
ANSWERS = "reports/answers.jsonl"

CACHE_DIR = Path("data/cache")
REJECTS_DIR = Path("data/rejects")
METRICS_DIR = Path("metrics")


def metrics_file(stage: str) -> Path:
    """metrics/<stage>.json: a stage's accounting (summary's is the headline)."""
    return METRICS_DIR / f"{stage}.json"


def rejects_file(stage: str) -> Path:
    """data/rejects/<stage>.jsonl: what a stage could not turn into output, and why."""
    return REJECTS_DIR / f"{stage}.jsonl"
