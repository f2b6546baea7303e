"""card stage: a dataset card and a browsable page for data/instructions.jsonl.

Run: ``dvc repro card``. Reads data/instructions.jsonl, and whichever of
data/rejects/<stage>.jsonl, metrics/<stage>.json and params.yaml exist; writes
data/instructions.md (a Hugging Face dataset card: YAML metadata, how it was made, fields,
statistics, sources, personal data masked, rejects, licence), data/instructions.html (every
row and reject on one self-contained page, shown a page at a time) and metrics/card.json.
Reads the rows once, streaming them into the page while counting them for the card. Makes
no calls: free to rerun, and the same inputs give the same bytes.
"""

import _guard  # noqa: F401  (one line, not a traceback, outside the venv)

from seedtune.core.paths import (
    DATASET_CARD,
    DATASET_PAGE,
    INSTRUCTIONS,
    METRICS_DIR,
    PARAMS_FILE,
    REJECTS_DIR,
)
from seedtune.core.records import atomic_write_text
from seedtune.core.stage import run_stage, write_metrics
from seedtune.synthesis.browse import write_html
from seedtune.synthesis.card import (
    Tally,
    card_metrics,
    iter_rows,
    read_context,
    render_card,
)


def main() -> None:
    context = read_context(REJECTS_DIR, METRICS_DIR, PARAMS_FILE)
    rows = iter_rows(INSTRUCTIONS)
    tally = Tally()
    write_html(DATASET_PAGE, tally.feed(rows), context.rejects)
    stats = tally.statistics(context.metrics, context.rejects)
    atomic_write_text(DATASET_CARD, render_card(context, stats))
    write_metrics("card", card_metrics(stats))


if __name__ == "__main__":
    run_stage("card", main)
