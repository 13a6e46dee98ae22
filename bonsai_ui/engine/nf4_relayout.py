"""A batch-1 NF4 product over weights re-laid out once at load: ``--nf4-kernel relayout``.

Why a second kernel: ``nf4_gemv`` reads bitsandbytes' bytes where they lie (row-major codes,
nested absmax). Compiled for sm90 it spends ~9 instructions a weight in its loop (its SASS,
compiled on the CPU by ``bench/nf4_sass.py``): 4 absmax tables of 40 instructions for 64 weights
a thread, a lookup and a float32 multiply-add per weight, and each row re-reads the input from L1.
An H100 is memory-bound below ~4.4 instructions a weight (132 SMs x 4 warp issues x 1.75 GHz x
32 lanes over 3.35 TB/s at half a byte a weight), so that kernel waits on issue, not on HBM
(issue 26: 255 tok/s at 7B, 30.7 % of the copy ceiling, 0.92x llama.cpp Q4_K_M).

What this one reads: the same NF4 values, exactly -- nothing is re-quantized. At load
(:func:`relayout`) every 4-bit code is moved, once, to where the thread that consumes it will
load it, and each block's absmax is resolved to the exact float32 that ``dequantize_4bit``
computes (double quantization: ``code2[q] * absmax2[block // blocksize2]``, then ``+ offset``,
two roundings). :func:`unlayout` moves them back: the tests round-trip bitsandbytes' tensors.

The tile: one warp, 16 rows x 256 inputs (2 KiB of codes). Lane ``4g + t`` owns rows ``g`` and
``g + 8`` of its 16 and the 64-weight absmax block ``t`` of the 256: 128 weights, so it builds the
two blocks' 16-entry tables once each (16 multiplies, 8 packed roundings, 8 byte permutes) and
keeps them in registers. The tile's codes are stored in the order the lanes load them: 4 loads of
16 bytes a lane, each warp-wide load 512 contiguous bytes; lane word ``i`` holds its row ``g``'s
codes ``4i .. 4i+3`` of block ``t`` and its row ``g+8``'s same four (element 2j = high nibble of
byte j, as bitsandbytes packs). A word becomes 8 weights by nf4_gemv's byte-permute lookup (the
two halves with the two rows' tables): 4 bf16x2 (or f16x2) registers, bit for bit
``dequantize_4bit``'s values.

The sums, two paths (``RelaidConfig.sums``):
- ``mma`` (the rule's pick): those 4 registers are exactly the A fragment of one tensor-core
  ``mma.sync.m16n8k16`` (rows g and g+8, k-slots 2t, 2t+1, 2t+8, 2t+9), and the input's matching
  4 values, as 2 bf16x2 registers held since the program started, its B fragment, broadcast to
  the 8 columns. The 16 k-slots of an mma are mapped to block t's positions ``4i .. 4i+3`` of each
  lane t (a permutation of K that the input follows exactly), so an mma adds 256 weights, every
  operand in registers: no shared memory, unlike ``tl.dot`` (nf4_gemv's tensor-core path, held by
  the shared-memory pipe). Per 8 weights: 5 setup instructions, 12 byte-permute lookups, 4
  pairings, 1 HMMA (~2.75 a weight, ~3.3 with the tables). The tensor cores add in float32 in
  their own fixed order: the same input gives the same bits every run.
- ``fma``: the same weights in float32 on the CUDA cores (a multiply-add each, ~5 a weight), the
  lane sums then added across the 4 lanes of a row in a fixed order.

The program: ``warps`` warps; each warp holds the input of ``units_per_warp`` 256-wide K units
in registers (loaded once per program) and walks ``groups_per_warp`` row groups with it, the next
group's 16-byte loads issued before the current group's arithmetic (``prefetch``), with
``evict_first`` (streaming) hints: a decode step reads each weight once. K is split over
``split`` programs where it holds more units (the split is what makes the input stationary);
each writes its rows' partial sums, and the tile's last program (an integer counter, atomically
incremented) adds the ``split`` partials **in index order**, adds the bias and rounds once --
no float atomics, so a run repeats bit for bit whichever program finishes last.

Fused layers: q/k/v (and gate/up) are re-laid out side by side as one weight of their summed
rows, so one launch reads them all (:class:`RelaidNF4` ``parts``; ``nf4_linear`` splits the output).

Costs: a second copy of the 4-bit weights (bitsandbytes' own stays for prefill), and 4 bytes of
absmax a 64-weight block instead of 1 + 1/64 (12.5 % of the codes' bytes instead of 3.2 %).

On the CPU, ``TRITON_INTERPRET=1`` runs the same kernel -- the same addresses, loads, lanes and
split-K -- with the PTX (table, lookup, mma) written in Triton operations; the tests run the PTX
texts in an emulator (tests/ptx_emu.py) over the lanes' registers as the relayout places them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch
import triton
import triton.language as tl

from .nf4_gemv import (_TORCH_TO_KIND, NF4_BITS, TABLE_BF16, TABLE_CONSTRAINTS, TABLE_F16,
                       _bf16_in_f32, _rounded, _sms, interpreting)

BLOCKSIZE = 64  # the absmax block a lane owns (Unsloth's and transformers' NF4 blocksize)
GROUP = 16  # rows a tile: the M of mma.m16n8k16
UNIT = 256  # inputs a tile: 4 lanes x one block each
TILE_WORDS = 512  # int32 words of codes a tile: 4 loads x 32 lanes x 4 words = 2 KiB
TILE_ABSMAX = 64  # float32 absmax a tile: 32 lanes x 2 rows


def _lut2_asm() -> str:
    """PTX: $4 = 8 codes (elements 0-3: the lane's row g, 4-7: its row g+8), $5..$12 row g's table
    (low bytes, then high bytes), $13..$20 row g+8's, $21 = 0x32103210 -> $0..$3 the pairs (e0,e1) (e2,e3) (e4,e5)
    (e6,e7). nf4_gemv's LUT, with a table for each half (see its comments)."""
    # (s & 0x44444444) | 0x32103210 as one lop3 (0xEA: a & b | c) with the constant in a
    # register ($21): one instruction takes one 32-bit immediate, and written as an and and an
    # or ptxas kept them two. 5 setup instructions a word instead of 6
    lines = ["{", ".reg .b32 i0, i1, s0, s1, la, lb, ha, hb, l0, h0, l1, h1;",
             "and.b32 i0, $4, 0x77777777;", "shr.u32 s0, $4, 1;",
             "lop3.b32 s0, s0, 0x44444444, $21, 0xEA;", "shr.u32 i1, i0, 16;", "shr.u32 s1, s0, 16;"]
    for half, base in (("0", 5), ("1", 13)):
        lo = [f"${base + m}" for m in range(4)]
        hi = [f"${base + 4 + m}" for m in range(4)]
        lines += [f"prmt.b32 la, {lo[0]}, {lo[1]}, i{half};", f"prmt.b32 lb, {lo[2]}, {lo[3]}, i{half};",
                  f"prmt.b32 l{half}, la, lb, s{half};",
                  f"prmt.b32 ha, {hi[0]}, {hi[1]}, i{half};", f"prmt.b32 hb, {hi[2]}, {hi[3]}, i{half};",
                  f"prmt.b32 h{half}, ha, hb, s{half};"]
    for half in "01":
        lines += [f"prmt.b32 ${2 * int(half)}, l{half}, h{half}, 0x4051;",
                  f"prmt.b32 ${2 * int(half) + 1}, l{half}, h{half}, 0x6273;"]
    return "\n".join(lines + ["}"])


LUT2 = tl.constexpr(_lut2_asm())
LUT2_CONSTRAINTS = tl.constexpr(",".join(["=r"] * 4 + ["r"] * 18))
# D = A B + C, one warp: A 16x16 (4 regs of 2), B 16x8 (2 regs of 2), C and D 16x8 float32
MMA_BF16 = tl.constexpr("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                        "{$0, $1, $2, $3}, {$4, $5, $6, $7}, {$8, $9}, {$10, $11, $12, $13};")
MMA_F16 = tl.constexpr("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                       "{$0, $1, $2, $3}, {$4, $5, $6, $7}, {$8, $9}, {$10, $11, $12, $13};")
MMA_CONSTRAINTS = tl.constexpr(",".join(["=f"] * 4 + ["r"] * 6 + ["f"] * 4))


# -- the re-layout (load time) ------------------------------------------------------------------

def relayout_reason(qs, weight: torch.Tensor) -> str | None:
    """Why this layer can't be re-laid out exactly, or None when it can."""
    if qs is None:
        return "no quant_state (weights not quantized yet)"
    if qs.quant_type != "nf4":
        return f"quant type {qs.quant_type!r} (only nf4 is read)"
    if getattr(qs, "packing_format_for_cpu", False):
        return "weights repacked for bitsandbytes' CPU kernel"
    if len(qs.shape) != 2:
        return f"weight shape {tuple(qs.shape)} is not 2-D"
    n, k = qs.shape
    if qs.blocksize != BLOCKSIZE:
        return f"blocksize {qs.blocksize} (the re-laid-out kernel reads {BLOCKSIZE})"
    if k % BLOCKSIZE:
        return f"in_features {k} is not a multiple of the blocksize {BLOCKSIZE}"
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
        if qs.absmax.dtype != torch.uint8 or qs.state2.code.numel() != 256:
            return f"nested absmax stored as {qs.absmax.dtype} with a code of {qs.state2.code.numel()}"
    elif qs.absmax.dtype != torch.float32:
        return f"absmax stored as {qs.absmax.dtype}"
    return None


def resolve_absmax(qs) -> torch.Tensor:
    """Each block's absmax as the float32 ``dequantize_4bit`` multiplies by: with double
    quantization ``code2[q] * absmax2[block // blocksize2]``, rounded, then ``+ offset``, rounded
    (bitsandbytes' ``dequantize_blockwise`` then ``absmax += offset``: two roundings, never one
    fused multiply-add)."""
    if not qs.nested:
        return qs.absmax.float().reshape(-1).clone()
    s2 = qs.state2
    q = qs.absmax.reshape(-1).long()
    scale = s2.absmax.float().reshape(-1)[torch.arange(q.numel(), device=q.device) // s2.blocksize]
    absmax = s2.code.float().to(q.device)[q] * scale  # one rounding: a product of two float32
    offset = qs.offset if torch.is_tensor(qs.offset) else torch.tensor(qs.offset)
    return absmax + offset.to(device=absmax.device, dtype=torch.float32)  # and one for the sum


@dataclass(frozen=True)
class RelaidNF4:
    """One or more layers' NF4 weights (side by side in rows), re-laid out for the kernel."""

    codes: torch.Tensor  # int32 [groups * units * TILE_WORDS]
    absmax: torch.Tensor  # float32 [groups * units * TILE_ABSMAX]
    code: torch.Tensor  # float32 [16], bitsandbytes' NF4 table (the interpreter's lookup)
    n: int  # rows of all parts together
    k: int  # in_features (shared)
    dtype: torch.dtype
    parts: tuple[int, ...] = field(default=())  # each layer's rows, in order (sum = n)

    @property
    def groups(self) -> int:
        return -(-self.n // GROUP)

    @property
    def units(self) -> int:
        return -(-self.k // UNIT)

    @property
    def nbytes(self) -> int:
        """Bytes one product reads from the weights (codes and absmax, padding included)."""
        return self.codes.numel() * 4 + self.absmax.numel() * 4


def _nibbles(packed: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """bitsandbytes' packed bytes -> uint8 codes [n, k] (element 2j = high nibble of byte j)."""
    b = packed.reshape(-1).view(torch.uint8)[: n * k // 2]
    return torch.stack((b >> 4, b & 15), dim=-1).reshape(n, k)


# the tile's element order as a permutation of the [rows, inputs] codes viewed as
# (rg, h, g, u, t, j, w, e4) with row = 16 rg + 8 h + g and input = 256 u + 64 t + 16 j + 4 w + e4:
# stored (rg, u, j, lane = 4 g + t, w, element = 4 h + e4)
_CODE_ORDER = (0, 3, 5, 2, 4, 6, 1, 7)
# absmax viewed as (rg, h, g, u, t), stored (rg, u, lane = 4 g + t, h)
_ABSMAX_ORDER = (0, 3, 2, 4, 1)


def relayout(layers: list[tuple[torch.Tensor, object]]) -> RelaidNF4:
    """Re-lay out bitsandbytes NF4 layers of the same in_features and dtype side by side (their
    rows concatenated in order): codes moved to the order the kernel's lanes load them, absmax
    resolved to float32. Rows are padded to 16 and inputs to 256 with zero weights (absmax 0)."""
    if not layers:
        raise ValueError("nothing to re-lay out")
    reasons = [relayout_reason(qs, packed) for packed, qs in layers]
    if any(reasons):
        raise ValueError(f"can't re-lay out this layer: {next(r for r in reasons if r)}")
    ks = {int(qs.shape[1]) for _, qs in layers}
    dtypes = {qs.dtype for _, qs in layers}
    if len(ks) != 1 or len(dtypes) != 1:
        raise ValueError(f"fused layers must share in_features and dtype, got {ks} and {dtypes}")
    k, dtype = ks.pop(), dtypes.pop()
    parts = tuple(int(qs.shape[0]) for _, qs in layers)
    n = sum(parts)
    device = layers[0][0].device
    groups, units = -(-n // GROUP), -(-k // UNIT)
    codes = torch.full((groups * GROUP, units * UNIT), 7, dtype=torch.uint8, device=device)
    absmax = torch.zeros((groups * GROUP, units * UNIT // BLOCKSIZE), dtype=torch.float32,
                         device=device)
    row = 0
    for (packed, qs), rows in zip(layers, parts):
        codes[row:row + rows, :k] = _nibbles(packed, rows, k)
        absmax[row:row + rows, :k // BLOCKSIZE] = resolve_absmax(qs).view(rows, k // BLOCKSIZE)
        row += rows
    tiled = codes.view(groups, 2, 8, units, 4, 4, 4, 4).permute(*_CODE_ORDER).reshape(-1, 2)
    packed_tiles = ((tiled[:, 0] << 4) | tiled[:, 1]).contiguous().view(torch.int32)
    absmax_tiles = absmax.view(groups, 2, 8, units, 4).permute(*_ABSMAX_ORDER).reshape(-1)
    code = layers[0][1].code.float().to(device).contiguous()
    return RelaidNF4(packed_tiles, absmax_tiles.contiguous(), code, n, k, dtype, parts)


def unlayout(r: RelaidNF4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The inverse, for the tests: each part's (packed uint8 [rows*k/2], absmax float32 [blocks])
    in bitsandbytes' row-major order (absmax resolved)."""
    groups, units = r.groups, r.units
    b = r.codes.view(torch.uint8)
    tiled = torch.stack((b >> 4, b & 15), dim=-1).reshape(groups, units, 4, 8, 4, 4, 2, 4)
    inverse = [_CODE_ORDER.index(d) for d in range(8)]
    codes = tiled.permute(*inverse).reshape(groups * GROUP, units * UNIT)
    am = r.absmax.view(groups, units, 8, 4, 2)
    absmax = am.permute(*[_ABSMAX_ORDER.index(d) for d in range(5)]).reshape(groups * GROUP, -1)
    out, row = [], 0
    for rows in r.parts:
        c = codes[row:row + rows, :r.k].reshape(-1, 2)
        out.append((((c[:, 0] << 4) | c[:, 1]).contiguous(),
                    absmax[row:row + rows, :r.k // BLOCKSIZE].reshape(-1).contiguous()))
        row += rows
    return out


def dequantize_relaid(r: RelaidNF4) -> list[torch.Tensor]:
    """Each part's weights [rows, k] in its dtype, de-quantized from the re-laid-out tensors as
    ``dequantize_4bit`` does (``dtype(code[q] * absmax)``, one rounding): the tests compare them
    with bitsandbytes' own, bit for bit."""
    out = []
    for (packed, absmax), rows in zip(unlayout(r), r.parts):
        q = torch.stack((packed >> 4, packed & 15), dim=-1).reshape(rows, r.k).long()
        w = r.code[q] * absmax.view(rows, r.k // BLOCKSIZE).repeat_interleave(BLOCKSIZE, dim=1)
        out.append(w.to(r.dtype))
    return out


# -- the kernel --------------------------------------------------------------------------------

@dataclass(frozen=True)
class RelaidConfig:
    warps: int = 4  # a program's warps (each its own row groups, the same K units)
    groups_per_warp: int = 1  # row groups a warp walks with its input held in registers
    units_per_warp: int = 2  # 256-wide K units a warp adds (the input of each held: 32 registers)
    sums: str = "mma"  # "mma": tensor cores from registers; "fma": float32 on the CUDA cores
    prefetch: bool = True  # the next row group's loads issued before the current one's work

    def split(self, units: int) -> int:
        return units // self.units_per_warp

    def programs(self, groups: int) -> int:
        return -(-groups // (self.warps * self.groups_per_warp))


RESIDENT = 3  # programs an SM holds: 4 warps at ~130 registers (the sm90 compile, RG >= 2)


def pick_relaid_config(groups: int, units: int, sms: int) -> RelaidConfig:
    """The one fixed rule (no autotuning: the same card always runs the same program): 4 warps;
    two K units a warp where the units pair up (fewer splits; 64 registers of input); and a warp
    walks 2, 4, 8 row groups with its input held while that still leaves two full waves of
    programs (RESIDENT an SM): more walking reads the input less often, fewer programs fill the
    card worse. Untimed: the GPU session's per-shape sweep (bench/nf4_bench.py) is to confirm or
    replace it. 7B on 132 SMs: q/k/v fused 72 x 7 programs, o 56 x 7, gate/up fused walk 4
    (148 x 7), down walk 2 (28 x 37)."""
    per_warp = 2 if units % 2 == 0 else 1
    split = units // per_warp
    walk = 1
    while walk < 8 and -(-groups // (4 * walk * 2)) * split >= 2 * RESIDENT * sms:
        walk *= 2
    return RelaidConfig(4, walk, per_warp)


def relaid_config_for(r: RelaidNF4, device: torch.device) -> RelaidConfig:
    return pick_relaid_config(r.groups, r.units,
                              _sms(device.index or 0) if device.type == "cuda" else 1)


class RelaidWorkspace:
    """Split-K partial sums and per-program counters (zero between calls: the last program of a
    row program resets its counter). One call at a time: the decoder's one stream."""

    def __init__(self, r: RelaidNF4, config: RelaidConfig, device):
        self.partial = torch.empty(max(config.split(r.units), 1) * r.n, dtype=torch.float32,
                                   device=device)
        self.counts = torch.zeros(config.programs(r.groups), dtype=torch.int32, device=device)
        self.config = config


@triton.jit
def _split4(v):
    """[T, 4] -> its 4 columns, in order (each thread keeps its own 4)."""
    a, b = tl.split(tl.reshape(v, [v.shape[0], 2, 2]))  # a: columns 0, 2; b: 1, 3
    a0, a2 = tl.split(a)
    b1, b3 = tl.split(b)
    return a0, b1, a2, b3


@triton.jit
def _pair(p, W_KIND: tl.constexpr):
    """A bf16x2 / f16x2 register -> its (low, high) halves in float32."""
    u = p.to(tl.uint32, bitcast=True)
    if W_KIND == 0:  # a bf16 is the top half of a float32
        lo = (u << 16).to(tl.float32, bitcast=True)
        hi = (u & 0xFFFF0000).to(tl.float32, bitcast=True)
    else:
        lo = (u & 0xFFFF).to(tl.uint16).to(tl.float16, bitcast=True).to(tl.float32)
        hi = (u >> 16).to(tl.uint16).to(tl.float16, bitcast=True).to(tl.float32)
    return lo, hi


@triton.jit
def _weight(word, e: tl.constexpr, absmax, code_ptr, W_KIND: tl.constexpr):
    """Interpreter: element e of a word, de-quantized as dequantize_4bit does, in float32."""
    q = (word.to(tl.uint32, bitcast=True) >> (8 * (e // 2) + 4 * (1 - e % 2))) & 15
    w = tl.load(code_ptr + q.to(tl.int32)) * absmax
    if W_KIND == 0:
        w = _bf16_in_f32(w)  # the interpreter's bf16 cast truncates
    else:
        w = w.to(tl.float16).to(tl.float32)
    return w


@triton.jit
def _tables(a, W_KIND: tl.constexpr):
    """An absmax -> its block's 16 weights as 8 registers (4 of low bytes, 4 of high bytes)."""
    if W_KIND == 0:
        t = tl.inline_asm_elementwise(TABLE_BF16, TABLE_CONSTRAINTS, [a], dtype=(tl.int32,) * 8,
                                      is_pure=True, pack=1)
    else:
        t = tl.inline_asm_elementwise(TABLE_F16, TABLE_CONSTRAINTS, [a], dtype=(tl.int32,) * 8,
                                      is_pure=True, pack=1)
    return t


@triton.jit
def _word(word, ta, tb, aa, ab, xa, xb, c0, c1, c2, c3, sel, code_ptr, NW: tl.constexpr,
          W_KIND: tl.constexpr, MMA: tl.constexpr, INTERPRET: tl.constexpr):
    """One word of a lane's codes (4 weights of its row g, 4 of its row g+8) against its 4 inputs
    (xa, xb: bf16x2 / f16x2 pairs). MMA: c0..c3 is the mma's D, rows g (c0, c1) and g+8 (c2, c3)
    summed over the warp's tile so far (its 8 columns are equal: B is the input in each); else c0
    and c2 are the lane's own sums, added across lanes at the end (c1 = c0, c3 = c2)."""
    if INTERPRET:  # the PTX in Triton operations: the interpreter runs no inline assembly
        x0, x1 = _pair(xa, W_KIND)
        x2, x3 = _pair(xb, W_KIND)
        sa = _weight(word, 0, aa, code_ptr, W_KIND) * x0
        sa += _weight(word, 1, aa, code_ptr, W_KIND) * x1
        sa += _weight(word, 2, aa, code_ptr, W_KIND) * x2
        sa += _weight(word, 3, aa, code_ptr, W_KIND) * x3
        sb = _weight(word, 4, ab, code_ptr, W_KIND) * x0
        sb += _weight(word, 5, ab, code_ptr, W_KIND) * x1
        sb += _weight(word, 6, ab, code_ptr, W_KIND) * x2
        sb += _weight(word, 7, ab, code_ptr, W_KIND) * x3
        if MMA:  # the mma adds the 4 lanes of each row group (lanes 4g .. 4g+3) into every one
            sa = _lanes_summed(sa, NW)
            sb = _lanes_summed(sb, NW)
        c0 += sa
        c2 += sb
        c1 = c0
        c3 = c2
    else:
        p0, p1, p2, p3 = tl.inline_asm_elementwise(
            LUT2, LUT2_CONSTRAINTS,
            [word, ta[0], ta[1], ta[2], ta[3], ta[4], ta[5], ta[6], ta[7],
             tb[0], tb[1], tb[2], tb[3], tb[4], tb[5], tb[6], tb[7], sel],
            dtype=(tl.int32,) * 4, is_pure=True, pack=1)
        if MMA:  # A = (row g: e0 e1 | row g+8: e4 e5 | row g: e2 e3 | row g+8: e6 e7), B = (xa, xb)
            if W_KIND == 0:
                c0, c1, c2, c3 = tl.inline_asm_elementwise(
                    MMA_BF16, MMA_CONSTRAINTS, [p0, p2, p1, p3, xa, xb, c0, c1, c2, c3],
                    dtype=(tl.float32,) * 4, is_pure=True, pack=1)
            else:
                c0, c1, c2, c3 = tl.inline_asm_elementwise(
                    MMA_F16, MMA_CONSTRAINTS, [p0, p2, p1, p3, xa, xb, c0, c1, c2, c3],
                    dtype=(tl.float32,) * 4, is_pure=True, pack=1)
        else:
            x0, x1 = _pair(xa, W_KIND)
            x2, x3 = _pair(xb, W_KIND)
            w0, w1 = _pair(p0, W_KIND)
            w2, w3 = _pair(p1, W_KIND)
            w4, w5 = _pair(p2, W_KIND)
            w6, w7 = _pair(p3, W_KIND)
            c0 += w0 * x0
            c0 += w1 * x1
            c0 += w2 * x2
            c0 += w3 * x3
            c2 += w4 * x0
            c2 += w5 * x1
            c2 += w6 * x2
            c2 += w7 * x3
            c1 = c0
            c3 = c2
    return c0, c1, c2, c3


@triton.jit
def _lanes_summed(v, NW: tl.constexpr):
    """Each lane's value -> the sum over the 4 lanes of its row group (4g .. 4g+3), in a fixed
    order, in every one of them."""
    s = tl.sum(tl.reshape(v, [NW, 8, 4]), axis=2)
    return tl.reshape(tl.broadcast_to(s[:, :, None], [NW, 8, 4]), [NW * 32])


@triton.jit
def _load_group(codes_ptr, absmax_ptr, rg, unit0, lane, GROUPS, KW: tl.constexpr,
                UNITS: tl.constexpr):
    """A row group's KW tiles as the lane loads them: 16 words a tile (4 loads of 16 bytes,
    512 contiguous bytes a warp each) and its 2 absmax (row g, row g+8). Streaming hints: each
    weight is read once a step. A group past the last (a program's tail) reads the last group
    again, unmasked (a masked load costs a move per register for its default), and stores nothing."""
    rg = tl.minimum(rg, GROUPS - 1)
    words = ()
    absmax = ()
    for u in tl.static_range(KW):
        tile = rg * UNITS + unit0 + u
        for j in tl.static_range(4):
            offs = (tile * 512 + j * 128 + lane * 4)[:, None] + tl.arange(0, 4)[None, :]
            v = tl.load(codes_ptr + offs, eviction_policy="evict_first")
            a, b, c, d = _split4(v)
            words = words + (a, b, c, d)
        offs = (tile * 64 + lane * 2)[:, None] + tl.arange(0, 2)[None, :]
        a2 = tl.load(absmax_ptr + offs, eviction_policy="evict_first")
        aa, ab = tl.split(a2)
        absmax = absmax + (aa, ab)
    return words, absmax


def _relaid_kernel(x_ptr, codes_ptr, absmax_ptr, code_ptr, bias_ptr, out_ptr, part_ptr, count_ptr,
                   N, GROUPS, K: tl.constexpr, NW: tl.constexpr, RG: tl.constexpr,
                   KW: tl.constexpr, SPLIT: tl.constexpr, W_KIND: tl.constexpr,
                   HAS_BIAS: tl.constexpr, MMA: tl.constexpr, PREFETCH: tl.constexpr,
                   INTERPRET: tl.constexpr):
    T: tl.constexpr = NW * 32
    UNITS: tl.constexpr = SPLIT * KW
    pid_r = tl.program_id(0)
    pid_s = tl.program_id(1)
    # one element a thread: element i of every [T] tensor is thread i's (lane i % 32 of warp
    # i // 32), which the mma's register fragments rely on
    idx = tl.arange(0, T)
    lane = idx % 32
    warp = idx // 32
    g = lane // 4
    t = lane % 4
    unit0 = pid_s * KW
    sel = tl.full([T], 0x32103210, tl.int32)  # the lookup's select constant, in a register
    # the input of the lane's block of each of the warp's KW units, as bf16x2 words, loaded once:
    # xs[32 u + m] = (x[k0 + 2m], x[k0 + 2m + 1]), k0 = 256 (unit0 + u) + 64 t
    xs = ()
    for u in tl.static_range(KW):
        k0 = (unit0 + u) * 256 + t * 64
        for j in tl.static_range(8):
            offs = (k0 // 2 + j * 4)[:, None] + tl.arange(0, 4)[None, :]
            v = tl.load(x_ptr + offs, mask=offs * 2 < K, other=0)
            a, b, c, d = _split4(v)
            xs = xs + (a, b, c, d)
    rg = (pid_r * RG) * NW + warp
    words, absmax = _load_group(codes_ptr, absmax_ptr, rg, unit0, lane, GROUPS, KW, UNITS)
    for r in tl.static_range(RG):
        rg = (pid_r * RG + r) * NW + warp  # the warps of a program take neighbouring groups
        if PREFETCH and r + 1 < RG:
            words_n, absmax_n = _load_group(codes_ptr, absmax_ptr, rg + NW, unit0, lane, GROUPS,
                                            KW, UNITS)
        c0 = tl.zeros([T], dtype=tl.float32)
        c1 = c0
        c2 = c0
        c3 = c0
        for u in tl.static_range(KW):
            ta = tl.zeros([T], dtype=tl.int32)
            tb = ta
            if not INTERPRET:
                ta = _tables(absmax[2 * u], W_KIND)
                tb = _tables(absmax[2 * u + 1], W_KIND)
            for w in tl.static_range(16):
                c0, c1, c2, c3 = _word(words[16 * u + w], ta, tb, absmax[2 * u],
                                       absmax[2 * u + 1], xs[32 * u + 2 * w],
                                       xs[32 * u + 2 * w + 1], c0, c1, c2, c3, sel, code_ptr, NW,
                                       W_KIND, MMA, INTERPRET)
        if not MMA:  # the 4 lanes of each row pair, added in a fixed order
            c0 = _lanes_summed(c0, NW)
            c2 = _lanes_summed(c2, NW)
        # lane 4g writes row g, lane 4g+1 row g+8 (every lane of the row holds the same sums)
        row = rg * 16 + g + 8 * (t == 1).to(tl.int32)
        val = tl.where(t == 1, c2, c0)
        ok = (t < 2) & (rg < GROUPS) & (row < N)
        if SPLIT > 1:
            tl.store(part_ptr + pid_s * N + row, val, mask=ok)
        else:
            if HAS_BIAS:
                val += tl.load(bias_ptr + row, mask=ok, other=0.0).to(tl.float32)
            tl.store(out_ptr + row, _rounded(val, W_KIND, INTERPRET), mask=ok)
        if PREFETCH and r + 1 < RG:
            words, absmax = words_n, absmax_n
        elif r + 1 < RG:
            words, absmax = _load_group(codes_ptr, absmax_ptr, rg + NW, unit0, lane, GROUPS, KW,
                                        UNITS)
    if SPLIT > 1:
        tl.debug_barrier()  # every thread's partials written before the count says so
        done = tl.atomic_add(count_ptr + pid_r, 1, sem="acq_rel", scope="gpu")
        if done == SPLIT - 1:  # the last of the row program's splits: add them in index order
            tl.debug_barrier()
            ROWS: tl.constexpr = RG * NW * 16
            rows = pid_r * ROWS + tl.arange(0, ROWS)
            total = tl.load(part_ptr + rows, mask=rows < N, other=0.0, cache_modifier=".cg")
            for s in range(1, SPLIT):
                total += tl.load(part_ptr + s * N + rows, mask=rows < N, other=0.0,
                                 cache_modifier=".cg")
            if HAS_BIAS:
                total += tl.load(bias_ptr + rows, mask=rows < N, other=0.0).to(tl.float32)
            tl.store(out_ptr + rows, _rounded(total, W_KIND, INTERPRET), mask=rows < N)
            tl.atomic_xchg(count_ptr + pid_r, 0, sem="relaxed", scope="gpu")  # for the next call


@functools.lru_cache(maxsize=None)
def _kernel(interpret: bool):
    """The jitted kernel, built on first use: triton.jit reads TRITON_INTERPRET when it runs."""
    return triton.jit(_relaid_kernel)


def relaid_gemv(x: torch.Tensor, r: RelaidNF4, bias: torch.Tensor | None = None,
                config: RelaidConfig | None = None,
                workspace: RelaidWorkspace | None = None) -> torch.Tensor:
    """``x @ dequantize_4bit(W).T + bias`` for one row of input, W every part side by side: the
    output holds the parts' rows in order. Allocates only its output (a split config needs a
    :class:`RelaidWorkspace`; without one a call makes its own, which a CUDA graph can't)."""
    if x.numel() != x.shape[-1] or x.shape[-1] != r.k:
        raise ValueError(f"relaid_gemv takes one row of {r.k} inputs, got shape {tuple(x.shape)}")
    if x.dtype != r.dtype:
        raise ValueError(f"input in {x.dtype}, weights quantized from {r.dtype}")
    if config is None:
        config = workspace.config if workspace is not None else relaid_config_for(r, x.device)
    if r.units % config.units_per_warp or config.sums not in ("mma", "fma"):
        raise ValueError(f"{config} does not tile {r.units} K units")
    split = config.split(r.units)
    if split > 1 and (workspace is None or workspace.config != config):
        workspace = RelaidWorkspace(r, config, x.device)
    x = x.contiguous()
    out = torch.empty((*x.shape[:-1], r.n), dtype=x.dtype, device=x.device)
    dummy = r.absmax
    grid = (config.programs(r.groups), split)
    interpret = interpreting()
    _kernel(interpret)[grid](
        x.view(torch.int32), r.codes, r.absmax, r.code, bias if bias is not None else dummy, out,
        workspace.partial if split > 1 else dummy, workspace.counts if split > 1 else dummy,
        r.n, r.groups, K=r.k, NW=config.warps, RG=config.groups_per_warp,
        KW=config.units_per_warp, SPLIT=split, W_KIND=_TORCH_TO_KIND[r.dtype],
        HAS_BIAS=bias is not None, MMA=config.sums == "mma", PREFETCH=config.prefetch,
        INTERPRET=interpret, num_warps=config.warps, num_stages=1)
    return out
