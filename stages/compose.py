"""compose stage: conf/ -> params.yaml for plain `dvc repro`.

Run: ``dvc repro compose`` (or ``python stages/compose.py``). Inside ``dvc exp run`` DVC has
already composed params.yaml with your -S overrides, so this leaves it alone.
"""

import _guard  # noqa: F401  (one line, not a traceback, outside the venv)

from seedtune.core.compose import write_params
from seedtune.core.paths import CONF_DIR, PARAMS_FILE
from seedtune.core.preflight import warn_missing_keys
from seedtune.core.stage import run_stage


def main() -> None:
    write_params(PARAMS_FILE, CONF_DIR)
    warn_missing_keys()  # the first stage of every run: say now what a later one will lack


if __name__ == "__main__":
    run_stage("compose", main)
