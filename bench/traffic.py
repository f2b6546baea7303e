"""Memory traffic by kernel: the bytes each aten op reads and writes, counted as it runs.

On a GPU, an op outside the matmuls is bound by memory bandwidth: its time is about the bytes
it reads and writes over the card's bandwidth (3.35 TB/s on an H100 SXM). Those bytes do not
depend on the device, so a run on a CPU counts what a GPU would move, op for op, and a change
that removes passes over wide tensors shows up as fewer bytes before any GPU measures it.

:func:`byte_counter` makes a ``TorchDispatchMode``: every aten op that reaches the kernels
(views, which move nothing, are skipped) adds the size of its distinct tensor inputs and
outputs under its name. It counts the backward pass too, which runs on the calling thread
on a CPU. It counts one read or write per tensor an op touches: fused kernels that read a
tensor twice, and caches, are beyond it.
"""

from __future__ import annotations

import collections
from typing import Any

#: ops that make views or metadata, or fill fresh memory: no traffic worth counting
VIEWS = frozenset(
    {
        "view",
        "_unsafe_view",
        "as_strided",
        "t",
        "transpose",
        "expand",
        "permute",
        "unsqueeze",
        "squeeze",
        "slice",
        "select",
        "alias",
        "detach",
        "reshape",
        "split",
        "split_with_sizes",
        "unbind",
        "chunk",
        "narrow",
        "_reshape_alias",
        "lift_fresh",
        "empty",
        "empty_like",
        "empty_strided",
        "new_empty",
        "new_empty_strided",
        "_local_scalar_dense",
        "is_same_size",
        "_has_compatible_shallow_copy_type",
        "set_",
        "resize_",
    }
)
MATMULS = frozenset({"mm", "addmm", "addmm_", "bmm", "baddbmm"})


def _fp32_matmul(func: Any, args: tuple, kwargs: dict) -> Any:
    """Run a bf16 matmul in fp32 and cast back: CPU bf16 GEMMs with some operand layouts take
    a slow path (minutes at gemma's widths), and the counter needs the shapes, not speed."""
    import torch

    kw = dict(kwargs)
    out = kw.pop("out", None)
    up = [a.float() if isinstance(a, torch.Tensor) else a for a in args]
    result = func.overloadpacket.default(*up, **kw).to(args[0].dtype)
    if func.overloadpacket.__name__.endswith("_"):  # in place: into the first argument
        return args[0].copy_(result)
    return out.copy_(result) if out is not None else result


def byte_counter(fast_matmul: bool = False, skip: Any = ()) -> Any:
    """A fresh ``ByteCounter`` (made here so importing this module needs no torch).

    ``skip``: tensors (a frozen base's weights) left out of the count, so that what is
    counted scales with the tokens; ``fast_matmul``: see :func:`_fp32_matmul`.
    """
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class ByteCounter(TorchDispatchMode):
        """Bytes read and written per aten op name."""

        def __init__(self) -> None:
            super().__init__()
            self.bytes: collections.Counter[str] = collections.Counter()
            self.skip = {t.untyped_storage().data_ptr() for t in skip}

        def __torch_dispatch__(
            self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
        ) -> Any:
            kwargs = kwargs or {}
            name = func.overloadpacket.__name__
            low = (
                name in MATMULS and fast_matmul and args[0].dtype in (torch.bfloat16, torch.float16)
            )
            out = _fp32_matmul(func, args, kwargs) if low else func(*args, **kwargs)
            if name in VIEWS:
                return out
            seen, moved = set(), 0
            for t in tree_flatten((args, kwargs, out))[0]:
                if (
                    isinstance(t, torch.Tensor)
                    and t.dim() > 0
                    and t.untyped_storage().data_ptr() not in self.skip
                ):
                    key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
                    if key not in seen:
                        seen.add(key)
                        moved += t.numel() * t.element_size()
            self.bytes[name] += moved
            return out

        def total(self) -> int:
            """All bytes counted."""
            return sum(self.bytes.values())

    return ByteCounter()
