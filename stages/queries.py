"""queries stage: the LLM writes questions per seed word -> data/questions.jsonl.

Run: ``dvc repro queries``. Needs the key named by llm.api_key_env unless every answer is
already in data/cache/queries.
"""

from seedtune.core.cache import ResponseCache
from seedtune.core.config import load_params
from seedtune.core.records import read_lines, write_jsonl
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
from seedtune.synthesis.queries import build_requests, candidates, filter_questions, load_seeds


def main() -> None:
    p = load_params(sections=("llm", "queries"))
    seeds = load_seeds(p.queries)
    extra = [q for f in p.queries.extra_files for q in read_lines(f)]
    template = load_template("queries")
    client = LLMClient(p.llm, ResponseCache(CACHE_DIR / "queries"), desc="queries")
    outcomes = client.run(build_requests(seeds, p.queries, template))
    rejects = [{"seed": o.id, "reason": o.reject} for o in outcomes if o.reject]
    write_rejects("queries", rejects)
    check_reject_rate("queries", len(seeds), len(rejects), p.llm.max_reject_rate)
    kept, counts = filter_questions(
        candidates(outcomes, p.llm.model, template.version, extra), p.queries)
    write_jsonl("data/questions.jsonl", kept)
    write_metrics("queries", {"seeds": len(seeds), **counts, "rejects": len(rejects),
                              **usage_metrics(p.llm.model, client.stats, p.price_table())})


if __name__ == "__main__":
    run_stage("queries", main)
