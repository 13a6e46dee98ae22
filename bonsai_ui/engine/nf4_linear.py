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

``install_fast_linears(model, "relayout")`` swaps them for :class:`RelaidLinear` instead, whose
one-token forward is ``nf4_relayout``'s kernel over weights re-laid out once, here: a module's
``q_proj``/``k_proj``/``v_proj`` (and ``gate_proj``/``up_proj``) are re-laid out side by side as
one weight, and whichever of them is called first for an input computes all of them in one launch;
the others, called next with the same input object (as every decoder's step calls them), return
their slice of that output. Under a CUDA graph capture that is one recorded kernel. The caller
must not change the input in place between the calls (no decoder does).
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from .nf4_gemv import (Workspace, config_for, from_quant_state, interpreting, nf4_gemv,
                       quant_state_reason)

KERNELS = ("on", "relayout")  # --nf4-kernel's choices that install a kernel ("off": none)
# sibling linears re-laid out side by side, called with the same input by every decoder
FUSED = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


def is_linear4bit(module: nn.Module) -> bool:
    try:
        import bitsandbytes as bnb
    except ImportError:
        return False
    return isinstance(module, bnb.nn.Linear4bit)


def unsupported_reason(module: nn.Module, layout_reason=quant_state_reason) -> str | None:
    """Why this Linear4bit stays on bitsandbytes, or None when NF4Linear can take it
    (``layout_reason``: the kernel's own check of the quant state; the relayout kernel has its own)."""
    qs = getattr(module.weight, "quant_state", None)
    reason = layout_reason(qs, module.weight)
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
            if is_linear4bit(child) and not isinstance(parent, (NF4Linear, RelaidLinear)):
                yield parent, name, child


def _note(done: int, skipped: Counter, what: str) -> str:
    total = done + sum(skipped.values())
    if not total:
        return ""
    note = f"{what} on {done} of {total} 4-bit layers"
    if skipped:
        why = "; ".join(reason if len(skipped) == 1 else f"{n}: {reason}"
                        for reason, n in skipped.most_common())
        note += f" ({sum(skipped.values())} on bitsandbytes: {why})"
    return note


def install_fast_linears(model: nn.Module, kernel: str = "on") -> str:
    """Swap every readable Linear4bit of ``model`` for an NF4Linear (``kernel="on"``) or a
    RelaidLinear (``"relayout"``), in place.

    Returns the note for the loading line, e.g. ``"NF4 Triton gemv on 196 of 196 4-bit layers"``
    or ``"... on 0 of 196 4-bit layers (196 on bitsandbytes: quant type 'fp4' (only nf4 is
    read))"``; "" when the model has no 4-bit layer. Safe to call twice (a second call with the
    other kernel swaps nothing: uninstall first).
    """
    if kernel not in KERNELS:
        raise ValueError(f"unknown NF4 kernel {kernel!r} (one of {', '.join(KERNELS)})")
    if kernel == "relayout":
        return _install_relaid(model)
    done, skipped = 0, Counter()
    already = sum(1 for m in model.modules() if isinstance(m, NF4Linear))
    for parent, name, layer in list(_slots(model)):
        reason = unsupported_reason(layer)
        if reason:
            skipped[reason] += 1
            continue
        setattr(parent, name, NF4Linear(layer))
        done += 1
    return _note(done + already, skipped, "NF4 Triton gemv")


def uninstall_fast_linears(model: nn.Module) -> int:
    """Put every original Linear4bit back; returns how many were swapped."""
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (NF4Linear, RelaidLinear)):
                setattr(parent, name, child.base_layer)
                count += 1
    return count


# -- the re-laid-out kernel ---------------------------------------------------------------------

class RelaidGroup:
    """Layers re-laid out side by side (one, or a fused q/k/v or gate/up), their one launch's
    workspace, and the output of the last launch while its parts collect their slices."""

    def __init__(self, layers: list[nn.Module]):
        from .nf4_relayout import relayout

        self.weight = relayout([(m.weight, m.weight.quant_state) for m in layers])
        biases = [m.bias for m in layers]
        self.bias = None if biases[0] is None else \
            torch.cat([b.detach().to(self.weight.dtype) for b in biases]).contiguous()
        bounds = [0]
        for m in layers:
            bounds.append(bounds[-1] + m.out_features)
        self.bounds = bounds
        self.workspace = None
        self.pending: tuple | None = None  # (input, output, parts that took their slice)

    def output(self, part: int, x: torch.Tensor) -> torch.Tensor:
        """Part ``part``'s rows of the product with ``x``: the pending launch's, if it was for
        this very input object and this part has not taken it yet; else a new launch."""
        from .nf4_relayout import RelaidWorkspace, relaid_config_for, relaid_gemv

        pending = self.pending
        if pending is None or pending[0] is not x or part in pending[2]:
            ws = self.workspace
            if ws is None or ws.counts.device != x.device:
                ws = self.workspace = RelaidWorkspace(
                    self.weight, relaid_config_for(self.weight, x.device), x.device)
            bias = self.bias
            if bias is not None and bias.device != x.device:
                bias = self.bias = bias.to(x.device)
            pending = self.pending = (x, relaid_gemv(x, self.weight, bias, workspace=ws), set())
        pending[2].add(part)
        if len(pending[2]) == len(self.bounds) - 1:
            self.pending = None  # every part has its slice: hold no tensors between steps
        return pending[1][..., self.bounds[part]:self.bounds[part + 1]]


