"""evaluate stage: an LLM judge compares tuned and base answers on the eval split.

Run: ``dvc repro evaluate``. Writes metrics/evaluate.json (win rate with its bootstrap 95%
interval, both scores, rejects, the judge's cost), reports/evaluation.md,
reports/scores.json (the score distribution plot) and reports/answers.jsonl (both models'
answers); the summary stage makes the headline.
"""

import _guard  # noqa: F401  (one line, not a traceback, outside the venv)

from seedtune.core.cache import ResponseCache
from seedtune.core.config import load_params
from seedtune.core.preflight import require_llm_key
from seedtune.core.records import atomic_write_text, read_jsonl, write_json
from seedtune.core.stage import (
    CACHE_DIR,
    check_reject_rate,
    ignore_peft_checkpointing_warning,
    run_stage,
    stage_metrics,
    write_rejects,
)
from seedtune.evaluation import evaluate as ev
from seedtune.evaluation.judging import report_markdown
from seedtune.evaluation.summary import score_distribution
from seedtune.llm.client import LLMClient
from seedtune.llm.costs import usage_metrics


def main() -> None:
    ignore_peft_checkpointing_warning()  # the adapter goes on the base: expected
    p = load_params(sections=("llm", "train", "evaluate"))
    instructions = read_jsonl("data/instructions.jsonl")
    questions = ev.eval_questions(p, instructions)
    require_llm_key(p.llm.api_key_env, "the judge needs it: checked before generating answers")
    answers = ev.answer_all(p, questions, "models/adapter")
    client = LLMClient(p.llm, ResponseCache(CACHE_DIR / "evaluate"), desc="judge")
    judge = ev.judge_model(p)
    # written even when the stage fails (its reject rate, the judge): what was spent is there
    with stage_metrics("evaluate", lambda: {f"judge_{k}": v for k, v in usage_metrics(
            judge, client.stats, p.price_table()).items()}) as metrics:
        results, rows = ev.judge_all(p, client, questions, answers,
                                     ev.references(instructions, questions))
        write_rejects("evaluate", [{"question": r["question"], "reason": r["reject"]}
                                   for r in rows if not r.get("result")])
        # two verdicts and two scores per question: every judge request counts
        check_reject_rate("evaluate", 4 * len(questions), client.stats.rejects,
                          p.llm.max_reject_rate)
        atomic_write_text("reports/evaluation.md",
                          report_markdown({**results, "judge_model": judge}, rows))
        write_json("reports/scores.json", score_distribution(rows, ev.LABELS))
        ev.write_answers(questions, answers)  # estimate rebuilds the judge's requests from it
        # which adapter was judged: the merged model's card quotes the verdict only for it
        metrics.update(results, adapter_md5=ev.weights_md5("models/adapter"))


if __name__ == "__main__":
    run_stage("evaluate", main)
