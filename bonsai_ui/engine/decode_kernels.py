"""Fused Triton kernels for the static decoder's one-token step on CUDA.

Why: a 7B decode step ran 1,387 kernels (profile of 2026-11-26, H200, bench/profile_step.py):
196 4-bit products took 3.9 ms of its 6.2 ms of GPU time and ~1,190 small ones the other 2.3 ms --
RMSNorm alone is 7 kernels (cast, pow, mean, add, rsqrt, mul, cast, mul), rotary embedding 10, the
written-out attention 10 (softmax over a 2k window 9.4 us a layer). Three kernels replace them:

- ``rms_norm``: residual add + RMSNorm + weight in one program (x = h + delta is written back);
- ``rope_and_cache``: rotary embedding of q and k, with k and v written into the cache at ``pos``;
- ``decode_attention``: one query position against the window, flash-decoding style -- the window
  cut into SEGMENT-key pieces, one program per (key/value head, piece) holding that head's query
  group, then one program per query head combining the pieces in a fixed order.

Same input, same tokens: every sum has one fixed order (no atomics, no split chosen at run time);
the pieces are combined in index order. The graph of a window always launches the same grid.

Rounding follows the eager step where it is cheap to: RMSNorm rounds ``x * rsqrt(...)`` to the
model's dtype before the weight multiplies it; rotary embedding rounds each product and the sum
(bit-identical to ``q * cos + rotate_half(q) * sin`` in bf16). Attention keeps float32 scores and
probabilities (the eager path rounds both to bf16), so its output is close to, not identical with,
the eager step; a prefill always runs the eager path, so a position's numbers never depend on
whether its prompt was reused (the reuse rule stays exact).

On the CPU, ``TRITON_INTERPRET=1`` runs the same kernels (the tests).
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from .nf4_gemv import interpreting

SEGMENT = 256  # keys a program of decode_attention reads: window 2,048 -> 8 pieces a head
BLOCK_KEYS = 64  # keys a loop iteration of it reads
_TL = {torch.bfloat16: tl.bfloat16, torch.float16: tl.float16, torch.float32: tl.float32}


@functools.lru_cache(maxsize=None)
def _jit(fn):
    return triton.jit(fn)


@triton.jit
def _rounded(x, DTYPE: tl.constexpr, INTERPRET: tl.constexpr):
    """x rounded to DTYPE (nearest even), back in float32. Triton's interpreter truncates a cast
    to bf16, so there the rounding is done on the bits (exact for finite values)."""
    if INTERPRET and DTYPE == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        return ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).to(tl.float32, bitcast=True)
    else:
        return x.to(DTYPE).to(tl.float32)


def _rms_norm_kernel(h_ptr, delta_ptr, w_ptr, out_ptr, H, eps, HAS_DELTA: tl.constexpr,
                     BLOCK: tl.constexpr, DTYPE: tl.constexpr, INTERPRET: tl.constexpr):
    cols = tl.arange(0, BLOCK)
    live = cols < H
    xf = tl.load(h_ptr + cols, mask=live, other=0.0).to(tl.float32)
    if HAS_DELTA:  # h = h + delta, rounded to the model's dtype as the eager add is
        xf = xf + tl.load(delta_ptr + cols, mask=live, other=0.0).to(tl.float32)
        xf = _rounded(xf, DTYPE, INTERPRET)
        tl.store(h_ptr + cols, xf.to(h_ptr.dtype.element_ty), mask=live)
    scale = 1.0 / tl.sqrt_rn(tl.sum(xf * xf, axis=0) / H + eps)
    y = _rounded(xf * scale, DTYPE, INTERPRET)
    w = tl.load(w_ptr + cols, mask=live, other=0.0).to(tl.float32)
    tl.store(out_ptr + cols, _rounded(w * y, DTYPE, INTERPRET).to(out_ptr.dtype.element_ty),
             mask=live)


def rms_norm(h: torch.Tensor, weight: torch.Tensor, eps: float,
             delta: torch.Tensor | None = None) -> torch.Tensor:
    """``weight * rmsnorm(h (+ delta))`` for one token; with ``delta``, ``h`` becomes h + delta."""
    H = h.shape[-1]
    out = torch.empty_like(h)
    _jit(_rms_norm_kernel)[(1,)](h, delta if delta is not None else h, weight, out, H, eps,
                                 HAS_DELTA=delta is not None, BLOCK=triton.next_power_of_2(H),
                                 DTYPE=_TL[h.dtype], INTERPRET=interpreting(), num_warps=8)
    return out


def _rope_cache_kernel(q_ptr, k_ptr, v_ptr, cos_ptr, sin_ptr, pos_ptr, q_out_ptr, keys_ptr,
                       values_ptr, HEADS: tl.constexpr, KV_HEADS: tl.constexpr, D: tl.constexpr,
                       CAPACITY, DTYPE: tl.constexpr, INTERPRET: tl.constexpr):
    head = tl.program_id(0)  # 0..HEADS-1: query heads; then key/value heads
    pos = tl.load(pos_ptr)
    d = tl.arange(0, D)
    half = D // 2
    partner = tl.where(d < half, d + half, d - half)
    sign = tl.where(d < half, -1.0, 1.0)
    cos = tl.load(cos_ptr + pos * D + d).to(tl.float32)
    sin = tl.load(sin_ptr + pos * D + d).to(tl.float32)
    if head < HEADS:
        x = tl.load(q_ptr + head * D + d).to(tl.float32)
        xr = tl.load(q_ptr + head * D + partner).to(tl.float32) * sign
        y = _rounded(x * cos, DTYPE, INTERPRET) + _rounded(xr * sin, DTYPE, INTERPRET)
        y = _rounded(y, DTYPE, INTERPRET)
        tl.store(q_out_ptr + head * D + d, y.to(q_out_ptr.dtype.element_ty))
    else:
        kv = head - HEADS
        x = tl.load(k_ptr + kv * D + d).to(tl.float32)
        xr = tl.load(k_ptr + kv * D + partner).to(tl.float32) * sign
        y = _rounded(x * cos, DTYPE, INTERPRET) + _rounded(xr * sin, DTYPE, INTERPRET)
        y = _rounded(y, DTYPE, INTERPRET)
        at = (kv * CAPACITY + pos) * D + d
        tl.store(keys_ptr + at, y.to(keys_ptr.dtype.element_ty))
        tl.store(values_ptr + at, tl.load(v_ptr + kv * D + d))


def rope_and_cache(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cos: torch.Tensor,
                   sin: torch.Tensor, pos: torch.Tensor, keys: torch.Tensor,
                   values: torch.Tensor, heads: int, kv_heads: int) -> torch.Tensor:
    """Rotated q (heads * head_dim); rotated k and v written to ``keys``/``values`` (1, kv, cap, d)
    at the position in ``pos`` (a (1,) device tensor)."""
    D = cos.shape[-1]
    q_out = torch.empty_like(q)
    _jit(_rope_cache_kernel)[(heads + kv_heads,)](
        q, k, v, cos, sin, pos, q_out, keys, values, HEADS=heads, KV_HEADS=kv_heads, D=D,
        CAPACITY=keys.shape[2], DTYPE=_TL[q.dtype], INTERPRET=interpreting(), num_warps=1)
    return q_out


def _attention_piece_kernel(q_ptr, keys_ptr, values_ptr, pos_ptr, m_ptr, l_ptr, acc_ptr,
                            scale, CAPACITY, SLIDING: tl.constexpr, GROUP: tl.constexpr,
                            GROUP_P: tl.constexpr, D: tl.constexpr, PIECES: tl.constexpr,
                            SEGMENT_: tl.constexpr, BLOCK: tl.constexpr, INTERPRET: tl.constexpr):
    kv = tl.program_id(0)
    piece = tl.program_id(1)
    pos = tl.load(pos_ptr)
    g = tl.arange(0, GROUP_P)
    d = tl.arange(0, D)
    live_q = g < GROUP
    heads = kv * GROUP + tl.where(live_q, g, 0)
    q = tl.load(q_ptr + heads[:, None] * D + d[None, :])  # (GROUP_P, D), the model's dtype
    q = (q.to(tl.float32) * scale).to(q.dtype)
    m = tl.full([GROUP_P], float("-inf"), tl.float32)
    l = tl.zeros([GROUP_P], tl.float32)
    acc = tl.zeros([GROUP_P, D], tl.float32)
    start = piece * SEGMENT_
    lowest = pos - SLIDING + 1 if SLIDING > 0 else pos * 0  # Mistral's sliding window
    base = kv * CAPACITY * D
    for off in range(0, SEGMENT_, BLOCK):
        keys_at = start + off + tl.arange(0, BLOCK)
        seen = (keys_at <= pos) & (keys_at >= lowest)
        kt = tl.load(keys_ptr + base + keys_at[None, :] * D + d[:, None])  # (D, BLOCK)
        if INTERPRET:  # the interpreter's dot reads bf16 as raw bits: float32 holds bf16 exactly
            s = tl.dot(q.to(tl.float32), kt.to(tl.float32))
        else:
            s = tl.dot(q, kt)  # (GROUP_P, BLOCK) float32
        s = tl.where(seen[None, :], s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp(s - m_safe[:, None])
        alpha = tl.exp(m - m_safe)
        l = l * alpha + tl.sum(p, axis=1)
        # entries past ``pos`` may hold anything (a later step overwrites them): never read them,
        # since p = 0 times a NaN would still be NaN
        v = tl.load(values_ptr + base + keys_at[:, None] * D + d[None, :], mask=seen[:, None],
                    other=0.0)  # (BLOCK, D)
        p = p.to(v.dtype)
        if INTERPRET:
            acc = acc * alpha[:, None] + tl.dot(p.to(tl.float32), v.to(tl.float32))
        else:
            acc = acc * alpha[:, None] + tl.dot(p, v)
        m = m_new
    at = heads * PIECES + piece
    tl.store(m_ptr + at, m, mask=live_q)
    tl.store(l_ptr + at, l, mask=live_q)
    tl.store(acc_ptr + at[:, None] * D + d[None, :], acc, mask=live_q[:, None])


def _attention_combine_kernel(m_ptr, l_ptr, acc_ptr, out_ptr, D: tl.constexpr,
                              PIECES: tl.constexpr, PIECES_P: tl.constexpr):
    head = tl.program_id(0)
    i = tl.arange(0, PIECES_P)
    d = tl.arange(0, D)
    live = i < PIECES
    m = tl.load(m_ptr + head * PIECES + i, mask=live, other=float("-inf"))
    l = tl.load(l_ptr + head * PIECES + i, mask=live, other=0.0)
    top = tl.max(m, axis=0)
    w = tl.where(m == float("-inf"), 0.0, tl.exp(m - top))
    acc = tl.load(acc_ptr + (head * PIECES + i)[:, None] * D + d[None, :], mask=live[:, None],
                  other=0.0)
    out = tl.sum(acc * w[:, None], axis=0) / tl.sum(l * w, axis=0)
    tl.store(out_ptr + head * D + d, out.to(out_ptr.dtype.element_ty))


class AttentionScratch:
    """Per-window buffers of the pieces (fixed addresses: the graphs read them)."""

    def __init__(self, heads: int, head_dim: int, device):
        self.heads, self.head_dim, self.device = heads, head_dim, device
        self._by_pieces: dict[int, tuple] = {}

    def get(self, pieces: int):
        if pieces not in self._by_pieces:
            n = self.heads * pieces
            self._by_pieces[pieces] = (
                torch.empty(n, dtype=torch.float32, device=self.device),
                torch.empty(n, dtype=torch.float32, device=self.device),
                torch.empty(n, self.head_dim, dtype=torch.float32, device=self.device))
        return self._by_pieces[pieces]


def decode_attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, pos: torch.Tensor,
                     window: int, heads: int, kv_heads: int, scratch: AttentionScratch,
                     sliding_window: int | None = None) -> torch.Tensor:
    """Attention of one query position (q: heads * head_dim, rotated) over keys ``0..window-1``
    of the cache that are ``<= pos`` (and within Mistral's sliding window); (heads * head_dim,)."""
    D = keys.shape[-1]
    group = heads // kv_heads
    segment = min(SEGMENT, window)
    pieces = -(-window // segment)
    m, l, acc = scratch.get(pieces)
    _jit(_attention_piece_kernel)[(kv_heads, pieces)](
        q, keys, values, pos, m, l, acc, D ** -0.5, keys.shape[2], SLIDING=sliding_window or 0,
        GROUP=group, GROUP_P=max(16, triton.next_power_of_2(group)), D=D, PIECES=pieces,
        SEGMENT_=segment, BLOCK=min(BLOCK_KEYS, segment), INTERPRET=interpreting(), num_warps=4)
    out = torch.empty_like(q)
    _jit(_attention_combine_kernel)[(heads,)](m, l, acc, out, D=D, PIECES=pieces,
                                              PIECES_P=triton.next_power_of_2(pieces), num_warps=4)
    return out
