"""evaluate stage: an LLM judge compares tuned and base answers on the eval split.

Run: ``dvc repro evaluate``. Writes metrics/evaluate.json (win rate with a bootstrap 95%
interval, ties, mean 1-10 scores, rejects) and reports/evaluation.md.
"""

from seedtune.core.cache import ResponseCache
from seedtune.core.config import load_params
from seedtune.core.records import atomic_write_text, read_jsonl
from seedtune.core.stage import (
    CACHE_DIR,
    check_reject_rate,
    run_stage,
    write_metrics,
    write_rejects,
)
from seedtune.evaluation.evaluate import answer_all, eval_questions, judge_all, judge_model
from seedtune.evaluation.judging import report_markdown
from seedtune.llm.client import LLMClient
from seedtune.llm.costs import usage_metrics


def main() -> None:
    p = load_params(sections=("llm", "train", "evaluate"))
    questions = eval_questions(p, read_jsonl("data/instructions.jsonl"))
    answers = answer_all(p, questions, "models/adapter")
    client = LLMClient(p.llm, ResponseCache(CACHE_DIR / "evaluate"), desc="judge")
    summary, rows = judge_all(p, client, questions, answers)
    judge = judge_model(p)
    write_rejects("evaluate", [{"question": r["question"], "reason": r["reject"]}
                               for r in rows if not r.get("result")])
    # two verdicts and two scores per question: every judge request counts
    check_reject_rate("evaluate", 4 * len(questions), client.stats.rejects,
                      p.llm.max_reject_rate)
    atomic_write_text("reports/evaluation.md",
                      report_markdown({**summary, "judge_model": judge}, rows))
    write_metrics("evaluate", {**summary, **{f"judge_{k}": v for k, v in
                                            usage_metrics(judge, client.stats,
                                                          p.price_table()).items()}})


if __name__ == "__main__":
    run_stage("evaluate", main)
