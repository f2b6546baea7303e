"""Training metrics to dvclive: train/eval loss, learning rate and tokens/s per optimizer step.

The stage opens ``Live(dir="metrics/train", dvcyaml=False)``: the metrics file and plots are
declared in dvc.yaml, so ``dvc metrics show``, ``dvc plots show`` and ``dvc exp show`` see
them and dvclive never edits dvc.yaml. Only the main process logs.
"""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback

# Trainer log key -> dvclive metric name (plots land in metrics/train/plots/metrics/<name>.tsv)
METRICS = {
    "loss": "train/loss",
    "eval_loss": "eval/loss",
    "learning_rate": "train/learning_rate",
    "grad_norm": "train/grad_norm",
}


#: Optimizer steps at the start of a run left out of its tokens/s: the first compiles
#: flex_attention's kernels (and torch.compile's graphs), the next shapes recompile them for
#: dynamic shapes; bench/gpu_train.py leaves out the same two.
WARMUP_STEPS = 2


class Throughput(TrainerCallback):
    """Training tokens per second at speed: the tokens TRL counted (``num_tokens``; no pad
    tokens with padding-free packing) between the first training log after
    :data:`WARMUP_STEPS` steps of this run and the last one, over that wall time less the
    time spent evaluating. A run too short for that window is measured from its start. A
    resumed run counts only its own part."""

    def __init__(self) -> None:
        self._step0 = 0
        self._eval_s = 0.0
        # (time, tokens counted, eval seconds so far) at the start, first window log, last log
        self._start: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self._from: tuple[float, float, float] | None = None
        self._last: tuple[float, float, float] | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Start the clock; a resumed checkpoint's tokens and steps are not this run's."""
        counted = [float(e["num_tokens"]) for e in state.log_history if "num_tokens" in e]
        self._step0, self._eval_s = state.global_step, 0.0
        self._start = (time.perf_counter(), counted[-1] if counted else 0.0, 0.0)
        self._from = self._last = None

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        """Mark each training log (an eval log, or the end-of-run summary, has no ``loss``)
        and keep the time spent evaluating."""
        logs = logs or {}
        self._eval_s += float(logs.get("eval_runtime", 0.0))
        if "num_tokens" in logs and "loss" in logs:
            mark = (time.perf_counter(), float(logs["num_tokens"]), self._eval_s)
            if self._from is None and state.global_step >= self._step0 + WARMUP_STEPS:
                self._from = mark
            self._last = mark

    def tokens_per_s(self) -> float | None:
        """Tokens per second of training, None when nothing was measured."""
        if self._last is None:
            return None
        first = self._from if self._from not in (None, self._last) else self._start
        tokens = self._last[1] - first[1]
        seconds = (self._last[0] - first[0]) - (self._last[2] - first[2])
        return round(tokens / seconds, 1) if seconds > 0 and tokens > 0 else None


class LiveCallback(TrainerCallback):
    """Logs :data:`METRICS` and training tokens/s to a dvclive ``Live`` against the global step.

    tokens/s is TRL's running ``num_tokens`` (every token the model processed; padding-free
    packing has no pad tokens) over the wall time between two training logs, minus the time
    spent evaluating in between.
    """

    def __init__(self, live: Any) -> None:
        self.live = live
        self._t0 = time.perf_counter()
        self._tokens0 = 0.0
        self._eval_s = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Replay the history a resumed checkpoint carries, so the plots cover the whole run."""
        if state.is_world_process_zero:
            for entry in state.log_history:
                self._log(entry, int(entry.get("step", 0)))
            self._t0 = time.perf_counter()
            self._tokens0, self._eval_s = 0.0, 0.0

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        """Log this step's figures; derive tokens/s from TRL's running token count."""
        if not state.is_world_process_zero or not logs:
            return
        self._log(logs, state.global_step)
        self._eval_s += float(logs.get("eval_runtime", 0.0))
        tokens = float(logs.get("num_tokens", 0.0))
        now = time.perf_counter()
        busy = now - self._t0 - self._eval_s
        if "loss" in logs and tokens > self._tokens0 and busy > 0:
            self.live.log_metric("train/tokens_per_s", (tokens - self._tokens0) / busy)
            self._t0, self._tokens0, self._eval_s = now, tokens, 0.0

    def _log(self, logs: dict[str, Any], step: int) -> None:
        self.live.step = step
        for key, name in METRICS.items():
            if key in logs:
                self.live.log_metric(name, float(logs[key]))
