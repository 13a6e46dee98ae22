"""Batch-1 matrix-vector product over bitsandbytes NF4 weights, read as stored, in Triton.

Why: at batch 1 a 4-bit decode step is one pass over the weights, so its speed is the memory
bandwidth a kernel reaches. bitsandbytes' ``gemv_4bit`` (one warp per output row, 128-thread
blocks) ran a 7B token's linears in 3.94 ms on an H100 (0.84 TB/s, 88 % of the step).
To be memory-bound an H100 must spend at most ~4 instructions a weight (132 SMs x 4 issue slots x
1.75 GHz over 3.35 TB/s at half a byte a weight); this project's first Triton gemv spent ~15
(a float32 table lookup, a multiply and a rounding per weight) and lost to bitsandbytes.

What it reads: exactly what ``Params4bit`` / ``QuantState`` hold -- packed uint8 (two 4-bit codes
a byte, the HIGH nibble first: element 2j is ``byte >> 4``, element 2j+1 ``byte & 15``; csrc
kDequantizeBlockwise), one absmax per ``blocksize`` (32..256) consecutive elements of the row-major
[out, in] weight, either float32 or, with double quantization, uint8 codes into ``state2.code``
times ``state2.absmax[block // state2.blocksize]`` plus ``offset``. Nothing is re-quantized.

How (sm90 SASS compiled on the CPU: 7-8 instructions a weight in the loop, none of them through
shared memory):
- per absmax block, a table of its 16 weights ``dtype(float32(code[j]) * float32(absmax))`` --
  16 multiplies and 8 packed ``cvt.rn`` roundings, once per 32 or 64 weights -- kept as 4
  registers of low bytes and 4 of high bytes;
- per 8 weights (one 32-bit word of codes), 12 byte permutes (PTX ``prmt``) look the 8 codes up
  in that table (llama.cpp's IQ4_NL lookup, widened to two bytes) and 4 more pair them into
  bf16x2 / f16x2 registers: the de-quantized weights, bit for bit ``dequantize_4bit``'s values
  (``tests/test_nf4_gemv.py`` runs this PTX text on the CPU, instruction by instruction);
- the products with the input and their sums in float32 on the CUDA cores, in a fixed order (a
  word's 8 products, then per word, then a fixed tree across the tile). ``Config.tensor_cores``
  sums on the tensor cores instead (wgmma, the input broadcast to 16 columns): 4.3-4.7
  instructions a weight, but the weight tile then passes through shared memory, and that pipe
  held it (Nsight Compute, H200: L1/shared 75 % busy, DRAM 15 %): 1.3x slower here;
- split-K where a layer has too few 64-row tiles to fill the card: each of ``split`` programs of
  a tile writes its partial sums to a workspace, and the program that finishes last (a counter,
  atomically incremented) adds the ``split`` partials **in index order**, adds the bias, rounds
  once to the output dtype and resets the counter. Which program adds does not change the sum:
  a run repeats bit for bit.

Block sizes and splits come from one fixed rule (:func:`pick_config`) of the layer's shape and the
card's SM count -- no autotuning, so the same card always runs the same program. A call allocates
only its output, never syncs with the host, and so can be captured in a CUDA graph once compiled
(the static decoder's warm-up runs compile it; ``NF4Linear`` owns each layer's workspace).

On the CPU, ``TRITON_INTERPRET=1`` runs the same kernel in Triton's interpreter, with the table
lookup written in Triton operations (the interpreter runs no PTX) -- the tests.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

SUPPORTED_BLOCKSIZES = (32, 64)  # a block: one or two runs of 32 weights (16-byte loads)
# bitsandbytes' NF4 table (QLoRA appendix E), as float32 bits: the PTX multiplies by these
# immediates, so a layer whose QuantState.code differs is refused (quant_state_reason)
NF4_BITS = (0xBF800000, 0xBF3239B1, 0xBF066B30, 0xBECA32A0, 0xBE91A24D, 0xBE3D353F, 0xBDBA7871,
            0x00000000, 0x3DA2FAFF, 0x3E24CAE3, 0x3E7C04DD, 0x3EAD033A, 0x3EE1A4B8, 0x3F1007AB,
            0x3F3913B3, 0x3F800000)
_TORCH_TO_KIND = {torch.bfloat16: 0, torch.float16: 1}
BLOCK_N = 64  # rows a program: the smallest M of an sm90 warpgroup MMA (wgmma)
MAX_BLOCK_K = 128  # K tile: 64 rows x 64 bytes = 4 KiB of codes a load, two loads in flight


def _table_asm(cvt: str) -> str:
    """PTX: $8 = absmax (f32) -> $0..$3 low bytes, $4..$7 high bytes of the 16 table entries."""
    lines = ["{", ".reg .f32 t<16>;", ".reg .b32 r<8>;"]
    lines += [f"mul.rn.f32 t{j}, $8, 0f{bits:08X};" for j, bits in enumerate(NF4_BITS)]
    # cvt.rn.{bf16x2,f16x2}.f32 d, a, b puts a in the upper half: r_j = (entry 2j+1, entry 2j)
    lines += [f"{cvt} r{j}, t{2 * j + 1}, t{2 * j};" for j in range(8)]
    for j in range(4):  # r(2j), r(2j+1) hold entries 4j..4j+3 as [L, H, L, H, L, H, L, H]
        lines += [f"prmt.b32 ${j}, r{2 * j}, r{2 * j + 1}, 0x6420;",
                  f"prmt.b32 ${4 + j}, r{2 * j}, r{2 * j + 1}, 0x7531;"]
    return "\n".join(lines + ["}"])


TABLE_BF16 = tl.constexpr(_table_asm("cvt.rn.bf16x2.f32"))
TABLE_F16 = tl.constexpr(_table_asm("cvt.rn.f16x2.f32"))
TABLE_CONSTRAINTS = tl.constexpr(",".join(["=r"] * 8 + ["r"]))
# PTX: $4 = 8 codes (bytes b0..b3, element 2j = high nibble of b_j), $5..$8 the table's low bytes,
# $9..$12 its high bytes -> $0..$3 = the weight pairs (e0,e1) (e2,e3) (e4,e5) (e6,e7). prmt picks
# 4 bytes of 8 by the low 3 bits of each selector nibble (bit 3 would replicate the sign: masked
# off); so each nibble is looked up in entries 0-7 and 8-15 and a third prmt keeps one by its
# bit 3. Nibble order in the word is (e1, e0, e3, e2, ...): the last 4 prmts undo it.
def _lut_asm() -> str:
    lines = ["{", ".reg .b32 i0, i1, s0, s1, la, lb, ha, hb, l0, h0, l1, h1;",
             "and.b32 i0, $4, 0x77777777;", "shr.u32 s0, $4, 1;", "and.b32 s0, s0, 0x44444444;",
             "or.b32 s0, s0, 0x32103210;", "shr.u32 i1, i0, 16;", "shr.u32 s1, s0, 16;"]
    for half in "01":  # codes 0-3 of the word, then 4-7 (prmt reads a selector's low 16 bits)
        lines += [f"prmt.b32 la, $5, $6, i{half};", f"prmt.b32 lb, $7, $8, i{half};",
                  f"prmt.b32 l{half}, la, lb, s{half};",
                  f"prmt.b32 ha, $9, $10, i{half};", f"prmt.b32 hb, $11, $12, i{half};",
                  f"prmt.b32 h{half}, ha, hb, s{half};"]
    for half in "01":  # (low, high) bytes of e.g. (e1, e0, e3, e2) -> (e0, e1) and (e2, e3)
        lines += [f"prmt.b32 ${2 * int(half)}, l{half}, h{half}, 0x4051;",
                  f"prmt.b32 ${2 * int(half) + 1}, l{half}, h{half}, 0x6273;"]
    return "\n".join(lines + ["}"])


LUT = tl.constexpr(_lut_asm())
LUT_CONSTRAINTS = tl.constexpr(",".join(["=r"] * 4 + ["r"] * 9))


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
    def words(self) -> torch.Tensor:
        """The packed codes as int32 words, 8 codes a word (the kernel loads 4 words at once)."""
        return self.packed.view(torch.int32)

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
        return f"weight dtype {qs.dtype} (the kernel reads bf16 and fp16 layers)"
    if weight.numel() * weight.element_size() != n * k // 2 or not weight.is_contiguous():
        return "packed weight is not n*k/2 contiguous bytes"
    if qs.code is None or qs.code.numel() != 16:
        return "no 16-entry NF4 code table"
    bits = qs.code.detach().float().cpu().view(torch.int32).tolist()
    if [b & 0xFFFFFFFF for b in bits] != list(NF4_BITS):
        return "its NF4 table differs from bitsandbytes' standard one (the kernel has it built in)"
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
    split: int = 1  # programs a 64-row tile's K is split over (partials added in index order)
    num_warps: int = 4
    prefetch: bool = True  # the next K tile's loads issued before the current tile's work
    # the sums: float32 multiply-adds on the CUDA cores, or the tensor cores (wgmma), whose weight
    # tile passes through shared memory: that pipe held them (Nsight, H200: L1/shared 75 % busy,
    # DRAM 15 %, 35 % of issue slots) and the multiply-adds ran the 7B linears 1.29x faster
    # (3.27 vs 4.21 ms, H200). Register caps (56-80) were swept too and gained nothing.
    tensor_cores: bool = False


@functools.lru_cache(maxsize=None)
def _sms(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def config_for(w: NF4Weight, device: torch.device) -> Config:
    """The fixed rule's pick for this layer on this device (the interpreter: one SM)."""
    return pick_config(w.n, w.k, w.blocksize,
                       _sms(device.index or 0) if device.type == "cuda" else 1)


