"""GPU: the NF4 kernel (bonsai_ui/engine/nf4_gemv.py) against bitsandbytes' batch-1 4-bit product,
per linear layer of the Qwen2.5 7B and 32B shapes, and for one token's linears of the whole model.

For every layer shape (random bf16 weights, std 0.02, quantized by bitsandbytes as transformers and
Unsloth load them: NF4, blocksize 64, double quantization):
- time per call, each side in its own CUDA graph of 50 calls, cycling over enough copies of the
  weights that they never sit in L2 (50 MB on an H100, 60 MB on an H200): a decode step reads every
  weight once, so a figure from L2 would flatter both;
- achieved GB/s (bytes of packed weights and absmax read) and its share of the card's copy
  bandwidth (a 1 GiB device-to-device copy, read + written bytes over time);
- max abs difference to bitsandbytes' de-quantize + matmul (the prefill path) and to a float32
  product of the same de-quantized weights; whether the kernel's weights equal dequantize_4bit's;
- determinism: 100 runs of the kernel, all outputs bit-identical;
- a sweep of K tiles, splits, warps, the prefetch and the tensor-core sum path around the kernel's
  fixed rule (``pick_config``), to check the rule (``NF4_BENCH_SWEEP_S=0``: the rule only).
Then one token's linears: the sum over layers, the kernel against bitsandbytes.

usage: python bench/nf4_bench.py [OUT.jsonl] [--models qwen2.5-7b,qwen2.5-32b]
       (default OUT: $OUT/nf4_bench.jsonl, else bench/results/tmp/nf4_bench.jsonl)
Prints as it goes; one JSON object a line. 2-6 minutes on an H100/H200 (the sweep compiles ~8
configurations a shape). `bash bench/gpu.sh nf4` runs it. Results: bench/results/nf4-kernel-*.jsonl;
docs/benchmarks.md, "NF4 kernel".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from bonsai_ui.engine.nf4_gemv import Config, from_quant_state, nf4_gemv, pick_config  # noqa: E402

MODELS = {  # hidden, intermediate, layers, heads, kv heads (head_dim 128)
    "qwen2.5-7b": (3584, 18944, 28, 28, 4),
    "qwen2.5-32b": (5120, 27648, 64, 40, 8),
}
DEVICE = "cuda"
REPS = 50  # calls per graph
L2_FLUSH_BYTES = 256 * 2**20  # weight copies per shape add up to at least this
# each config compiles once per (K, bias) pair: 6 pairs x ~8 configs at ~1-2 s each; past
# SWEEP_UNTIL_S seconds the remaining shapes time the rule's config only (3-minute budget)
SWEEP_UNTIL_S = float(os.environ.get("NF4_BENCH_SWEEP_S", 300))


def sweep_configs(rule: Config, k: int) -> list[Config]:
    """Neighbours of the rule's pick: rows and warps a program, K tiles, splits, the prefetch
    off, and the tensor cores' sums (the kernel's other sum path)."""
    out = []
    for block_k in (128, 256):
        iters = k // block_k
        for split in sorted({1, 2, 4, 7, 8, 10, 14, 20, 37} | {rule.split}):
            if k % block_k or iters % split or (iters // split < 2 and split != 1):
                continue
            out += [Config(bn, block_k, split, warps)
                    for bn, warps in ((64, 4), (128, 4), (128, 8), (32, 2))]
            out += [Config(64, block_k, split, prefetch=False),
                    Config(64, block_k, split, tensor_cores=True)]
    return [c for c in dict.fromkeys(out) if c != rule]


STARTED = time.perf_counter()


def layer_shapes(hidden, inter, heads, kv_heads):
    kv = kv_heads * 128
    return {"q": (hidden, hidden, True), "k": (kv, hidden, True), "v": (kv, hidden, True),
            "o": (hidden, hidden, False), "gate": (inter, hidden, False),
            "up": (inter, hidden, False), "down": (hidden, inter, False)}


def copy_bandwidth() -> float:
    src = torch.empty(2**30, dtype=torch.uint8, device=DEVICE)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        dst.copy_(src)
    end.record()
    torch.cuda.synchronize()
    return 2 * src.numel() * 10 / (start.elapsed_time(end) / 1e3)


def graph_time(calls) -> float:
    """Seconds a call, ``calls`` (one closure per weight copy) cycled REPS times in one graph."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for call in calls:
            call()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(REPS):
            calls[i % len(calls)]()
    graph.replay()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(5):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1e3 / (5 * REPS)


