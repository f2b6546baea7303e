"""train stage: LoRA SFT of train.model on data/instructions.jsonl -> models/adapter/.

Run: ``dvc repro train``. Checkpoints go to models/checkpoints (persisted): an interrupted
run resumes from the last one if the params and data are unchanged.
"""

from pathlib import Path

from seedtune.config import load_params
from seedtune.records import read_jsonl
from seedtune.stage import METRICS_DIR, run_stage
from seedtune.training import check_model, prepare_checkpoints, save_atomically, train


def main() -> None:
    from dvclive import Live

    p = load_params(sections=("train",))
    check_model(p.train)  # fails fast on a bad model path or LoRA targets
    rows = read_jsonl("data/instructions.jsonl")
    ckpt = prepare_checkpoints(Path("models/checkpoints"), p.train, p.seed,
                               Path("data/instructions.jsonl"))
    # dvcyaml=False: metrics and plots are declared in dvc.yaml; dvclive must not edit it
    with Live(dir=str(METRICS_DIR / "train"), dvcyaml=False, save_dvc_exp=False,
              report=None) as live:
        with save_atomically(Path("models/adapter")) as tmp:
            metrics = train(p.train, rows, p.seed, tmp, ckpt, live)
        for key, value in metrics.items():
            live.summary[key] = value


if __name__ == "__main__":
    run_stage("train", main)
