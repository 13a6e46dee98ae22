"""The NF4 kernels compiled for an H100/H200 (sm_90) on the CPU: instructions a weight, registers,
spills, and where the operands live -- no GPU needed (Triton's bundled ptxas and nvdisasm).

Why: a batch-1 4-bit product is memory-bound only below ~4.4 instructions a weight on an H100
(132 SMs x 4 warp issues x 1.75 GHz x 32 lanes over 3.35 TB/s at half a byte a weight), so the
count in the SASS is the first thing to know about a kernel, before a GPU is at hand.

What it counts:
- ``nf4_gemv`` (``--nf4-kernel on``): its K loop's body (the instructions between the loop label
  and its backward branch) over the weights a thread handles an iteration;
- ``nf4_relayout`` (``--nf4-kernel relayout``): the kernel with a warp walking 2 row groups minus
  the same with 1 (its row-group loop is unrolled), over the weights a lane handles in a group --
  the cost of the hot part, without the once-a-program input loads and the split-K epilogue;
- both: registers a thread, local memory (spills), shared memory, instructions by opcode, and for
  the relayout kernel whether Triton's layouts keep every [threads]-shaped tensor one element a
  thread (the mma's register fragments need it) with no layout conversion.

usage: python bench/nf4_sass.py [--n 18944 --k 3584] [--only relayout-mma] [--out FILE]
(~15 s on 2 cores; not under TRITON_INTERPRET=1). Prints one JSON object a kernel.
tests/test_nf4_relayout.py runs ``--only relayout-mma`` to guard the kernel's layouts and count.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SM90 = ("cuda", 90, 32)


def _tools() -> str:
    import triton

    found = glob.glob(os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin"))
    if not found:
        raise RuntimeError("Triton's bundled nvdisasm was not found")
    return found[0]


def _compile(fn, signature: dict, constants: dict, num_warps: int, aligned: int):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    sig = dict(signature)
    for name in constants:
        sig[name] = "constexpr"
    attrs = {(i,): [["tt.divisibility", 16]] for i in range(aligned)}  # pointers 16-byte aligned
    return triton.compile(ASTSource(fn, sig, constants, attrs), target=GPUTarget(*SM90),
                          options=dict(num_warps=num_warps, num_stages=1))


def _sass(kernel) -> tuple[str, dict]:
    """SASS text and the resource line (REG, LOCAL, SHARED) of a compiled kernel."""
    tools = _tools()
    with tempfile.TemporaryDirectory() as tmp:
        cubin = os.path.join(tmp, "k.cubin")
        Path(cubin).write_bytes(kernel.asm["cubin"])
        sass = subprocess.run([f"{tools}/nvdisasm", "-c", cubin], capture_output=True,
                              text=True, check=True).stdout
        usage = subprocess.run([f"{tools}/cuobjdump", "--dump-resource-usage", cubin],
                               capture_output=True, text=True, check=True).stdout
    res = {k.lower(): int(v) for k, v in re.findall(r"\b(REG|LOCAL|SHARED|STACK):(\d+)", usage)}
    return sass, res


def _opcodes(sass: str) -> Counter:
    return Counter(re.findall(r"^\s+/\*[0-9a-f]+\*/\s+(?:@!?U?P[0-9T] )?([A-Z0-9_]+)", sass, re.M))


def compile_relaid(k: int, rg: int, kw: int, split: int, mma: bool = True, w_kind: int = 0,
                   prefetch: bool = True, warps: int = 4):
    """The relayout kernel for sm_90: (opcode counts, resources, TTGIR text)."""
    import triton

    from bonsai_ui.engine import nf4_relayout as R

    sig = {"x_ptr": "*i32", "codes_ptr": "*i32", "absmax_ptr": "*fp32", "code_ptr": "*fp32",
           "bias_ptr": "*bf16" if w_kind == 0 else "*fp16",
           "out_ptr": "*bf16" if w_kind == 0 else "*fp16", "part_ptr": "*fp32",
           "count_ptr": "*i32", "N": "i32", "GROUPS": "i32"}
    const = dict(K=k, NW=warps, RG=rg, KW=kw, SPLIT=split, W_KIND=w_kind, HAS_BIAS=False,
                 MMA=mma, PREFETCH=prefetch, INTERPRET=False)
    kernel = _compile(triton.jit(R._relaid_kernel), sig, const, warps, 8)
    sass, res = _sass(kernel)
    return _opcodes(sass), res, kernel.asm["ttgir"]


def relaid_report(n: int, k: int, mma: bool = True, sms: int = 132) -> dict:
    from bonsai_ui.engine.nf4_relayout import GROUP, UNIT, pick_relaid_config

    rule = pick_relaid_config(-(-n // GROUP), -(-k // UNIT), sms)
    kw = rule.units_per_warp
    split = -(-k // UNIT) // kw
    one, res1, ttgir = compile_relaid(k, 1, kw, split, mma)
    two, res2, _ = compile_relaid(k, 2, kw, split, mma)
    per_group = {op: two[op] - one[op] for op in set(one) | set(two) if two[op] != one[op]}
    weights = 128 * kw  # a lane's weights in one row group: 2 rows x 64 a K unit
    layouts = re.findall(r"#blocked\d* = #ttg\.blocked<\{(.*?)\}>", ttgir)
    return dict(kernel="relayout", sums="mma" if mma else "fma", n=n, k=k, rule=vars(rule),
                instructions_per_weight=round(sum(per_group.values()) / weights, 3),
                per_weight={op: round(c / weights, 3) for op, c in
                            sorted(per_group.items(), key=lambda kv: -kv[1]) if abs(c) >= 4},
                hmma_per_group=per_group.get("HMMA", 0), registers=res2.get("reg"),
                spill_bytes=res2.get("local", 0), shared_bytes=res2.get("shared"),
                layout_conversions=len(re.findall(r"convert_layout|local_alloc", ttgir)),
                layouts=layouts)


def gemv_report(n: int, k: int, sms: int = 132) -> dict:
    """The existing kernel (nf4_gemv), the rule's config for this shape."""
    import triton

    from bonsai_ui.engine import nf4_gemv as G

    cfg = G.pick_config(n, k, 64, sms)
    sig = {"x_ptr": "*bf16", "w_ptr": "*i32", "absmax_ptr": "*u8", "absmax2_ptr": "*fp32",
           "code2_ptr": "*fp32", "offset_ptr": "*fp32", "code_ptr": "*fp32", "bias_ptr": "*bf16",
           "out_ptr": "*bf16", "part_ptr": "*fp32", "count_ptr": "*i32", "N": "i32"}
    const = dict(K=k, BLOCKSIZE=64, NESTED=True, BLOCKSIZE2=256, W_KIND=0, HAS_BIAS=False,
                 BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, SPLIT=cfg.split,
                 PREFETCH=cfg.prefetch, TENSOR_CORES=cfg.tensor_cores, INTERPRET=False)
    kernel = _compile(triton.jit(G._nf4_gemv_kernel), sig, const, cfg.num_warps, 2)
    sass, res = _sass(kernel)
    lines = sass.splitlines()
    labels = {m.group(1): i for i, line in enumerate(lines) if (m := re.match(r"^(\.L_x_\d+):", line))}
    body = None
    for i, line in enumerate(lines):  # the first backward branch: the K loop
        m = re.search(r"BRA `?\(?(\.L_x_\d+)", line)
        if m and m.group(1) in labels and labels[m.group(1)] < i:
            body = lines[labels[m.group(1)]:i + 1]
            break
    ops = _opcodes("\n".join(body or []))
    weights = cfg.block_n * cfg.block_k // (32 * cfg.num_warps)
    return dict(kernel="nf4_gemv", n=n, k=k, rule=vars(cfg),
                instructions_per_weight=round(sum(ops.values()) / weights, 3),
                per_weight={op: round(c / weights, 3) for op, c in ops.most_common() if c >= 4},
                registers=res.get("reg"), spill_bytes=res.get("local", 0),
                shared_bytes=res.get("shared"), shared_in_loop=ops.get("LDS", 0) + ops.get("STS", 0))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=18944, help="out_features (default: 7B gate_proj)")
    ap.add_argument("--k", type=int, default=3584, help="in_features")
    ap.add_argument("--only", choices=("nf4_gemv", "relayout-mma", "relayout-fma"), default=None)
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("unset TRITON_INTERPRET: the interpreter compiles nothing")
    reports = {"nf4_gemv": lambda: gemv_report(args.n, args.k),
               "relayout-mma": lambda: relaid_report(args.n, args.k, True),
               "relayout-fma": lambda: relaid_report(args.n, args.k, False)}
    rows = [make() for name, make in reports.items() if args.only in (None, name)]
    for row in rows:
        line = json.dumps(row)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    main()
