"""Batch-1 matrix-vector product over bitsandbytes NF4 weights, read as stored, in Triton.

Why: at batch 1 a 4-bit decode step is one pass over the weights, so its speed is the memory
bandwidth a kernel reaches. bitsandbytes' ``gemv_4bit`` (one warp per output row, 128-thread
blocks) held the app's 7B 4-bit decode at 13.9 % of an H200's ceiling (run of 2026-11-26).

What it reads: exactly what ``Params4bit`` / ``QuantState`` hold -- packed uint8 (two 4-bit codes
a byte, the HIGH nibble first: element 2j is ``byte >> 4``, element 2j+1 ``byte & 15``; csrc
kDequantizeBlockwise), one absmax per ``blocksize`` (32..256) consecutive elements of the row-major
[out, in] weight, either float32 or, with double quantization, uint8 codes into ``state2.code``
times ``state2.absmax[block // state2.blocksize]`` plus ``offset``. Nothing is re-quantized.

How: each program owns ``BLOCK_N`` output rows and walks K in ``BLOCK_K`` tiles: one 16-byte
load a thread of packed codes, the NF4 table looked up with ``tl.gather`` (shared memory, 16 words
in 16 banks: no conflicts), the absmax of the tile's blocks, float32 accumulators.

The de-quantized weight is bitsandbytes' ``dequantize_4bit`` value, bit for bit:
``dtype(float32(code[q]) * float32(absmax))``, rounded once to the layer's dtype (bf16 for the
seed's models), with the nested absmax ``float32(code2[a] * absmax2) + offset`` computed as two
rounded float32 operations (no fused multiply-add: ``libdevice.mul_rn``). The rounding to bf16 is
round-to-nearest-even, by PTX ``cvt.rn.bf16x2.f32`` on sm80+ or by integer operations (the
interpreter's cast truncates); the GPU bench checks that both give the same output. The products
with the input and their sum run in float32, in a fixed order: each program owns ``BLOCK_N`` whole
output rows and walks K from left to right; there is no split-K and no atomic, so a run repeats
bit for bit. (bitsandbytes' own batch-1 CUDA kernel rounds differently -- 0.50.1's
kgemm_4bit_inference_naive multiplies a bf16 code by a bf16 absmax in bf16 -- so it is not
bit-exact to its own de-quantization; the bench prints how far each is from a float32 product.)

Block sizes come from one fixed rule (:func:`pick_config`) of the layer's shape and the card's
SM count -- no autotuning, so the same card always runs the same program. A call allocates only
its output (shape and dtype fixed by the input), never syncs with the host, and so can be captured
in a CUDA graph once the kernel is compiled (the static decoder's warm-up runs compile it).

On the CPU, ``TRITON_INTERPRET=1`` runs the same kernel in Triton's interpreter (the tests).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

SUPPORTED_BLOCKSIZES = (32, 64, 128, 256)
_TORCH_TO_KIND = {torch.bfloat16: 0, torch.float16: 1, torch.float32: 2}
# Largest K tile, in weights: 512 weights = 256 bytes a row an iteration; with 16 rows a program
# that is 4 KiB in flight per iteration, which with several programs an SM covers the ~600 ns
# latency of HBM at 3.35-4.8 TB/s.
MAX_BLOCK_K = 512


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@dataclass(frozen=True)
class NF4Weight:
    """One layer's stored NF4 tensors, as the kernel reads them (views, never copies)."""

    packed: torch.Tensor  # uint8, N*K/2 bytes
    absmax: torch.Tensor  # float32 [blocks], or uint8 [blocks] when nested
    code: torch.Tensor  # float32 [16], bitsandbytes' NF4 table
    n: int  # out_features
    k: int  # in_features
    blocksize: int
    dtype: torch.dtype  # what dequantize_4bit returns (QuantState.dtype)
    absmax2: torch.Tensor | None = None  # float32, nested only
    code2: torch.Tensor | None = None  # float32 [256], nested only
    offset: torch.Tensor | None = None  # float32 0-d, nested only
    blocksize2: int = 0

    @property
    def nested(self) -> bool:
        return self.absmax2 is not None

    @property
    def nbytes(self) -> int:
        """Bytes one product reads from the weights (packed codes and absmax, both levels)."""
        total = self.packed.numel() + self.absmax.numel() * self.absmax.element_size()
        if self.nested:
            total += self.absmax2.numel() * 4
        return total


