"""synthesize stage: the LLM writes grounded Korean answers -> data/instructions.jsonl.

Run: ``dvc repro synthesize``. Each row carries its question's provenance from
data/questions.jsonl (``question_source``, ``seed``, ``post_title``, ``post_link``,
``post_category``) and ``split`` (train/eval), a deterministic hash split of the question
that holds out questions of every source.
"""

from seedtune.core.cache import ResponseCache
from seedtune.core.config import load_params
from seedtune.core.records import read_jsonl, write_jsonl
from seedtune.core.stage import (
    CACHE_DIR,
    check_reject_rate,
    run_stage,
    write_metrics,
    write_rejects,
)
from seedtune.llm.client import LLMClient
from seedtune.llm.costs import usage_metrics
from seedtune.llm.prompts import load_template
from seedtune.synthesis.synthesize import (
    build_requests,
    collect_answers,
    read_provenance,
    split_rows,
)


def main() -> None:
    p = load_params(sections=("llm", "synthesize"))
    ranked = read_jsonl("data/ranked.jsonl")
    questions = read_provenance("data/questions.jsonl")  # before any call is paid for
    template = load_template("synthesize")
    client = LLMClient(p.llm, ResponseCache(CACHE_DIR / "synthesize"), desc="synthesize")
    outcomes = client.run(build_requests(ranked, p.synthesize, template))
    rows, rejects, masked = collect_answers(ranked, outcomes, p.synthesize, p.llm.model,
                                            template.version, questions)
    write_rejects("synthesize", rejects)
    check_reject_rate("synthesize", len(ranked), len(rejects), p.llm.max_reject_rate)
    rows = split_rows(rows, p.synthesize, p.seed)
    write_jsonl("data/instructions.jsonl", rows)
    n_eval = sum(1 for r in rows if r["split"] == "eval")
    write_metrics("synthesize", {"questions": len(ranked), "answers": len(rows),
                                 "rejects": len(rejects), "train": len(rows) - n_eval,
                                 "eval": n_eval, "pii_masked": masked,
                                 **usage_metrics(p.llm.model, client.stats, p.price_table())})


if __name__ == "__main__":
    run_stage("synthesize", main)
