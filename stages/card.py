"""card stage: a dataset card and a browsable page for data/instructions.jsonl.

Run: ``dvc repro card``. Reads data/instructions.jsonl, and whichever of
data/rejects/<stage>.jsonl, metrics/<stage>.json and params.yaml exist; writes
data/instructions.md (a Hugging Face dataset card: YAML metadata, how it was made, fields,
statistics, sources, personal data masked, rejects, licence), data/instructions.html (every
row and reject on one self-contained page) and metrics/card.json. Makes no calls: free to
rerun, and the same inputs give the same bytes.
"""

from seedtune.core.records import atomic_write_text
from seedtune.core.stage import METRICS_DIR, REJECTS_DIR, run_stage, write_metrics
from seedtune.synthesis.browse import render_html
from seedtune.synthesis.card import (
    DATA_FILE,
    card_metrics,
    dataset_statistics,
    read_inputs,
    render_card,
)


def main() -> None:
    inputs = read_inputs(DATA_FILE, REJECTS_DIR, METRICS_DIR, "params.yaml")
    stats = dataset_statistics(inputs)
    atomic_write_text("data/instructions.md", render_card(inputs, stats))
    atomic_write_text("data/instructions.html", render_html(inputs.rows, inputs.rejects))
    write_metrics("card", card_metrics(stats))


if __name__ == "__main__":
    run_stage("card", main)