def run_shape(model, name, n, k, has_bias, ceiling, emit):
    import bitsandbytes as bnb
    import bitsandbytes.functional as BF

    torch.manual_seed(0)
    w_bf16 = torch.randn(n, k, device=DEVICE, dtype=torch.bfloat16) * 0.02
    packed, qs = BF.quantize_4bit(w_bf16, blocksize=64, compress_statistics=True, quant_type="nf4")
    del w_bf16
    bias = torch.randn(n, device=DEVICE, dtype=torch.bfloat16) * 0.02 if has_bias else None
    x = torch.randn(1, 1, k, device=DEVICE, dtype=torch.bfloat16)
    w = from_quant_state(packed, qs)
    copies = max(1, -(-L2_FLUSH_BYTES // w.nbytes))
    weights = [w] + [from_quant_state(packed.clone(), qs) for _ in range(copies - 1)]
    packs = [v.packed for v in weights]

    deq = BF.dequantize_4bit(packed, qs)  # [n, k] bf16, bitsandbytes' own values
    exact = (x.float() @ deq.float().T + (bias.float() if has_bias else 0)).view(-1)
    prefill_path = torch.nn.functional.linear(x, deq, bias).float().view(-1)
    ours = nf4_gemv(x, w, bias).float().view(-1)
    theirs = bnb.matmul_4bit(x, packed.t(), quant_state=qs, bias=bias).float().view(-1)
    # the kernel's weight values: feed unit vectors through a few columns' worth of rows
    eye_cols = torch.tensor([0, 1, 63, 64, k - 1], device=DEVICE)
    probe = torch.zeros(len(eye_cols), k, device=DEVICE, dtype=torch.bfloat16)
    probe[torch.arange(len(eye_cols)), eye_cols] = 1
    cols = torch.stack([nf4_gemv(p.view(1, k), w).view(-1) for p in probe], 1)  # [n, 5]
    same_weights = torch.equal(cols, deq[:, eye_cols])

    props = torch.cuda.get_device_properties(0) if DEVICE == "cuda" else None
    rule = pick_config(n, k, 64, props.multi_processor_count if props else 1)
    sweep = time.perf_counter() - STARTED < SWEEP_UNTIL_S
    configs = [rule] + (sweep_configs(rule, k) if sweep else [])
    times = {}
    for cfg in configs:
        times[cfg] = graph_time([lambda v=v, cfg=cfg: nf4_gemv(x, v, bias, cfg) for v in weights])
    t_bnb = graph_time([lambda p=p: bnb.matmul_4bit(x, p.t(), quant_state=qs, bias=bias)
                        for p in packs])
    first = nf4_gemv(x, w, bias)
    repeats_identical = all(torch.equal(first, nf4_gemv(x, w, bias)) for _ in range(100))
    best = min(times, key=times.get)
    gbs = lambda t: w.nbytes / t / 1e9  # noqa: E731
    row = dict(model=model, layer=name, n=n, k=k, bias=has_bias, bytes=w.nbytes, copies=copies,
               rule=vars(rule), us_ours=times[rule] * 1e6, us_bnb=t_bnb * 1e6,
               gbs_ours=gbs(times[rule]), gbs_bnb=gbs(t_bnb),
               share_ours=gbs(times[rule]) * 1e9 / ceiling, share_bnb=gbs(t_bnb) * 1e9 / ceiling,
               speedup=t_bnb / times[rule], best=vars(best), us_best=times[best] * 1e6,
               share_best=gbs(times[best]) * 1e9 / ceiling,
               maxdiff_vs_prefill_path=(ours - prefill_path).abs().max().item(),
               maxdiff_vs_fp32=(ours - exact).abs().max().item(),
               bnb_gemv_maxdiff_vs_fp32=(theirs - exact).abs().max().item(),
               weights_equal_dequantize_4bit=same_weights, repeats_identical_100=repeats_identical,
               sweep={f"{'' if c.tensor_cores else 'fma'}{c.block_n}x{c.block_k}s{c.split}w{c.num_warps}{'' if c.prefetch else 'nopf'}": round(t * 1e6, 2)
                      for c, t in times.items()})
    emit(row)
    print(f"{model} {name:>4} {n}x{k}: ours {row['us_ours']:.1f} us ({row['share_ours']:.0%}) "
          f"bnb {row['us_bnb']:.1f} us ({row['share_bnb']:.0%}) x{row['speedup']:.2f}; best "
          f"{row['sweep'] and min(row['sweep'], key=row['sweep'].get)} {row['us_best']:.1f} us; "
          f"diff {row['maxdiff_vs_prefill_path']:.2e}/{row['maxdiff_vs_fp32']:.2e} (bnb "
          f"{row['bnb_gemv_maxdiff_vs_fp32']:.2e}); weights equal {same_weights}; "
          f"identical x100 {repeats_identical}")
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default=os.path.join(os.environ.get("OUT", "bench/results/tmp"),
                                                           "nf4_bench.jsonl"))
    ap.add_argument("--models", default=os.environ.get("NF4_BENCH_MODELS", ""),
                    help="comma list of shapes (default all: " + ",".join(MODELS) + ")")
    args = ap.parse_args(argv)
    path = args.out
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    out = open(path, "a")

    def emit(row):
        out.write(json.dumps(row) + "\n")
        out.flush()

    t0 = time.perf_counter()
    card = torch.cuda.get_device_name(0)
    ceiling = copy_bandwidth()
    import bitsandbytes
    import triton

    emit(dict(card=card, copy_gbs=ceiling / 1e9, torch=torch.__version__, triton=triton.__version__,
              bitsandbytes=bitsandbytes.__version__))
    print(f"{card}: copy bandwidth {ceiling / 1e9:.0f} GB/s; torch {torch.__version__}, "
          f"triton {triton.__version__}, bitsandbytes {bitsandbytes.__version__}")
    only = args.models  # e.g. qwen2.5-7b: one model's shapes
    for model, (hidden, inter, layers, heads, kv_heads) in MODELS.items():
        if only and model not in only.split(","):
            continue
        rows = [run_shape(model, name, n, k, bias, ceiling, emit)
                for name, (n, k, bias) in layer_shapes(hidden, inter, heads, kv_heads).items()]
        total = {key: layers * sum(r[key] for r in rows) for key in ("us_ours", "us_bnb", "us_best", "bytes")}
        summary = dict(model=model, card=card, layers=layers, token_linears_ms_ours=total["us_ours"] / 1e3,
                       token_linears_ms_bnb=total["us_bnb"] / 1e3, token_linears_ms_best=total["us_best"] / 1e3,
                       share_ours=total["bytes"] / (total["us_ours"] / 1e6) / ceiling,
                       share_bnb=total["bytes"] / (total["us_bnb"] / 1e6) / ceiling,
                       all_identical=all(r["repeats_identical_100"] for r in rows),
                       all_weights_equal=all(r["weights_equal_dequantize_4bit"] for r in rows))
        emit(summary)
        print(f"{model}: one token's linears {summary['token_linears_ms_ours']:.2f} ms ours "
              f"({summary['share_ours']:.0%} of copy bandwidth) vs {summary['token_linears_ms_bnb']:.2f} ms "
              f"bitsandbytes ({summary['share_bnb']:.0%}); best sweep {summary['token_linears_ms_best']:.2f} ms")
    print(f"done in {time.perf_counter() - t0:.0f} s -> {path}")


if __name__ == "__main__":
    main()
