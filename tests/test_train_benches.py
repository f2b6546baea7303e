"""The training benches' own logic: the GPU step profile's kernel kinds and the GPU
bench's tiny mode."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest


def test_gpu_profile_sorts_h100_kernels_by_kind() -> None:
    """Kernel names as torch.profiler reports them on an H100 (cuBLAS nvjet/sm90 gemms,
    sdpa's cutlass fmha, flex's Triton template, TRL's chunked log-prob kernels, fused
    AdamW, casts) land in the kind the bench's step profile reports them under."""
    from support import bench_module

    profile = bench_module("step_profile")
    breakdown, kind_of = profile.breakdown, profile.kind_of
    names = {
        "nvjet_tst_128x256_64x4_2x1_v_bz_coopA_TNN": "matmul",
        "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_cublas": "matmul",
        "triton_tem_fused_mm_4": "matmul",
        "fmha_cutlassB_bf16_aligned_64x64_k128_sm80": "attention",
        "triton_tem_fused_flex_attention_0": "attention",
        "flash_fwd_kernel": "attention",
        "_forward_kernel": "lm head loss",
        "_backward_kernel": "lm head loss",
        "_rms_norm_forward_kernel": "other elementwise",  # Liger's, not the loss
        "void at::native::(anonymous namespace)::multi_tensor_apply_kernel<FusedAdamMathFunctor>": "optimizer",  # noqa: E501
        "void at::native::unrolled_elementwise_kernel<direct_copy_kernel_cuda>": "copies and casts",
        "Memcpy HtoD (Pageable -> Device)": "copies and casts",
        "void at::native::vectorized_elementwise_kernel<4, GeluCUDAKernelImpl>": "other elementwise",  # noqa: E501
        "aten::mm": "matmul",
        "aten::addmm": "matmul",
        "aten::_scaled_dot_product_flash_attention_for_cpu": "attention",
        "aten::mul": "other elementwise",
    }
    assert {name: kind_of(name) for name in names} == names
    # CUDA: kernels' device time by kind; a CPU op's device time (its kernels again) is not
    # counted twice; the rest of the step's wall time is idle
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    def event(key: str, ms: float, device: Any) -> Any:
        return SimpleNamespace(
            key=key, self_device_time_total=ms * 1e3, device_type=device, self_cpu_time_total=0.0
        )

    parts = breakdown(
        [
            event("nvjet_tst_128x256", 60.0, DeviceType.CUDA),
            event("flash_fwd_kernel", 10.0, DeviceType.CUDA),
            event("aten::mm", 60.0, DeviceType.CPU),
        ],
        wall_ms=100.0,
        cuda=True,
    )
    assert parts == {"matmul": 60.0, "attention": 10.0, "idle": 30.0, "wall": 100.0}


@pytest.mark.slow
def test_gpu_bench_tiny_mode_prints_every_setting(tmp_path: Path) -> None:
    """bench/gpu_train.py --tiny (issue 15's CPU smoke test): every setting's code path runs
    and the table carries tokens/s, MFU, tokens per micro-batch, peak memory and both ratios;
    without --tiny on a machine with no CUDA it is one line and status 2."""
    import subprocess

    from support import ROOT

    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")}
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/gpu_train.py"),
            "--tiny",
            "--steps",
            "2",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    head = next(line for line in proc.stdout.splitlines() if line.startswith("setting")).split()
    for column in ("tokens/s", "MFU", "tok/µb", "peak", "tutorial"):
        assert column in head
    results = json.loads(out.read_text())["results"]
    assert [r["setting"] for r in results] == [
        "tutorial",
        "defaults",
        "defaults_unfused",
        "defaults_peft",
        "defaults_b8",
        "defaults_eq",
        "compile",
    ]
    assert all(r["tokens_per_s"] > 0 and r["steps"] == 2 for r in results)
    assert [r["setting"] for r in results if r["peft_casts"]] == ["tutorial", "defaults_peft"]
    assert [r["setting"] for r in results if r["peft_add"]] == [
        "tutorial",
        "defaults_unfused",
        "defaults_peft",
    ]
    # the defaults' extra, untimed step under the profiler: time by kind, the idle rest
    profile = next(r for r in results if r["setting"] == "defaults")["profile"]
    assert profile["matmul"] > 0 and profile["attention"] > 0 and profile["idle"] >= 0
    kinds = sum(v for k, v in profile.items() if k != "wall")
    assert kinds == pytest.approx(max(profile["wall"], kinds - profile["idle"]))
    assert "one optimizer step of `defaults` under torch.profiler" in proc.stdout
    assert all("profile" not in r for r in results if r["setting"] != "defaults")
    # defaults_eq: one packed row as long as the tutorial's real tokens per micro-batch
    by = {r["setting"]: r for r in results}
    assert by["defaults_eq"]["max_length"] == round(by["tutorial"]["tokens_per_microbatch"])
    assert by["defaults_eq"]["tokens_per_microbatch"] <= by["defaults_eq"]["max_length"]
    assert by["defaults_b8"]["batch"] == "8x1"
    budget = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/gpu_train.py"),
            "--tiny",
            "--steps",
            "1",
            "--budget-s",
            "0",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert budget.returncode == 1 and budget.stdout.count("skipped: --budget-s 0") == 7
    import torch

    if not torch.cuda.is_available():
        nocuda = subprocess.run(
            [sys.executable, str(ROOT / "bench/gpu_train.py")],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert nocuda.returncode == 2
        assert nocuda.stderr.strip().splitlines() == [
            "gpu_train: error: needs a CUDA GPU (torch.cuda.is_available() is False); "
            "run it on a GPU machine"
        ]