def pick_config(n: int, k: int, blocksize: int, sms: int) -> Config:
    """The one fixed rule: 64 rows a program, the widest K tile (<= 128) that divides K, and K
    split so that a program adds about 4 tiles (512 weights a row) -- more splits, down to 2
    tiles, where that leaves the card fewer than 2 programs an SM. Why: the kernel waits on
    memory, so programs in flight set its speed; the sweep on an H200 (bench/nf4_bench.py) found these
    best or within 3 % for every 7B and 32B shape. 7B on 132 SMs: q/o split 7 (392 programs),
    k/v 14 (112), gate/up 7 (2,072), down 37 (2,072)."""
    block_k = blocksize
    while block_k * 2 <= MAX_BLOCK_K and k % (block_k * 2) == 0:
        block_k *= 2
    tiles, iters = -(-n // BLOCK_N), k // block_k
    splits = [d for d in range(1, iters + 1) if iters % d == 0 and (iters // d >= 2 or d == 1)]
    at = next((i for i, d in enumerate(splits) if iters // d <= 4), len(splits) - 1)
    while tiles * splits[at] < 2 * sms and at + 1 < len(splits):
        at += 1
    return Config(BLOCK_N, block_k, splits[at])


class Workspace:
    """A layer's split-K partial sums and per-tile counters (zero between calls: the last program
    of a tile resets its counter). Only one call at a time may use it: the decoder's one stream."""

    def __init__(self, n: int, config: Config, device):
        tiles = -(-n // config.block_n)
        self.partial = torch.empty(config.split * n, dtype=torch.float32, device=device)
        self.counts = torch.zeros(tiles, dtype=torch.int32, device=device)
        self.config = config


@triton.jit
def _bf16_in_f32(x):
    """float32 rounded to the nearest bf16 (ties to even), still in float32, in integers: the
    interpreter's cast to bf16 truncates. Exact for finite values."""
    b = x.to(tl.uint32, bitcast=True)
    return ((b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000).to(tl.float32, bitcast=True)


@triton.jit
def _bits_to(pr, W_KIND: tl.constexpr):
    if W_KIND == 0:
        w = pr.to(tl.uint16).to(tl.bfloat16, bitcast=True)
    else:
        w = pr.to(tl.uint16).to(tl.float16, bitcast=True)
    return w


@triton.jit
def _tile_weights(words, a, code_ptr, W_KIND: tl.constexpr, INTERPRET: tl.constexpr,
                  F32: tl.constexpr):
    """[BLOCK_N, NB, 4, RUNS] words of codes and their blocks' absmax, broadcast alike -> the
    [BLOCK_N, NB, 4, RUNS, 8] weights (8 a word)."""
    if INTERPRET:  # the same values in Triton operations: the interpreter runs no PTX
        e = tl.arange(0, 8)
        shift = 8 * (e // 2) + 4 * (1 - e % 2)  # element 2j: the high nibble of byte j
        q = (words.to(tl.uint32, bitcast=True)[:, :, :, :, None] >> shift) & 15
        code = tl.load(code_ptr + tl.arange(0, 16))
        c = tl.reshape(tl.gather(code, tl.reshape(q.to(tl.int32), [q.numel]), 0), q.shape)
        w = c * a[:, :, :, :, None]
        # the rounded values, held in float32 (the interpreter's bf16 casts truncate and its
        # bf16 dot is not exact): the dot below then runs in float32 on the same values
        if W_KIND == 0:
            w = _bf16_in_f32(w)
        else:
            w = w.to(tl.float16).to(tl.float32)
    else:
        w = tl.reshape(_lookup(words, a, W_KIND, F32), [words.shape[0], words.shape[1], 4,
                                                     words.shape[3], 8])
    return w


@triton.jit
def _lookup(words, a, W_KIND: tl.constexpr, F32: tl.constexpr):
    """The PTX path: the block's table, then 8 weights a word by byte permutes -> [..., 8]."""
    if W_KIND == 0:
        t = tl.inline_asm_elementwise(TABLE_BF16, TABLE_CONSTRAINTS, [a], dtype=(tl.int32,) * 8,
                                      is_pure=True, pack=1)
    else:
        t = tl.inline_asm_elementwise(TABLE_F16, TABLE_CONSTRAINTS, [a], dtype=(tl.int32,) * 8,
                                      is_pure=True, pack=1)
    p0, p1, p2, p3 = tl.inline_asm_elementwise(
        LUT, LUT_CONSTRAINTS, [words, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]],
        dtype=(tl.int32,) * 4, is_pure=True, pack=1)
    pr = tl.join(tl.join(p0, p2), tl.join(p1, p3)).to(tl.uint32, bitcast=True)  # p0 p1 p2 p3
    if F32 and W_KIND == 0:  # a bf16 is the top half of a float32: one shift or mask each
        w = tl.join((pr << 16).to(tl.float32, bitcast=True),
                    (pr & 0xFFFF0000).to(tl.float32, bitcast=True))
    else:
        w = tl.join(_bits_to(pr, W_KIND), _bits_to(pr >> 16, W_KIND))  # e0 .. e7
        if F32:
            w = w.to(tl.float32)
    return w


@triton.jit
def _load_tile(w_ptrs, absmax_ptr, absmax2_ptr, blocks, NESTED: tl.constexpr,
               BLOCKSIZE2: tl.constexpr, RUNS: tl.constexpr, INTERPRET: tl.constexpr):
    """A K tile's loads: codes [NB, BLOCK_N, 4, RUNS]; the absmax code byte (nested) or the
    absmax itself, and the nested scale, [NB, BLOCK_N, 1]. No arithmetic on them: their use
    waits for them, not the issue."""
    words = tl.load(w_ptrs, eviction_policy="evict_first")
    if RUNS == 2:  # the runs side by side, so a register's two weights stay neighbours in K
        words = tl.join(words, tl.load(w_ptrs + 4, eviction_policy="evict_first"))
    else:
        words = words[:, :, :, None]
    if NESTED:
        if INTERPRET:
            q = tl.load(absmax_ptr + blocks).to(tl.int32)
        else:  # a byte load the compiler can't vectorize: tl.load's 4-byte vector (the 4
            # blocks of a row) made it give whole rows to threads, the weights' layout too,
            # and cost 2 instructions a weight in 16-bit shared-memory stores (sm90 SASS)
            q = tl.inline_asm_elementwise("ld.global.nc.u8 $0, [$1];", "=r,l",
                                          [absmax_ptr + blocks], dtype=tl.int32,
                                          is_pure=True, pack=1)
        a2 = tl.load(absmax2_ptr + blocks // BLOCKSIZE2)
    else:
        q = tl.load(absmax_ptr + blocks)
        a2 = q
    return words, q, a2


@triton.jit
def _rounded(total, W_KIND: tl.constexpr, INTERPRET: tl.constexpr):
    """float32 sums -> the output dtype, to nearest even (the interpreter's bf16 cast truncates:
    there the rounding is done in integers)."""
    if W_KIND == 0:
        if INTERPRET:
            total = _bf16_in_f32(total)
        out = total.to(tl.bfloat16)
    else:
        out = total.to(tl.float16)
    return out


def _nf4_gemv_kernel(x_ptr, w_ptr, absmax_ptr, absmax2_ptr, code2_ptr, offset_ptr, code_ptr,
                     bias_ptr, out_ptr, part_ptr, count_ptr, N, K: tl.constexpr,
                     BLOCKSIZE: tl.constexpr, NESTED: tl.constexpr, BLOCKSIZE2: tl.constexpr,
                     W_KIND: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK_N: tl.constexpr,
                     BLOCK_K: tl.constexpr, SPLIT: tl.constexpr, PREFETCH: tl.constexpr,
                     TENSOR_CORES: tl.constexpr, INTERPRET: tl.constexpr):
    NB: tl.constexpr = BLOCK_K // BLOCKSIZE  # absmax blocks a row a K tile
    ITERS: tl.constexpr = K // BLOCK_K // SPLIT  # K tiles this program adds
    tile = tl.program_id(0)
    part = tl.program_id(1)
    rows = tile * BLOCK_N + tl.arange(0, BLOCK_N)
    rows_safe = tl.where(rows < N, rows, 0)  # loads need no mask; stores have one (int32: N*K/8 < 2**31)
    # a block's words as RUNS runs of 4 (one 16-byte load each), loaded apart and alike: Triton
    # then gives one thread every run of a block, so it builds the block's table once (the PTX
    # is pure: the compiler merges the copies). Loaded as one [BLOCK_N, NB, 8] tensor, a block's
    # words went to 2-8 threads, each building the table (sm90 SASS: 6.0 instead of 4.4 a weight)
    RUNS: tl.constexpr = BLOCKSIZE // 32
    # pointers [NB, BLOCK_N, 4], permuted to [BLOCK_N, NB, 4] once loaded: Triton orders the
    # load's threads by the pointer dims, and with rows first it stored the weight tile to shared
    # memory 2 bytes at a time for the tensor cores (sm90 SASS: 1 instruction a weight more)
    rr = rows_safe[None, :, None]
    nb = tl.arange(0, NB)[:, None, None]
    k0 = part * (ITERS * BLOCK_K)
    w_ptrs = w_ptr + rr * (K // 8) + k0 // 8 + nb * (BLOCKSIZE // 8) + tl.arange(0, 4)[None, None, :]
    blocks = rr * (K // BLOCKSIZE) + k0 // BLOCKSIZE + nb  # [NB, BLOCK_N, 1]
    # the tile's K order is (block, word, run, element): the input is read in that order
    kx = (tl.arange(0, NB)[:, None, None, None] * BLOCKSIZE + tl.arange(0, 4)[None, :, None, None] * 8
          + tl.arange(0, RUNS)[None, None, :, None] * 32 + tl.arange(0, 8)[None, None, None, :])
    x_ptrs = x_ptr + k0 + tl.reshape(kx, [BLOCK_K])
    if NESTED:
        offset = tl.load(offset_ptr)
    if TENSOR_CORES:
        acc = tl.zeros([BLOCK_N, 16], dtype=tl.float32)
    else:
        acc = tl.zeros([BLOCK_N, NB, 4, RUNS], dtype=tl.float32)
    # the loads of the first K tile; each iteration then issues the next tile's loads before it
    # works on the current one (PREFETCH): two tiles in flight a program, as the bench showed the
    # kernel waiting on memory, not on instructions (more programs at once ran it faster)
    words_n, q_n, a2_n = _load_tile(w_ptrs, absmax_ptr, absmax2_ptr, blocks, NESTED, BLOCKSIZE2,
                                    RUNS, INTERPRET)
    for i in range(0, ITERS):  # a compile-time trip count (the interpreter needs one)
        words, q, a2 = words_n, q_n, a2_n
        if PREFETCH:
            step = 1 - (i + 1) // ITERS  # 1, and 0 in the last iteration: it reloads its own tile
            words_n, q_n, a2_n = _load_tile(w_ptrs + step * (BLOCK_K // 8), absmax_ptr,
                                            absmax2_ptr, blocks + step * NB, NESTED, BLOCKSIZE2,
                                            RUNS, INTERPRET)
        if NESTED:
            c2 = tl.load(code2_ptr + q)
            if INTERPRET:  # numpy rounds every operation on its own
                a = c2 * a2
            else:  # __nv_fmul_rn: never fused with the + offset (bitsandbytes rounds twice)
                a = libdevice.mul_rn(c2, a2)
            a = a + offset
        else:
            a = q
        words = tl.permute(words, (1, 0, 2, 3))
        a = tl.broadcast_to(tl.permute(a, (1, 0, 2))[:, :, :, None], words.shape)
        w = _tile_weights(words, a, code_ptr, W_KIND, INTERPRET, not TENSOR_CORES)
        x = tl.load(x_ptrs)
        if TENSOR_CORES:
            if INTERPRET:
                x = x.to(tl.float32)
            acc = tl.dot(tl.reshape(w, [BLOCK_N, BLOCK_K]),
                         tl.broadcast_to(x[:, None], [BLOCK_K, 16]), acc)
        else:  # float32 products and sums on the CUDA cores, a word's 8 in order, then per word
            x = tl.reshape(x.to(tl.float32), [NB, 4, RUNS, 8])
            acc += tl.sum(w * x[None, :, :, :, :], axis=4)
        w_ptrs += BLOCK_K // 8
        blocks += NB
        x_ptrs += BLOCK_K
        if not PREFETCH:
            words_n, q_n, a2_n = _load_tile(w_ptrs, absmax_ptr, absmax2_ptr, blocks, NESTED,
                                            BLOCKSIZE2, RUNS, INTERPRET)
    if TENSOR_CORES:
        col0 = (tl.arange(0, 16) == 0)[None, :]
        total = tl.sum(tl.where(col0, acc, 0.0), axis=1)  # every column holds the same sums
    else:
        total = tl.sum(tl.sum(tl.sum(acc, axis=3), axis=2), axis=1)
    if SPLIT > 1:
        tl.store(part_ptr + part * N + rows, total, mask=rows < N)
        tl.debug_barrier()  # every thread's partials written before the count says so
        done = tl.atomic_add(count_ptr + tile, 1, sem="acq_rel", scope="gpu")
        if done == SPLIT - 1:  # the last of the tile's programs: add the partials in order
            tl.debug_barrier()
            total = tl.load(part_ptr + rows, mask=rows < N, other=0.0, cache_modifier=".cg")
            for s in tl.static_range(1, SPLIT):
                total += tl.load(part_ptr + s * N + rows, mask=rows < N, other=0.0,
                                 cache_modifier=".cg")
            if HAS_BIAS:
                total += tl.load(bias_ptr + rows_safe).to(tl.float32)
            tl.store(out_ptr + rows, _rounded(total, W_KIND, INTERPRET), mask=rows < N)
            tl.atomic_xchg(count_ptr + tile, 0, sem="relaxed", scope="gpu")  # ready for the next call
    else:
        if HAS_BIAS:
            total += tl.load(bias_ptr + rows_safe).to(tl.float32)
        tl.store(out_ptr + rows, _rounded(total, W_KIND, INTERPRET), mask=rows < N)


@functools.lru_cache(maxsize=None)
def _kernel(interpret: bool):
    """The jitted kernel, built on first use: triton.jit reads TRITON_INTERPRET when it runs."""
    return triton.jit(_nf4_gemv_kernel)


def nf4_gemv(x: torch.Tensor, w: NF4Weight, bias: torch.Tensor | None = None,
             config: Config | None = None, workspace: Workspace | None = None) -> torch.Tensor:
    """``x @ dequantize_4bit(W).T + bias`` for one row of input (any leading shape of size 1).

    The output has ``x``'s dtype. ``config`` overrides the fixed rule (benchmarks only). A split
    config needs a :class:`Workspace` of that config; without one a call makes its own (a zeroed
    allocation: fine eagerly, not inside a CUDA graph -- ``NF4Linear`` keeps one a layer).
    """
    if x.numel() != x.shape[-1] or x.shape[-1] != w.k:
        raise ValueError(f"nf4_gemv takes one row of {w.k} inputs, got shape {tuple(x.shape)}")
    if config is None:
        config = workspace.config if workspace is not None else config_for(w, x.device)
    if w.k % (config.block_k * config.split) or config.block_k % w.blocksize:
        raise ValueError(f"block_k {config.block_k} x split {config.split} must divide K {w.k} "
                         f"and block_k be a multiple of the blocksize {w.blocksize}")
    if x.dtype != w.dtype:
        # dequantize_4bit rounds to QuantState.dtype, bitsandbytes 0.50's matmul path straight to
        # the input's: they agree only when the two are the same
        raise ValueError(f"input in {x.dtype}, weights quantized from {w.dtype}")
    if config.split > 1 and (workspace is None or workspace.config != config):
        workspace = Workspace(w.n, config, x.device)
    x = x.contiguous()
    out = torch.empty((*x.shape[:-1], w.n), dtype=x.dtype, device=x.device)
    dummy = w.absmax  # any tensor: the constexpr branches never read unused pointers
    grid = (-(-w.n // config.block_n), config.split)
    interpret = interpreting()
    _kernel(interpret)[grid](
        x, w.words, w.absmax,
        w.absmax2 if w.nested else dummy, w.code2 if w.nested else dummy,
        w.offset if w.nested else dummy, w.code,
        bias if bias is not None else dummy, out,
        workspace.partial if config.split > 1 else dummy,
        workspace.counts if config.split > 1 else dummy, w.n, w.k,
        BLOCKSIZE=w.blocksize, NESTED=w.nested, BLOCKSIZE2=w.blocksize2 or 1,
        W_KIND=_TORCH_TO_KIND[w.dtype], HAS_BIAS=bias is not None, BLOCK_N=config.block_n,
        BLOCK_K=config.block_k, SPLIT=config.split, PREFETCH=config.prefetch,
        TENSOR_CORES=config.tensor_cores, INTERPRET=interpret,
        # one stage: the kernel prefetches a tile in registers itself; Triton's pipelining (its
        # default, 3) stages the loads through shared memory, a pipe this kernel keeps out of
        num_warps=config.num_warps, num_stages=1)
    return out
