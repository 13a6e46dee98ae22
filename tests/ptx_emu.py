"""Run the few PTX instructions of the NF4 kernel's table lookup on the CPU, over numpy arrays.

One uint32 array a register, one element a thread; the semantics are PTX ISA 8.x's: ``prmt.b32``
(default mode: the low 3 bits of each selector nibble pick one of 8 bytes, bit 3 replicates that
byte's sign), ``mul.rn.f32``, ``cvt.rn.{bf16x2,f16x2}.f32`` (round to nearest even; the first
source goes to the upper half), and the integer basics. Anything else raises.
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
        elif op == 'mul.rn.f32': r = _u32(_f32(src[0]) * _f32(src[1]))
        elif op == 'cvt.rn.bf16x2.f32': r = (_bf16_rne(src[0]) << 16) | _bf16_rne(src[1])
        elif op == 'cvt.rn.f16x2.f32': r = (_f16_rne(src[0]) << 16) | _f16_rne(src[1])
        else: raise NotImplementedError(op)
        regs[d] = r.astype(np.uint32)
    return [regs[f'${i}'] for i in range(n_out)]
