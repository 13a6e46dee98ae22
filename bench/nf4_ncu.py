"""GPU: one layer's batch-1 4-bit product under Nsight Compute: the NF4 kernel and bitsandbytes'.

A target process for ``ncu``: it builds one random NF4 layer of shape N x K (as Unsloth loads
them: blocksize 64, double quantization) and calls the kernel and bitsandbytes' ``matmul_4bit``
5 times each; ``ncu`` picks the launches by kernel name. What it shows: which pipe holds the
kernel (memory throughput, L1/shared and DRAM busy, issue slots, occupancy).
``--tensor-cores`` runs the kernel's tensor-core sum path (``Config.tensor_cores``) instead of the
default CUDA-core sums; ``--split`` overrides the rule's K split (the kept profile of the
tensor-core path used split 2 on this shape).

usage (``bash bench/gpu.sh ncu`` runs both sides on the 7B gate_proj shape):
    ncu --target-processes all -k regex:'nf4_gemv' --launch-skip 3 --launch-count 1 \\
        --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats \\
        --section MemoryWorkloadAnalysis python3 bench/nf4_ncu.py 18944 3584
Results: bench/results/ncu-7b-gate-*.txt; docs/benchmarks.md, "NF4 kernel".
"""
import argparse
import dataclasses
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("n", type=int, help="output features (rows of the weight), e.g. 18944")
    ap.add_argument("k", type=int, help="input features, e.g. 3584")
    ap.add_argument("--tensor-cores", action="store_true", help="the kernel's tensor-core sums")
    ap.add_argument("--split", type=int, default=0, help="K split (default: the kernel's rule)")
    args = ap.parse_args()

    import bitsandbytes as bnb
    import bitsandbytes.functional as BF
    import torch

    from bonsai_ui.engine.nf4_gemv import from_quant_state, nf4_gemv, pick_config

    n, k = args.n, args.k
    torch.manual_seed(0)
    w16 = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02
    packed, qs = BF.quantize_4bit(w16, blocksize=64, compress_statistics=True, quant_type="nf4")
    w = from_quant_state(packed, qs)
    config = pick_config(n, k, 64, torch.cuda.get_device_properties(0).multi_processor_count)
    config = dataclasses.replace(config, tensor_cores=args.tensor_cores or config.tensor_cores,
                                 split=args.split or config.split)
    x = torch.randn(1, 1, k, device="cuda", dtype=torch.bfloat16)
    for _ in range(5):
        nf4_gemv(x, w, None, config)
    for _ in range(5):
        bnb.matmul_4bit(x, packed.t(), quant_state=qs)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
