"""rank stage: multilingual-e5 ranks each question's documents -> data/ranked.jsonl.

Run: ``dvc repro rank``.
"""

from seedtune.config import load_params
from seedtune.ranking import load_encoder, rank_rows
from seedtune.records import read_jsonl, write_jsonl
from seedtune.stage import run_stage, write_metrics


def main() -> None:
    p = load_params(sections=("rank",))
    rows = read_jsonl("data/documents.jsonl")
    model = load_encoder(p.rank.model, p.rank.device)
    ranked = rank_rows(model, rows, p.rank.top_k, p.rank.max_gap, p.rank.batch_size)
    write_jsonl("data/ranked.jsonl", ranked)
    with_docs = [r for r in ranked if r["documents"]]
    write_metrics("rank", {
        "questions": len(ranked),
        "with_passages": len(with_docs),
        "mean_top_score": (sum(r["documents"][0]["score"] for r in with_docs) / len(with_docs)
                           if with_docs else 0.0),
        "mean_kept": sum(len(r["documents"]) for r in ranked) / max(1, len(ranked)),
    })


if __name__ == "__main__":
    run_stage("rank", main)
