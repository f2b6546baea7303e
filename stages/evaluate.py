"""evaluate stage: an LLM judge compares tuned and base answers on the eval split.

Run: ``dvc repro evaluate``. Writes metrics/evaluate.json (win rate with its bootstrap 95%
interval, both scores, rejects, the judge's cost), reports/evaluation.md,
reports/scores.json (the score distribution plot) and reports/answers.jsonl (both models'
answers); the summary stage makes the headline.
"""

import _guard  # noqa: F401  (one line, not a traceback, outside the venv)

from seedtune.core.cache import ResponseCache
from seedtune.core.config import load_params
from seedtune.core.paths import ADAPTER, CACHE_DIR, INSTRUCTIONS
from seedtune.core.preflight import require_llm_key
from seedtune.core.records import read_jsonl
from seedtune.core.stage import ignore_peft_checkpointing_warning, run_stage
from seedtune.evaluation import evaluate as ev
from seedtune.llm.client import LLMClient


def main() -> None:
    ignore_peft_checkpointing_warning()  # the adapter goes on the base: expected
    p = load_params(sections=("llm", "train", "evaluate"))
    instructions = read_jsonl(INSTRUCTIONS)
    questions = ev.eval_questions(p, instructions)
    require_llm_key(p.llm.api_key_env, "the judge needs it: checked before generating answers")
    # from generate.base_url's server when set (answers cached beside the judge's), else here
    gen = ev.generate_all(p, questions, ADAPTER, CACHE_DIR / "evaluate" / "answers")
    client = LLMClient(p.llm, ResponseCache(CACHE_DIR / "evaluate"), desc="judge")
    ev.judge_and_report(p, client, questions, gen.answers, instructions, gen.info)


if __name__ == "__main__":
    run_stage("evaluate", main)
