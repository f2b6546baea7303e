"""Where one optimizer step's time goes: device time by kind of kernel, and the idle rest.

Used by ``bench/gpu_train.py`` on the ``defaults`` setting: one extra optimizer step after
the timed ones runs under ``torch.profiler``, so the profiler's own overhead never touches
the tokens/s figures. On CUDA the kernels' device time is summed by kind (matmul, attention,
the LM head's loss kernels, optimizer, copies, other elementwise); whatever part of the
step's wall time no kernel ran is ``idle``: the GPU waiting on Python, launches or host
syncs. On a CPU (``--tiny``) the same table is made from the aten ops' own CPU time, so the
code path is tested there.
"""

from __future__ import annotations

import re
import time
from typing import Any

#: Kernel (or aten op) name -> kind, first match wins. Attention first: sdpa's
#: memory-efficient kernels are named fmha_cutlass*; TRL's chunked log-prob Triton kernels are
#: plain _forward_kernel/_backward_kernel (Liger's carry a prefix); H100 cuBLAS kernels are
#: nvjet_* or sm90_xmma_gemm_*.
KINDS: list[tuple[str, re.Pattern[str]]] = [
    ("attention", re.compile(r"flex|attention|fmha|flash|attn", re.I)),
    ("lm head loss", re.compile(r"^_(forward|backward)_kernel$|logprob", re.I)),
    ("optimizer", re.compile(r"adam|multi_tensor|foreach", re.I)),
    (
        "matmul",
        re.compile(
            r"gemm|nvjet|xmma|cutlass|cublas|aten::(add|b)?mm\b|"
            r"aten::addmm|triton_tem_fused_mm|splitk",
            re.I,
        ),
    ),
    ("copies and casts", re.compile(r"copy|memcpy|convert", re.I)),
]


def why(exc: BaseException) -> str:
    """An exception as one short line for a report row (``seedtune.core.errors.one_line``)."""
    from seedtune.core.errors import one_line

    return f"{type(exc).__name__}: {one_line(exc)[:120]}"


def kind_of(name: str) -> str:
    """The kind of one kernel or aten op, ``other elementwise`` when no pattern matches."""
    return next((kind for kind, pattern in KINDS if pattern.search(name)), "other elementwise")


def breakdown(events: Any, wall_ms: float, cuda: bool) -> dict[str, float]:
    """ms per kind from ``prof.key_averages()``, plus ``idle`` and ``wall``.

    CUDA: each kernel's self device time (kernels on one stream do not overlap). CPU: each
    aten op's self CPU time; Python between ops counts as idle there.
    """
    out: dict[str, float] = {}
    for e in events:
        if cuda:
            # kernels, memcpy and memset, the device's own events; were CPU ops recorded too,
            # their self device time would count their kernels a second time
            if "CUDA" not in str(getattr(e, "device_type", "CUDA")):
                continue
            ms = e.self_device_time_total / 1e3
        elif e.key.startswith("aten::"):
            ms = e.self_cpu_time_total / 1e3
        else:
            continue
        if ms <= 0:
            continue
        kind = kind_of(e.key)
        out[kind] = out.get(kind, 0.0) + ms
    busy = sum(out.values())
    out["idle"] = max(0.0, wall_ms - busy)
    out["wall"] = wall_ms
    return out


def make_callback(step: int, cuda: bool, sink: dict[str, Any]) -> Any:
    """A TrainerCallback that profiles optimizer step ``step`` (1-based) and puts the
    breakdown into ``sink["profile"]`` (or the reason it failed into ``sink["error"]``)."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback

    activities = [ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    class StepProfile(TrainerCallback):
        prof: Any = None
        t0 = 0.0

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step + 1 != step:  # global_step counts finished steps
                return
            sync()
            try:
                self.prof = profile(activities=activities)
                self.prof.__enter__()
            except Exception as exc:  # noqa: BLE001 - the step still trains, unprofiled
                sink["error"] = why(exc)
                self.prof = None
            self.t0 = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.prof is None:
                return
            sync()
            wall_ms = (time.perf_counter() - self.t0) * 1e3
            self.prof.__exit__(None, None, None)
            try:
                sink["profile"] = breakdown(self.prof.key_averages(), wall_ms, cuda)
            except Exception as exc:  # noqa: BLE001 - a report line, not the benchmark
                sink["error"] = why(exc)
            self.prof = None

    return StepProfile()


def profile_table(setting: str, parts: dict[str, float], tokens: float | None) -> str:
    """The breakdown as a small table: ms per step and share of the step's wall time."""
    wall = parts["wall"]
    lines = [
        f"one optimizer step of `{setting}` under torch.profiler"
        + (f" ({tokens:.0f} real tokens)" if tokens else "")
        + ":",
        f"{'kind':<20} {'ms':>8} {'share':>6}",
    ]
    kinds = sorted((k for k in parts if k not in ("idle", "wall")), key=lambda k: -parts[k])
    for kind in [*kinds, "idle"]:
        lines.append(f"{kind:<20} {parts[kind]:>8.1f} {parts[kind] / wall:>6.1%}")
    lines.append(f"{'step wall time':<20} {wall:>8.1f}")
    return "\n".join(lines)
