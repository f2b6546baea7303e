"""synthesize stage: the LLM writes grounded Korean answers -> data/instructions.jsonl.

Run: ``dvc repro synthesize``. Each row carries its question's provenance from
data/questions.jsonl (``question_source``, ``seed``, ``post_title``, ``post_link``,
``post_category``) and ``split`` (train/eval), a deterministic hash split of the question
that holds out questions of every source.
"""

import _guard  # noqa: F401  (one line, not a traceback, outside the venv)

from seedtune.core.cache import ResponseCache
from seedtune.core.config import load_params
from seedtune.core.paths import CACHE_DIR, INSTRUCTIONS, QUESTIONS, RANKED, rejects_file
from seedtune.core.records import iter_jsonl
from seedtune.core.stage import run_stage, stage_metrics
from seedtune.llm.client import LLMClient
from seedtune.llm.costs import usage_metrics
from seedtune.synthesis.synthesize import Answers, read_provenance, synthesize
from seedtune.tasks.synthesize import template as synthesize_template


def main() -> None:
    p = load_params(sections=("llm", "synthesize"))
    questions = read_provenance(QUESTIONS)  # before any call is paid for
    template = synthesize_template()
    client = LLMClient(p.llm, ResponseCache(CACHE_DIR / "synthesize"), desc="synthesize")
    answers = Answers(p.synthesize, p.llm.model, template.version, questions)
    # written even when the stage fails (its reject rate, the LLM): what was spent is there
    with stage_metrics(
        "synthesize",
        answers.metrics,
        lambda: usage_metrics(p.llm.model, client.stats, p.price_table()),
    ) as metrics:
        metrics.update(
            synthesize(
                iter_jsonl(RANKED),
                client,
                p.synthesize,
                template,
                answers,
                p.seed,
                INSTRUCTIONS,
                rejects_file("synthesize"),
                p.llm.max_reject_rate,
            )
        )


if __name__ == "__main__":
    run_stage("synthesize", main)
