"""queries stage: questions per seed word -> data/questions.jsonl.

Run: ``dvc repro queries``. ``queries.sources``: ``llm`` (the LLM writes questions per seed
word) and/or ``titles`` (real people's Naver cafe and 지식iN titles, rewritten by the LLM);
your own files join them. Keys (llm.api_key_env's, checked first; NAVER_CLIENT_ID/_SECRET
for the titles) are needed only for what data/cache/queries and /titles lack."""

import _guard  # noqa: F401  (one line, not a traceback, outside the venv)

from seedtune.core.cache import ResponseCache
from seedtune.core.config import load_params
from seedtune.core.paths import QUESTIONS
from seedtune.core.preflight import require_llm_key
from seedtune.core.records import read_lines, write_jsonl
from seedtune.core.stage import (
    CACHE_DIR,
    check_reject_rate,
    run_stage,
    stage_metrics,
    write_rejects,
)
from seedtune.llm.client import LLMClient
from seedtune.llm.costs import usage_metrics
from seedtune.synthesis import queries, titles
from seedtune.tasks import queries as queries_task
from seedtune.tasks import titles as titles_task


def main() -> None:
    p = load_params(sections=("llm", "queries"))
    cfg = p.queries
    seeds = queries.load_seeds(cfg)
    extra = [line for f in cfg.extra_files for line in read_lines(f)]
    template, title_template = queries_task.template(), titles_task.template()
    llm_reqs = queries_task.build_requests(seeds, cfg, template) if "llm" in cfg.sources else []
    client = LLMClient(p.llm, ResponseCache(CACHE_DIR / "queries"), desc="queries")
    if client.pending(llm_reqs):  # before the titles' Naver calls, not after them
        require_llm_key(p.llm.api_key_env, f"API key for {p.llm.base_url}")
    found = (
        titles.fetch_naver(seeds, cfg.titles, ResponseCache(CACHE_DIR / "titles"))
        if "titles" in cfg.sources
        else titles.TitleSet()
    )
    # written even when the stage fails: what was spent is there to read
    with stage_metrics(
        "queries", lambda: usage_metrics(p.llm.model, client.stats, p.price_table())
    ) as metrics:
        outcomes = client.run(
            llm_reqs
            + titles_task.build_requests(found.batches, cfg.forms, cfg.titles, title_template)
        )
        llm_out = outcomes[: len(llm_reqs)]
        judged = titles_task.verdicts(
            found.batches, outcomes[len(llm_reqs) :], p.llm.model, title_template.version
        )
        rows = queries_task.candidates(llm_out, p.llm.model, template.version, extra)
        rows += judged.rows
        kept, counts, drops = queries.filter_questions(rows, cfg)
        failed = queries_task.failures(llm_out)
        metrics.update(
            {
                "seeds": len(seeds),
                **counts,
                "rejects": len(failed) + judged.lost,
                **queries.source_metrics(rows, kept),
                **titles.metrics(found, judged),
            }
        )
        write_rejects("queries", failed + found.rejects + judged.rejects + drops)
        check_reject_rate(
            "queries", len(llm_reqs) + found.sent, len(failed) + judged.lost, p.llm.max_reject_rate
        )
        queries.require_kept(kept, counts, drops, cfg)  # never an empty file that looks done
        write_jsonl(QUESTIONS, kept)


if __name__ == "__main__":
    run_stage("queries", main)