class RelaidLinear(nn.Module):
    """A Linear4bit whose one-token forward is ``relaid_gemv`` (alone, or fused with its siblings:
    see :class:`RelaidGroup`); everything else is the original's."""

    def __init__(self, base_layer: nn.Module, group: RelaidGroup, part: int):
        super().__init__()
        self.base_layer = base_layer
        self.in_features = base_layer.in_features
        self.out_features = base_layer.out_features
        self._group = group
        self._part = part

    @property
    def weight(self):
        return self.base_layer.weight

    @property
    def bias(self):
        return self.base_layer.bias

    def _runs_here(self, x: torch.Tensor) -> bool:
        return (x.numel() == x.shape[-1]
                and not (torch.is_grad_enabled() and x.requires_grad)
                and (x.device.type == "cuda" or interpreting())
                and not getattr(self.base_layer.weight.quant_state, "packing_format_for_cpu", False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._runs_here(x):
            return self.base_layer(x)
        base = self.base_layer
        if not base.compute_type_is_set:  # Linear4bit.forward's dtype rules (see NF4Linear)
            base.set_compute_type(x)
            base.compute_type_is_set = True
        compute = base.compute_dtype or x.dtype
        if compute != self._group.weight.dtype:
            return base(x)
        xin = x if x.dtype == compute else x.to(compute)
        return self._group.output(self._part, xin).to(x.dtype)

    def extra_repr(self) -> str:
        g = self._group
        fused = f", fused part {self._part + 1} of {len(g.bounds) - 1}" if len(g.bounds) > 2 else ""
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"dtype={g.weight.dtype}{fused}")


def _relaid_reason(layer: nn.Module) -> str | None:
    from .nf4_relayout import relayout_reason

    return unsupported_reason(layer, relayout_reason)


def _slot_of(module: nn.Module, name: str):
    """(holder, attribute) of the Linear4bit behind ``module.name``, bare or LoRA-wrapped."""
    child = getattr(module, name, None)
    if child is None or isinstance(child, (NF4Linear, RelaidLinear)):
        return None
    if is_linear4bit(child):
        return module, name
    base = getattr(child, "base_layer", None)
    if base is not None and is_linear4bit(base):
        return child, "base_layer"
    return None


def _install_relaid(model: nn.Module) -> str:
    done, skipped = 0, Counter()
    already = sum(1 for m in model.modules() if isinstance(m, RelaidLinear))
    placed = set()
    # sibling groups first: q/k/v and gate/up of one module, side by side
    for module in list(model.modules()):
        for names in FUSED:
            slots = [_slot_of(module, n) for n in names]
            if any(s is None for s in slots):
                continue
            layers = [getattr(h, a) for h, a in slots]
            if any(_relaid_reason(m) for m in layers):
                continue  # each alone below, with its reason
            if len({m.in_features for m in layers}) != 1 or \
                    len({m.weight.quant_state.dtype for m in layers}) != 1 or \
                    len({m.weight.device for m in layers}) != 1 or \
                    len({m.bias is None for m in layers}) != 1:
                continue
            group = RelaidGroup(layers)
            for part, ((holder, attr), layer) in enumerate(zip(slots, layers)):
                setattr(holder, attr, RelaidLinear(layer, group, part))
                placed.add(id(layer))
            done += len(layers)
    for parent, name, layer in list(_slots(model)):
        if id(layer) in placed:
            continue
        reason = _relaid_reason(layer)
        if reason:
            skipped[reason] += 1
            continue
        setattr(parent, name, RelaidLinear(layer, RelaidGroup([layer]), 0))
        done += 1
    note = _note(done + already, skipped, "NF4 re-laid-out kernel")
    groups = {id(m._group): m._group for m in model.modules() if isinstance(m, RelaidLinear)}
    fused = sum(1 for g in groups.values() if len(g.bounds) > 2)
    if note and fused:
        note += f"; {fused} q/k/v and gate/up groups fused into one launch each"
    if note and groups:
        extra = sum(g.weight.nbytes for g in groups.values())
        note += f"; re-laid-out copy {extra / 2**30:.2f} GiB"
    return note
