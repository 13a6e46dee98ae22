"""Run the few PTX instructions of the NF4 kernel's table lookup on the CPU, over numpy arrays.

One uint32 array a register, one element a thread; the semantics are PTX ISA 8.x's: ``prmt.b32``
(default mode: the low 3 bits of each selector nibble pick one of 8 bytes, bit 3 replicates that
byte's sign), ``lop3.b32`` (any 8-bit table), ``mul.rn.f32``, ``cvt.rn.{bf16x2,f16x2}.f32`` (round
to nearest even; the first source goes to the upper half), and the integer basics. Anything else
raises.
``mma_m16n8k16`` models one warp's tensor-core product from its 32 lanes' fragments.
"""
import re
import numpy as np

def _f32(u): return u.view(np.float32)
def _u32(f): return np.asarray(f, dtype=np.float32).view(np.uint32)

def _bf16_rne(u):  # fp32 bits -> bf16 bits (round to nearest even), finite values
    u = u.astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint32) & 0xFFFF

def _f16_rne(u):  # fp32 bits -> fp16 bits (numpy's cast rounds to nearest even)
    return _f32(u).astype(np.float16).view(np.uint16).astype(np.uint32)


def _prmt(a, b, c):
    src = (b.astype(np.uint64) << 32) | a.astype(np.uint64)
    out = np.zeros_like(a, dtype=np.uint32)
    for k in range(4):
        sel = (c >> (4 * k)) & 0xF
        byte = ((src >> ((sel & 7).astype(np.uint64) * 8)) & 0xFF).astype(np.uint32)
        sign = np.where((byte & 0x80) != 0, 0xFF, 0).astype(np.uint32)
        byte = np.where((sel & 8) != 0, sign, byte)
        out |= byte << (8 * k)
    return out

def _lop3(a, b, c, lut):
    """Each bit of the result: bit (a << 2 | b << 1 | c) of the 8-bit table ``lut``."""
    out = np.zeros_like(a, dtype=np.uint32)
    for i in range(8):
        if lut >> i & 1:
            sa = a if i & 4 else ~a
            sb = b if i & 2 else ~b
            sc = c if i & 1 else ~c
            out |= sa & sb & sc
    return out


def _halves(reg, dtype):
    """A .bf16x2 / .f16x2 register -> its two values in float64 (lower half first)."""
    lo, hi = (reg & 0xFFFF).astype(np.uint32), (reg >> 16).astype(np.uint32)
    if dtype == "bf16":
        return (lo << 16).view(np.float32).astype(np.float64), (hi << 16).view(np.float32).astype(np.float64)
    return (lo.astype(np.uint16).view(np.float16).astype(np.float64),
            hi.astype(np.uint16).view(np.float16).astype(np.float64))


def mma_m16n8k16(a, b, c, dtype="bf16"):
    """``mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32`` over one warp: a (4
    registers), b (2) and c (4, float32 bits) are arrays of 32 lanes, fragments laid out as PTX ISA
    9.x's "Matrix Fragments for mma.m16n8k16 with floating point type" says (groupID = lane >> 2,
    threadID_in_group = lane % 4; a0,a1: row groupID, cols 2t, 2t+1; a2,a3: row groupID + 8;
    a4..a7: cols + 8; b0,b1: rows 2t, 2t+1, col groupID; b2,b3: rows + 8; c0,c1: row groupID,
    cols 2t, 2t+1; c2,c3: row groupID + 8). The products and sum are taken exactly (float64) and
    rounded once to float32: the tensor cores' own order and rounding of the sum are not modelled
    (they are fixed, which is what repeatability needs; the GPU tests check the real ones)."""
    lane = np.arange(32)
    gid, tig = lane >> 2, lane % 4
    A, B = np.zeros((16, 16)), np.zeros((16, 8))
    for r, (dr, dk) in enumerate(((0, 0), (8, 0), (0, 8), (8, 8))):
        lo, hi = _halves(a[r], dtype)
        A[gid + dr, 2 * tig + dk], A[gid + dr, 2 * tig + dk + 1] = lo, hi
    for r, dk in enumerate((0, 8)):
        lo, hi = _halves(b[r], dtype)
        B[2 * tig + dk, gid], B[2 * tig + dk + 1, gid] = lo, hi
    C = np.zeros((16, 8))
    for r, (dr, dc) in enumerate(((0, 0), (0, 1), (8, 0), (8, 1))):
        C[gid + dr, 2 * tig + dc] = c[r].view(np.float32)
    D = (A @ B + C).astype(np.float32)
    return [np.ascontiguousarray(D[gid + dr, 2 * tig + dc]).view(np.uint32)
            for dr, dc in ((0, 0), (0, 1), (8, 0), (8, 1))]


def run(asm, inputs, n_out, shape):
    regs = {}
    ops = {}
    def val(tok):
        tok = tok.strip()
        if tok.startswith('$'):
            i = int(tok[1:])
            return inputs[i - n_out] if i >= n_out else regs[tok]
        if tok.startswith('0f'):
            return np.full(shape, int(tok[2:], 16), dtype=np.uint32)
        if tok.startswith('0x'):
            return np.full(shape, int(tok, 16), dtype=np.uint32)
        if tok.isdigit():
            return np.full(shape, int(tok), dtype=np.uint32)
        return regs[tok]
    for line in asm.split('\n'):
        line = line.strip().rstrip(';')
        if not line or line in '{}' or line.startswith('.reg'):
            continue
        m = re.match(r'(\S+)\s+(.*)', line)
        op, args = m.group(1), [a.strip() for a in m.group(2).split(',')]
        d, src = args[0], [val(a) for a in args[1:]]
        if op == 'mov.b32': r = src[0]
        elif op == 'and.b32': r = src[0] & src[1]
        elif op == 'or.b32': r = src[0] | src[1]
        elif op == 'shr.u32': r = src[0] >> src[1]
        elif op == 'shl.b32': r = (src[0].astype(np.uint64) << src[1]).astype(np.uint32)
        elif op == 'prmt.b32': r = _prmt(src[0], src[1], src[2])
        elif op == 'lop3.b32': r = _lop3(src[0], src[1], src[2], int(args[4], 0))
        elif op == 'mul.rn.f32': r = _u32(_f32(src[0]) * _f32(src[1]))
        elif op == 'cvt.rn.bf16x2.f32': r = (_bf16_rne(src[0]) << 16) | _bf16_rne(src[1])
        elif op == 'cvt.rn.f16x2.f32': r = (_f16_rne(src[0]) << 16) | _f16_rne(src[1])
        else: raise NotImplementedError(op)
        regs[d] = r.astype(np.uint32)
    return [regs[f'${i}'] for i in range(n_out)]
