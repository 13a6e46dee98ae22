"""Swap a model's bitsandbytes NF4 linears for ones whose batch-1 product is ``nf4_gemv``.

``install_fast_linears(model)`` walks the model once: every ``Linear4bit`` the kernel can read
exactly becomes an :class:`NF4Linear` holding the original module (as ``base_layer``, the name
PEFT follows to the real layer), so that

- one token (decode) runs ``nf4_gemv`` on the stored weights;
- several tokens (prefill) and anything on a device the kernel does not run on go to the original
  ``Linear4bit`` unchanged -- bitsandbytes' own de-quantize + matmul;
- a PEFT LoRA layer keeps wrapping the result: only its ``base_layer`` is swapped, so the adapter
  still adds its ``B(A(x))`` on top, and Unsloth's own fast path (which reads
  ``proj.base_layer.weight``) still finds the real ``Params4bit``.

Layers the kernel can't read exactly stay as they are, and the returned note says which and why.
``uninstall_fast_linears`` puts every original back.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from .nf4_gemv import (Workspace, config_for, from_quant_state, interpreting, nf4_gemv,
                       quant_state_reason)


def is_linear4bit(module: nn.Module) -> bool:
    try:
        import bitsandbytes as bnb
    except ImportError:
        return False
    return isinstance(module, bnb.nn.Linear4bit)


def unsupported_reason(module: nn.Module) -> str | None:
    """Why this Linear4bit stays on bitsandbytes, or None when NF4Linear can take it."""
    qs = getattr(module.weight, "quant_state", None)
    reason = quant_state_reason(qs, module.weight)
    if reason:
        return reason
    if module.compute_type_is_set and module.compute_dtype != qs.dtype:
        return f"compute dtype {module.compute_dtype} differs from the weights' {qs.dtype}"
    return None


class NF4Linear(nn.Module):
    """A Linear4bit whose one-token forward is ``nf4_gemv``; everything else is the original's."""

    def __init__(self, base_layer: nn.Module):
        super().__init__()
        self.base_layer = base_layer
        self.in_features = base_layer.in_features
        self.out_features = base_layer.out_features
        self._weight = from_quant_state(base_layer.weight, base_layer.weight.quant_state)
        self._workspace: Workspace | None = None  # made on the first call (a warm-up, not a capture)

    @property
    def weight(self):  # code that inspects proj.weight (PEFT, Unsloth) sees the Params4bit
        return self.base_layer.weight

    @property
    def bias(self):
        return self.base_layer.bias

    def _runs_here(self, x: torch.Tensor) -> bool:
        return (x.numel() == x.shape[-1]  # one token; prefill stays on bitsandbytes
                and not (torch.is_grad_enabled() and x.requires_grad)
                and (x.device.type == "cuda" or interpreting())
                and not getattr(self.base_layer.weight.quant_state, "packing_format_for_cpu", False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._runs_here(x):
            return self.base_layer(x)
        base = self.base_layer
        # Linear4bit.forward's dtype rules: the first input fixes compute_dtype (bf16 and fp32
        # inputs are computed in their own dtype), the result goes back to the input's dtype
        if not base.compute_type_is_set:
            base.set_compute_type(x)
            base.compute_type_is_set = True
        compute = base.compute_dtype or x.dtype
        if compute != self._weight.dtype:  # bitsandbytes would round the weights differently
            return base(x)
        bias = base.bias
        if bias is not None and bias.dtype != compute:
            bias = bias.to(compute)
        return nf4_gemv(x.to(compute), self._weight, bias,
                        workspace=self._workspace_on(x.device)).to(x.dtype)

    def _workspace_on(self, device: torch.device) -> Workspace:
        ws = self._workspace
        if ws is None or ws.counts.device != device:
            ws = self._workspace = Workspace(self._weight.n, config_for(self._weight, device),
                                             device)
        return ws

    def extra_repr(self) -> str:
        w = self._weight
        return (f"in_features={w.k}, out_features={w.n}, blocksize={w.blocksize}, "
                f"nested={w.nested}, dtype={w.dtype}")


def _slots(model: nn.Module):
    """(parent, attribute name, Linear4bit) for every Linear4bit, LoRA-wrapped or not."""
    for parent in model.modules():
        for name, child in parent.named_children():
            if is_linear4bit(child) and not isinstance(parent, NF4Linear):
                yield parent, name, child


def install_fast_linears(model: nn.Module) -> str:
    """Swap every readable Linear4bit of ``model`` for an NF4Linear, in place.

    Returns the note for the loading line, e.g. ``"NF4 Triton gemv on 196 of 196 4-bit layers"``
    or ``"... on 0 of 196 4-bit layers (196 on bitsandbytes: quant type 'fp4' (only nf4 is
    read))"``; "" when the model has no 4-bit layer. Safe to call twice.
    """
    done, skipped = 0, Counter()
    already = sum(1 for m in model.modules() if isinstance(m, NF4Linear))
    for parent, name, layer in list(_slots(model)):
        reason = unsupported_reason(layer)
        if reason:
            skipped[reason] += 1
            continue
        setattr(parent, name, NF4Linear(layer))
        done += 1
    total = done + already + sum(skipped.values())
    if not total:
        return ""
    note = f"NF4 Triton gemv on {done + already} of {total} 4-bit layers"
    if skipped:
        why = "; ".join(reason if len(skipped) == 1 else f"{n}: {reason}"
                        for reason, n in skipped.most_common())
        note += f" ({sum(skipped.values())} on bitsandbytes: {why})"
    return note


def uninstall_fast_linears(model: nn.Module) -> int:
    """Put every original Linear4bit back; returns how many were swapped."""
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, NF4Linear):
                setattr(parent, name, child.base_layer)
                count += 1
    return count