def quant_state_reason(qs, weight: torch.Tensor) -> str | None:
    """Why the kernel can't read this QuantState exactly, or None when it can."""
    if qs is None:
        return "no quant_state (weights not quantized yet)"
    if qs.quant_type != "nf4":
        return f"quant type {qs.quant_type!r} (only nf4 is read)"
    if getattr(qs, "packing_format_for_cpu", False):
        return "weights repacked for bitsandbytes' CPU kernel"
    if len(qs.shape) != 2:
        return f"weight shape {tuple(qs.shape)} is not 2-D"
    n, k = qs.shape
    if qs.blocksize not in SUPPORTED_BLOCKSIZES:
        return f"blocksize {qs.blocksize} (supported: {', '.join(map(str, SUPPORTED_BLOCKSIZES))})"
    if k % qs.blocksize:
        return f"in_features {k} is not a multiple of the blocksize {qs.blocksize}"
    if qs.dtype not in _TORCH_TO_KIND:
        return f"weight dtype {qs.dtype}"
    if weight.numel() * weight.element_size() != n * k // 2 or not weight.is_contiguous():
        return "packed weight is not n*k/2 contiguous bytes"
    if qs.code is None or qs.code.numel() != 16:
        return "no 16-entry NF4 code table"
    if qs.nested:
        s2 = qs.state2
        if s2.blocksize & (s2.blocksize - 1) or s2.code.numel() != 256:
            return f"nested blocksize {s2.blocksize} / code of {s2.code.numel()}"
        if qs.absmax.dtype != torch.uint8:
            return f"nested absmax stored as {qs.absmax.dtype}"
    elif qs.absmax.dtype != torch.float32:
        return f"absmax stored as {qs.absmax.dtype}"
    return None


def from_quant_state(weight: torch.Tensor, qs) -> NF4Weight:
    """The kernel's view of a ``Params4bit`` (any quant_storage: the bytes are reinterpreted)."""
    reason = quant_state_reason(qs, weight)
    if reason:
        raise ValueError(f"the NF4 kernel can't read this layer: {reason}")
    n, k = qs.shape
    packed = weight.reshape(-1).view(torch.uint8)
    common = dict(packed=packed, code=qs.code.float().contiguous(), n=int(n), k=int(k),
                  blocksize=int(qs.blocksize), dtype=qs.dtype)
    if not qs.nested:
        return NF4Weight(absmax=qs.absmax.contiguous(), **common)
    s2 = qs.state2
    offset = qs.offset if torch.is_tensor(qs.offset) else torch.tensor(qs.offset)
    return NF4Weight(absmax=qs.absmax.contiguous(), absmax2=s2.absmax.float().contiguous(),
                     code2=s2.code.float().contiguous(),
                     offset=offset.to(device=packed.device, dtype=torch.float32).reshape(1),
                     blocksize2=int(s2.blocksize), **common)


@dataclass(frozen=True)
class Config:
    block_n: int
    block_k: int
    num_warps: int
    cvt_asm: bool = False  # round to bf16 with PTX cvt.rn.bf16x2 instead of integer operations


@functools.lru_cache(maxsize=None)
def _gpu(device_index: int) -> tuple[int, int]:
    props = torch.cuda.get_device_properties(device_index)
    return props.multi_processor_count, props.major


