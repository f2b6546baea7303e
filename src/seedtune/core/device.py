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


def device_caps() -> dict[str, Any]:
    """What this machine supports: cuda (and how many GPUs), mps, bf16, flash-attn, liger, bnb."""
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return {
        "cuda": cuda,
        "mps": mps,
        "gpus": torch.cuda.device_count() if cuda else 0,
        "bf16": cuda and torch.cuda.is_bf16_supported(),
        "flash_attn": cuda and _has("flash_attn"),
        "liger": cuda and _has("liger_kernel"),
        "bnb": cuda and _has("bitsandbytes"),
    }


def pick_device(requested: str = "auto", key: str = "device",
                caps: dict[str, Any] | None = None) -> str:
    """``requested``, or for ``auto`` the best available of cuda, mps, cpu.

    Raises :class:`ConfigError` naming ``key`` (e.g. ``rank.device``) when an explicitly
    requested device is not on this machine.
    """
    caps = caps if caps is not None else device_caps()
    available = {"cpu": True, "cuda": caps["cuda"], "mps": caps["mps"]}
    if requested == "auto":
        return next(d for d in ("cuda", "mps", "cpu") if available[d])
    if not available.get(requested, False):
        raise ConfigError(f"{key}: {requested!r} is not available on this machine; "
                          "use auto or cpu")
    return requested
