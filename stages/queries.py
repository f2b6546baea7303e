"""queries stage: questions per seed word -> data/questions.jsonl.

Run: ``dvc repro queries``. ``queries.sources``: ``llm`` (the LLM writes questions per seed
word) and/or ``titles`` (real people's Naver cafe and 지식iN titles, rewritten by the LLM);
your own files join them. Keys (llm.api_key_env's, checked first; NAVER_CLIENT_ID/_SECRET
for the titles) are needed only for what data/cache/queries and /titles lack."""

import _guard  # noqa: F401  (one line, not a traceback, outside the venv)

from seedtune.core.cache import ResponseCache
from seedtune.core.config import load_params
from seedtune.core.paths import CACHE_DIR
from seedtune.core.preflight import require_llm_key
from seedtune.core.records import read_lines
from seedtune.core.stage import run_stage
from seedtune.llm.client import LLMClient
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
    queries.write_questions(p, client, llm_reqs, found, seeds, extra, template, title_template)


if __name__ == "__main__":
    run_stage("queries", main)
