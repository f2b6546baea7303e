"""Which device and kernels this machine has: the one place that asks torch.

``device_caps`` feeds training validation and generation; ``pick_device`` resolves a
device setting (``auto``, ``cuda``, ``mps``, ``cpu``) for the encoder and generation.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from seedtune.core.errors import ConfigError


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _flex_available() -> bool:
    try:
        from torch.nn.attention import flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


def matmul_flops(n: int = 8192, reps: int = 10) -> float | None:
    """This process's GPU's measured dense bf16 matrix rate (FLOP/s), the MFU denominator;
    None without CUDA.

    Measured, not read off a spec sheet: one name covers cards that differ (an H100 SXM
    reaches about 800 of its 989 TFLOP/s, a PCIe or power-capped one less), and what the
    card really does is the fair measure of how well training uses it. About a second.
    """
    import time

    import torch

    if not torch.cuda.is_available():
        return None
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):  # clocks up, cuBLAS picks its kernel
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def device_caps() -> dict[str, Any]:
    """What this machine supports: cuda (how many GPUs, which), mps, bf16, attention kernels
    (flash-attn 2/3, flex), liger, bnb."""
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return {
        "cuda": cuda,
        "mps": mps,
        "gpus": torch.cuda.device_count() if cuda else 0,
        "bf16": cuda and torch.cuda.is_bf16_supported(),
        "flash_attn": cuda and _has("flash_attn"),
        "flash_attn3": cuda and _has("flash_attn_interface"),
        "flex": cuda and _flex_available(),
        "liger": cuda and _has("liger_kernel"),
        "bnb": cuda and _has("bitsandbytes"),
    }


def pick_device(
    requested: str = "auto", key: str = "device", caps: dict[str, Any] | None = None
) -> str:
    """``requested``, or for ``auto`` the best available of cuda, mps, cpu.

    Raises :class:`ConfigError` naming ``key`` (e.g. ``rank.device``) when an explicitly
    requested device is not on this machine.
    """
    caps = caps if caps is not None else device_caps()
    available = {"cpu": True, "cuda": caps["cuda"], "mps": caps["mps"]}
    if requested == "auto":
        return next(d for d in ("cuda", "mps", "cpu") if available[d])
    if not available.get(requested, False):
        raise ConfigError(f"{key}: {requested!r} is not available on this machine; use auto or cpu")
    return requested