def pick_config(n: int, k: int, blocksize: int, sms: int, cvt_asm: bool = False) -> Config:
    """The one fixed rule: the widest K tile (<= 512) that divides K, then the most rows a program
    (<= 16) that still gives every SM at least two programs; never fewer than 2 rows. ``cvt_asm``
    where the GPU has cvt.rn.bf16x2 (sm80+): 10.8 instead of 13.3 instructions a weight in the
    loop (sm90 SASS of the 7B q_proj tile, compiled on the CPU)."""
    block_k = blocksize
    while block_k * 2 <= MAX_BLOCK_K and k % (block_k * 2) == 0:
        block_k *= 2
    block_n = 16
    while block_n > 2 and -(-n // block_n) < 2 * sms:
        block_n //= 2
    return Config(block_n, block_k, 4, cvt_asm)


def _nf4_gemv_kernel(x_ptr, w_ptr, absmax_ptr, absmax2_ptr, code2_ptr, offset_ptr, code_ptr,
                    bias_ptr, out_ptr, N, K: tl.constexpr,
                    BLOCKSIZE: tl.constexpr, NESTED: tl.constexpr, BLOCKSIZE2: tl.constexpr,
                    W_KIND: tl.constexpr, HAS_BIAS: tl.constexpr,
                    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, CVT_ASM: tl.constexpr,
                    INTERPRET: tl.constexpr):
    NB: tl.constexpr = BLOCK_K // BLOCKSIZE  # absmax blocks per row per iteration
    HB: tl.constexpr = BLOCKSIZE // 2  # bytes per absmax block
    pid = tl.program_id(0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    rows_safe = tl.where(rows < N, rows, 0).to(tl.int64)  # loads need no mask; store has one
    nb = tl.arange(0, NB)
    hb = tl.arange(0, HB)
    # [BLOCK_N, NB, HB] byte addresses of the first K tile; the tile moves BLOCK_K // 2 bytes
    w_ptrs = (w_ptr + rows_safe[:, None, None] * (K // 2)
              + (nb[None, :, None] * HB + hb[None, None, :]))
    blocks = rows_safe[:, None] * (K // BLOCKSIZE) + nb[None, :]  # [BLOCK_N, NB]
    # x as (even, odd) pairs: element 2j meets the high nibble of byte j
    x_ptrs = x_ptr + (nb[:, None, None] * BLOCKSIZE + hb[None, :, None] * 2
                      + tl.arange(0, 2)[None, None, :])
    if NESTED:
        offset = tl.load(offset_ptr)
    acc = tl.zeros([BLOCK_N, NB, HB], dtype=tl.float32)
    code = tl.load(code_ptr + tl.arange(0, 16))
    # K is a compile-time constant (a model has two: hidden and intermediate sizes): a fixed
    # trip count, and Triton 3.6's interpreter can't loop to a run-time bound under numpy 2.4
    for _ in range(0, K // BLOCK_K):  # K % BLOCK_K == 0 (nf4_gemv checks)
        packed = tl.load(w_ptrs, eviction_policy="evict_first")
        # the table from shared memory (tl.gather) rather than a global load a lookup with its
        # 64-bit address: 13 % fewer sm90 SASS instructions (compiled on the CPU, 2 K tiles)
        SZ: tl.constexpr = BLOCK_N * NB * HB
        c_hi = tl.reshape(tl.gather(code, tl.reshape((packed >> 4).to(tl.int32), [SZ]), 0),
                          [BLOCK_N, NB, HB])
        c_lo = tl.reshape(tl.gather(code, tl.reshape((packed & 15).to(tl.int32), [SZ]), 0),
                          [BLOCK_N, NB, HB])
        if NESTED:
            q = tl.load(absmax_ptr + blocks).to(tl.int32)
            c2 = tl.load(code2_ptr + q)
            a2 = tl.load(absmax2_ptr + blocks // BLOCKSIZE2)
            if INTERPRET:  # numpy rounds every operation on its own
                a = c2 * a2
            else:  # __nv_fmul_rn: an explicit rounding mode, never fused with the + offset below
                a = libdevice.mul_rn(c2, a2)  # (an FMA would round once, bitsandbytes twice)
            a = a + offset
        else:
            a = tl.load(absmax_ptr + blocks)
        w_hi = c_hi * a[:, :, None]
        w_lo = c_lo * a[:, :, None]
        if W_KIND == 0 and CVT_ASM and not INTERPRET:
            # one packed cvt.rn.bf16x2.f32 (round to nearest even) for two weights, then each
            # half moved back to the top of a float32: 3 instructions a pair
            w_hi, w_lo = tl.inline_asm_elementwise(
                "{ .reg .b32 t; cvt.rn.bf16x2.f32 t, $2, $3; and.b32 $0, t, 0xffff0000; "
                "shl.b32 $1, t, 16; }",
                "=r,=r,r,r", [w_hi, w_lo], dtype=(tl.float32, tl.float32), is_pure=True, pack=1)
        elif W_KIND == 0:
            # round to bf16, nearest even, staying in float32: integer ops at full rate where a
            # cvt to bf16 and back is a quarter-rate F2F plus an unpack (and Triton's interpreter
            # truncates that cast). Exact for finite values, which absmax * code always is.
            b_hi = w_hi.to(tl.uint32, bitcast=True)
            b_lo = w_lo.to(tl.uint32, bitcast=True)
            b_hi = (b_hi + 0x7FFF + ((b_hi >> 16) & 1)) & 0xFFFF0000
            b_lo = (b_lo + 0x7FFF + ((b_lo >> 16) & 1)) & 0xFFFF0000
            w_hi = b_hi.to(tl.float32, bitcast=True)
            w_lo = b_lo.to(tl.float32, bitcast=True)
        elif W_KIND == 1:
            w_hi = w_hi.to(tl.float16).to(tl.float32)
            w_lo = w_lo.to(tl.float16).to(tl.float32)
        x_hi, x_lo = tl.split(tl.load(x_ptrs).to(tl.float32))
        acc += w_hi * x_hi[None, :, :]  # two fused multiply-adds, in this order
        acc += w_lo * x_lo[None, :, :]
        w_ptrs += BLOCK_K // 2
        x_ptrs += BLOCK_K
        blocks += NB
    out = tl.sum(tl.sum(acc, axis=2), axis=1)
    if HAS_BIAS:
        out += tl.load(bias_ptr + rows_safe).to(tl.float32)
    if INTERPRET and W_KIND == 0:  # round to nearest even here too (see above)
        bits = out.to(tl.uint32, bitcast=True)
        out = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).to(tl.float32, bitcast=True)
    tl.store(out_ptr + rows, out.to(out_ptr.dtype.element_ty), mask=rows < N)


@functools.lru_cache(maxsize=None)
def _kernel(interpret: bool):
    """The jitted kernel, built on first use: triton.jit reads TRITON_INTERPRET when it runs."""
    return triton.jit(_nf4_gemv_kernel)


def nf4_gemv(x: torch.Tensor, w: NF4Weight, bias: torch.Tensor | None = None,
             config: Config | None = None) -> torch.Tensor:
    """``x @ dequantize_4bit(W).T + bias`` for one row of input (any leading shape of size 1).

    The output has ``x``'s dtype. ``config`` overrides the fixed rule (benchmarks only).
    """
    if x.numel() != x.shape[-1] or x.shape[-1] != w.k:
        raise ValueError(f"nf4_gemv takes one row of {w.k} inputs, got shape {tuple(x.shape)}")
    if config is None:
        # the interpreter pays per operation, not per element: few, large programs there
        sms, major = _gpu(x.device.index or 0) if x.device.type == "cuda" else (1, 0)
        config = pick_config(w.n, w.k, w.blocksize, sms, cvt_asm=major >= 8)
    if w.k % config.block_k or config.block_k % w.blocksize:
        raise ValueError(f"block_k {config.block_k} must divide K {w.k} and be a multiple of "
                         f"the blocksize {w.blocksize}")
    if x.dtype != w.dtype:
        # dequantize_4bit rounds to QuantState.dtype, bitsandbytes 0.50's matmul path straight to
        # the input's: they agree only when the two are the same
        raise ValueError(f"input in {x.dtype}, weights quantized from {w.dtype}")
    x = x.contiguous()
    out = torch.empty((*x.shape[:-1], w.n), dtype=x.dtype, device=x.device)
    dummy = w.absmax  # any tensor: the constexpr branches never read unused pointers
    grid = (-(-w.n // config.block_n),)
    interpret = interpreting()
    _kernel(interpret)[grid](
        x, w.packed, w.absmax,
        w.absmax2 if w.nested else dummy, w.code2 if w.nested else dummy,
        w.offset if w.nested else dummy, w.code,
        bias if bias is not None else dummy, out, w.n, w.k,
        BLOCKSIZE=w.blocksize, NESTED=w.nested, BLOCKSIZE2=w.blocksize2 or 1,
        W_KIND=_TORCH_TO_KIND[w.dtype], HAS_BIAS=bias is not None,
        BLOCK_N=config.block_n, BLOCK_K=config.block_k, CVT_ASM=config.cvt_asm, INTERPRET=interpret,
        num_warps=config.num_warps)
    return out
