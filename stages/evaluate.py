"""evaluate stage: an LLM judge compares tuned and base answers on the eval split.

Run: ``dvc repro evaluate``. Writes metrics/evaluate.json and reports/evaluation.md.
"""

from seedtune.cache import ResponseCache
from seedtune.config import load_params
from seedtune.costs import usage_metrics
from seedtune.generation import generate_answers, load_model
from seedtune.judging import bootstrap_ci, build_requests, combine, report_markdown, win_rate
from seedtune.llm import LLMClient
from seedtune.prompts import load_template
from seedtune.records import atomic_write_text, read_jsonl
from seedtune.stage import CACHE_DIR, run_stage, write_metrics, write_rejects


def main() -> None:
    p = load_params(sections=("llm", "train", "evaluate"))
    ev = p.evaluate
    rows = [r for r in read_jsonl("data/instructions.jsonl") if r["split"] == "eval"]
    questions = [r["question"] for r in rows][: ev.max_questions]
    name, adapter = p.train.model.name_or_path, "models/adapter"
    answers = {}
    for label, adapter_dir in (("base", None), ("tuned", adapter)):
        model, tok = load_model(name, adapter_dir, p.train.model.revision)
        answers[label] = generate_answers(model, tok, questions, ev.max_new_tokens,
                                          ev.batch_size, desc=f"answers ({label})")
        del model
    judge = ev.judge_model or p.llm.model
    client = LLMClient(p.llm, ResponseCache(CACHE_DIR / "evaluate"), desc="judge")
    outcomes = client.run(build_requests(questions, answers["tuned"], answers["base"],
                                         load_template("judge"), judge))
    judged = combine(outcomes, len(questions))
    results = [j["result"] for j in judged if j["result"]]
    lo, hi = bootstrap_ci(results, ev.bootstrap, p.seed)
    summary = {"win_rate": win_rate(results), "win_rate_ci_low": lo, "win_rate_ci_high": hi,
               "n": len(results), "wins": results.count("win"), "ties": results.count("tie"),
               "losses": results.count("loss"), "rejects": len(judged) - len(results),
               "judge_model": judge}
    write_rejects("evaluate", [{"question": q, "reason": j["reject"]}
                               for q, j in zip(questions, judged, strict=True) if not j["result"]])
    per_question = [{"question": q, "tuned": t, "base": b, **j} for q, t, b, j in
                    zip(questions, answers["tuned"], answers["base"], judged, strict=True)]
    atomic_write_text("reports/evaluation.md", report_markdown(summary, per_question))
    write_metrics("evaluate", {**{k: v for k, v in summary.items() if k != "judge_model"},
                               **{f"judge_{k}": v for k, v in
                                  usage_metrics(judge, client.stats, p.price_table()).items()}})


if __name__ == "__main__":
    run_stage("evaluate", main)
