"""summary stage: the headline of the run -> metrics/summary.json.

Run: ``dvc repro summary`` (last in the DAG). Reads metrics/{queries,synthesize,train,
evaluate}.json and writes the win rate with its interval, both scores, eval loss, train
tokens/s and MFU, and the cost of every LLM answer behind the run. Costs nothing to rerun.
"""

import _guard  # noqa: F401  (one line, not a traceback, outside the venv)

from seedtune.core.paths import METRICS_DIR, metrics_file
from seedtune.core.records import write_json
from seedtune.core.stage import run_stage
from seedtune.evaluation.summary import SOURCES, headline, stage_metrics


def main() -> None:
    write_json(metrics_file("summary"), headline(stage_metrics(METRICS_DIR, SOURCES)))


if __name__ == "__main__":
    run_stage("summary", main)
