"""evaluate stage: an LLM judge compares tuned and base answers on the eval split.

Run: ``dvc repro evaluate``. Writes metrics/evaluate.json (win rate with a bootstrap 95%
interval, ties, mean 1-10 scores, rejects) and reports/evaluation.md.
"""

from seedtune.cache import ResponseCache
from seedtune.config import load_params
from seedtune.costs import usage_metrics
from seedtune.evaluation import answer_all, eval_questions, judge_all, judge_model
from seedtune.judging import report_markdown
from seedtune.llm import LLMClient
from seedtune.records import atomic_write_text, read_jsonl
from seedtune.stage import CACHE_DIR, run_stage, write_metrics, write_rejects


def main() -> None:
    p = load_params(sections=("llm", "train", "evaluate"))
    questions = eval_questions(p, read_jsonl("data/instructions.jsonl"))
    answers = answer_all(p, questions, "models/adapter")
    client = LLMClient(p.llm, ResponseCache(CACHE_DIR / "evaluate"), desc="judge")
    summary, rows = judge_all(p, client, questions, answers)
    judge = judge_model(p)
    write_rejects("evaluate", [{"question": r["question"], "reason": r["reject"]}
                               for r in rows if not r.get("result")])
    atomic_write_text("reports/evaluation.md",
                      report_markdown({**summary, "judge_model": judge}, rows))
    write_metrics("evaluate", {**summary, **{f"judge_{k}": v for k, v in
                                            usage_metrics(judge, client.stats,
                                                          p.price_table()).items()}})


if __name__ == "__main__":
    run_stage("evaluate", main)
