"""GPU: one layer's product under Nsight Compute, ours and bitsandbytes', to see what holds it.

usage: ncu --target-processes all -k regex:'nf4_gemv|gemv_4bit|kgemm' --launch-skip 3 --launch-count 2 \\
         --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats \\
         --section MemoryWorkloadAnalysis python3 bench/nf4_ncu.py N K
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from bonsai_ui.engine.nf4_gemv import from_quant_state, nf4_gemv  # noqa: E402


def main():
    import bitsandbytes as bnb
    import bitsandbytes.functional as BF

    n, k = int(sys.argv[1]), int(sys.argv[2])
    torch.manual_seed(0)
    w16 = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02
    packed, qs = BF.quantize_4bit(w16, blocksize=64, compress_statistics=True, quant_type="nf4")
    w = from_quant_state(packed, qs)
    x = torch.randn(1, 1, k, device="cuda", dtype=torch.bfloat16)
    for _ in range(5):
        nf4_gemv(x, w)
    for _ in range(5):
        bnb.matmul_4bit(x, packed.t(), quant_state=qs)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
