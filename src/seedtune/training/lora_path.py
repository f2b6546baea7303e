"""The LoRA layers' per-token work in training, cut to what the math needs.

PEFT's LoRA ``Linear`` computes ``base(x) + lora_B(lora_A(dropout(x))) * scaling``, and on a
bf16 base it keeps the adapter in fp32 (``autocast_adapter_dtype``). In eager mode every
term is a kernel of its own over tensors as wide as the projection, for the 7 projections
of each of gemma-2b's 18 layers:

* the input copied to the fp32 adapter dtype, which autocast copies straight back to bf16
  for the matmul (:func:`uncast_lora_inputs` drops both copies; bit-identical results);
* ``lora_B``'s output written out, read and written again times ``scaling``, then read
  again to be added to the base output, and in the backward pass the output gradient read
  and written once more times ``scaling`` (:func:`fuse_lora_add` folds the scale and the
  add into the ``lora_B`` matmul: the base output is accumulated into in place, one pass).

Gemma's MLP projections are 16384 wide, so these passes are the larger share of the
memory traffic outside the matmuls (``python bench/run.py lora`` counts the bytes every
kernel of one layer moves, side by side). Nothing here changes the adapter's parameters or
its saved form: a trained adapter loads and runs in plain PEFT.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["fuse_lora_add", "uncast_lora_inputs"]


def uncast_lora_inputs(model: Any, uncast: bool = True) -> int:
    """Stop PEFT casting each LoRA layer's input to the adapter's dtype (``uncast=False``
    puts the casts back, as the GPU bench's tutorial rows have them); returns the count.

    PEFT keeps the adapter weights in fp32 on a bf16 base (``autocast_adapter_dtype``), so
    every LoRA layer copies its bf16 input to fp32, and autocast at once copies it back to
    bf16 for the matmul: two full-size copies of each of the 7 projections' inputs per
    layer, forward and backward (the down projection's is 16384 wide), for bit-identical
    results. Under autocast the matmul casts the fp32 weights itself, and the optimizer
    still updates fp32 weights. Only for a forward under autocast: without it, bf16 inputs
    meet fp32 weights and the matmul fails loudly. This is the switch
    ``peft.helpers.disable_input_dtype_casting`` flips, kept on for the whole run.
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    for layer in layers:
        layer.cast_input_dtype_enabled = not uncast
    return len(layers)


@functools.cache
def _fused_linear() -> type:
    """PEFT's LoRA ``Linear`` with the scale-and-add folded into ``lora_B``'s matmul; made
    on first use so that importing this module does not import PEFT and torch."""
    import torch
    from peft.tuners.lora.layer import Linear

    class FusedAddLinear(Linear):
        """A LoRA ``Linear`` whose plain case (one active adapter, unmerged, no variant
        such as DoRA, no ``lora_B`` bias, a plain ``nn.Linear`` base) accumulates
        ``scaling * lora_B(h)`` into the base output in place; anything else, PEFT's own
        forward."""

        def _fusable(self, x: Any, args: tuple, kwargs: dict) -> str | None:
            """The active adapter when the plain case holds, else None."""
            if args or kwargs or self.disable_adapters or self.merged:
                return None
            active = self.active_adapters
            if len(active) != 1 or active[0] not in self.lora_A:
                return None
            name = active[0]
            if name in self.lora_variant or self.lora_B[name].bias is not None:
                return None
            if type(self.base_layer) is not torch.nn.Linear:  # not 4-bit, not a subclass
                return None
            # the in-place add needs one compute dtype: autocast's, or the input's own
            # when the adapter shares it (an fp32 model)
            if not (
                torch.is_autocast_enabled(x.device.type)
                or x.dtype == self.lora_A[name].weight.dtype
            ):
                return None
            return name

        def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            name = self._fusable(x, args, kwargs)
            if name is None:
                return super().forward(x, *args, **kwargs)
            lora_a, lora_b = self.lora_A[name], self.lora_B[name]
            flat = x.reshape(-1, x.shape[-1])
            # 2-D, so the base output is a fresh matmul result, not a view: the linear's
            # backward needs only its input and weight, so adding into it in place is
            # safe for autograd
            result = self.base_layer(flat)
            h = lora_a(self.lora_dropout[name](self._cast_input_dtype(flat, lora_a.weight.dtype)))
            # in-place ops are outside autocast's lists: cast the rank-r operands (tiny)
            # to the output's dtype as autocast would for lora_B's matmul
            result.addmm_(
                h.to(result.dtype), lora_b.weight.to(result.dtype).t(), alpha=self.scaling[name]
            )
            return result.view(*x.shape[:-1], result.shape[-1])

    return FusedAddLinear


def fuse_lora_add(model: Any, fused: bool = True) -> int:
    """Make every PEFT LoRA ``Linear`` in ``model`` add its scaled ``lora_B`` output into the
    base output within the matmul (``fused=False`` restores PEFT's own forward); returns the
    count.

    PEFT computes ``result + lora_B(h) * scaling`` as three kernels over the projection's
    full output width (the matmul's output, the scale, the add) plus a fourth in the backward
    pass (the output gradient times ``scaling``); ``result.addmm_(h, B.T, alpha=scaling)``
    is one pass that reads and writes the base output, and its backward hands the output
    gradient on untouched. The math is the same; in bf16 the sum is rounded once instead of
    twice. Only layers whose class is exactly PEFT's ``Linear`` change (4-bit and other
    quantized layers keep theirs), and each falls back to PEFT's forward per call whenever
    the plain case does not hold (merged, disabled or several adapters, DoRA).
    """
    from peft.tuners.lora.layer import Linear

    fused_cls = _fused_linear()
    count = 0
    for module in model.modules():
        if fused and type(module) is Linear:
            module.__class__ = fused_cls
            count += 1
        elif not fused and type(module) is fused_cls:
            module.__class__ = Linear
            count += 1
    return count
