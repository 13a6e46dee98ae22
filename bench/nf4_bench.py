"""GPU: the batch-1 NF4 products per linear layer of the Qwen2.5 7B and 32B shapes, and for one
token's linears of the whole model: the project's two kernels against bitsandbytes 0.50's two.

Sides (``--kernels``, all by default):
- ``nf4_gemv``: the app's default kernel (``--nf4-kernel on``, bonsai_ui/engine/nf4_gemv.py), on
  bitsandbytes' bytes as stored, per layer;
- ``relayout``: the re-laid-out kernel (``--nf4-kernel relayout``, nf4_relayout.py), per layer
  and as the app launches it: q/k/v fused into one launch, gate/up into one;
- ``bnb_gemm``: ``bitsandbytes.matmul_4bit`` at batch 1, which 0.50 sends to its new
  ``gemm_4bit`` op (reads the nested absmax itself; SIMT or MMA picked in its C dispatch) -- what
  ``Linear4bit`` runs with ``--nf4-kernel off``;
- ``bnb_gemv``: ``bitsandbytes.functional.gemv_4bit`` with the absmax resolved once (a
  non-nested copy of the state), the older batch-1 kernel alone; ``bnb_gemv_nested`` is the same
  call on the nested state (two small kernels a call resolve the absmax first).

For every layer shape (random bf16 weights, std 0.02, quantized by bitsandbytes as transformers and
Unsloth load them: NF4, blocksize 64, double quantization):
- time per call, each side in its own CUDA graph of 50 calls, cycling over enough copies of the
  weights that they never sit in L2 (50 MB on an H100, 60 MB on an H200): a decode step reads every
  weight once, so a figure from L2 would flatter both;
- achieved GB/s (bytes of the layer as bitsandbytes stores it: packed codes and absmax, both
  levels -- the same bytes for every side, so the figures compare work done; the relayout side
  also reads 3 more bytes of absmax a block, in ``bytes_read``) and its share of the card's copy
  bandwidth (a 1 GiB device-to-device copy, read + written bytes over time);
- exactness: each kernel's weights equal ``dequantize_4bit``'s (unit inputs), max abs difference to
  a float32 product of the same weights; 100 repeated calls bit-identical;
- sweeps around each kernel's fixed rule (``NF4_BENCH_SWEEP_S`` seconds for nf4_gemv's, default 0;
  ``NF4_BENCH_RELAID_SWEEP_S`` for the relayout kernel's, default 150), to check the rules.
Then one token's linears per model: the sum over layers of each side (the relayout kernel as
launched: q/k/v + o + gate/up + down).

usage: python bench/nf4_bench.py [OUT.jsonl] [--models qwen2.5-7b,qwen2.5-32b] [--kernels ...]
       (default OUT: $OUT/nf4_bench.jsonl, else bench/results/tmp/nf4_bench.jsonl)
Prints as it goes; one JSON object a line. 3-6 minutes on an H100/H200. `bash bench/gpu.sh nf4`
and `issue26` run it. Results: bench/results/nf4-kernel-*.jsonl; docs/benchmarks.md, "NF4 kernel".
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from bonsai_ui.engine.nf4_gemv import Config, from_quant_state, nf4_gemv, pick_config  # noqa: E402
from bonsai_ui.engine.nf4_relayout import (RelaidConfig, RelaidWorkspace, relaid_config_for,  # noqa: E402
                                           relaid_gemv, relayout)

MODELS = {  # hidden, intermediate, layers, heads, kv heads (head_dim 128)
    "qwen2.5-7b": (3584, 18944, 28, 28, 4),
    "qwen2.5-32b": (5120, 27648, 64, 40, 8),
}
SMOKE = {"tiny": (256, 640, 2, 2, 1)}  # --cpu-smoke: the script's every path, in the interpreter
KERNELS = ("nf4_gemv", "relayout", "bnb_gemm", "bnb_gemv")
DEVICE = "cuda"
REPS = 50  # calls per graph
L2_FLUSH_BYTES = 256 * 2**20  # weight copies per shape add up to at least this
SWEEP_UNTIL_S = float(os.environ.get("NF4_BENCH_SWEEP_S", 0))
RELAID_SWEEP_S = float(os.environ.get("NF4_BENCH_RELAID_SWEEP_S", 150))
STARTED = time.perf_counter()
REPEATS = 100  # identical-output check: calls a side


def smoke_mode():
    """--cpu-smoke: the same code paths on the CPU in Triton's interpreter, at a tiny shape, one
    call a timing (no CUDA graphs), no sweeps: checks the script, measures nothing."""
    global DEVICE, REPS, L2_FLUSH_BYTES, SWEEP_UNTIL_S, RELAID_SWEEP_S, REPEATS
    DEVICE, REPS, L2_FLUSH_BYTES, SWEEP_UNTIL_S, RELAID_SWEEP_S, REPEATS = "cpu", 1, 0, 0, 0, 2


def sweep_configs(rule: Config, k: int) -> list[Config]:
    """Neighbours of nf4_gemv's pick: rows and warps a program, K tiles, splits, the prefetch
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


def relaid_sweep(rule: RelaidConfig, units: int) -> list[RelaidConfig]:
    """Neighbours of the relayout kernel's pick: units a warp, row groups a warp walks, the
    CUDA-core sums, prefetch off, 8 warps."""
    out = [RelaidConfig(rule.warps, walk, per_warp)
           for per_warp in (1, 2) if units % per_warp == 0 for walk in (1, 2, 4, 8)]
    out += [RelaidConfig(rule.warps, rule.groups_per_warp, rule.units_per_warp, "fma"),
            RelaidConfig(rule.warps, rule.groups_per_warp, rule.units_per_warp, prefetch=False),
            RelaidConfig(8, max(1, rule.groups_per_warp // 2), rule.units_per_warp)]
    return [c for c in dict.fromkeys(out) if c != rule]


def layer_shapes(hidden, inter, heads, kv_heads):
    kv = kv_heads * 128
    return {"q": (hidden, hidden, True), "k": (kv, hidden, True), "v": (kv, hidden, True),
            "o": (hidden, hidden, False), "gate": (inter, hidden, False),
            "up": (inter, hidden, False), "down": (hidden, inter, False)}


FUSED = {"q/k/v": ("q", "k", "v"), "gate/up": ("gate", "up")}  # as nf4_linear launches them


def copy_bandwidth() -> float:
    if DEVICE == "cpu":
        return 1e10  # a placeholder: nothing is measured on the CPU
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
    if DEVICE == "cpu":
        start = time.perf_counter()
        for call in calls:
            call()
        return (time.perf_counter() - start) / len(calls)
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


def stored_bytes(qs, packed) -> int:
    """Bytes of a layer as bitsandbytes stores it: packed codes, absmax, nested absmax."""
    total = packed.numel() * packed.element_size() + qs.absmax.numel() * qs.absmax.element_size()
    if qs.nested:
        total += qs.state2.absmax.numel() * 4
    return total


class Layer:
    """One linear's NF4 weights, with copies enough to flush L2 between calls."""

    def __init__(self, name, n, k, has_bias, seed):
        import bitsandbytes.functional as BF

        torch.manual_seed(seed)
        w = torch.randn(n, k, device=DEVICE, dtype=torch.bfloat16) * 0.02
        self.packed, self.qs = BF.quantize_4bit(w, blocksize=64, compress_statistics=True,
                                                quant_type="nf4")
        del w
        self.name, self.n, self.k = name, n, k
        self.bias = torch.randn(n, device=DEVICE, dtype=torch.bfloat16) * 0.02 if has_bias else None
        self.bytes = stored_bytes(self.qs, self.packed)
        copies = max(1, -(-L2_FLUSH_BYTES // self.bytes))
        self.packs = [self.packed] + [self.packed.clone() for _ in range(copies - 1)]
        self.deq = BF.dequantize_4bit(self.packed, self.qs)  # [n, k] bf16, bitsandbytes' own
        resolved = copy.copy(self.qs)  # gemv_4bit without the per-call absmax resolution
        absmax = BF.dequantize_blockwise(self.qs.absmax, self.qs.state2)
        absmax += self.qs.offset
        resolved.absmax, resolved.nested, resolved.state2, resolved.offset = absmax.float(), False, None, None
        self.resolved = resolved


def probe_columns(k):
    cols = torch.tensor(sorted({0, 1, 63, 64, 255, min(256, k - 1), k - 1}), device=DEVICE)
    probe = torch.zeros(len(cols), k, device=DEVICE, dtype=torch.bfloat16)
    probe[torch.arange(len(cols)), cols] = 1
    return cols, probe


def measure(model, name, layers, kernels, x, ceiling, emit, sms):
    """One launch's sides: a layer alone, or (relayout only) fused layers side by side."""
    import bitsandbytes as bnb
    import bitsandbytes.functional as BF

    k = layers[0].k
    n = sum(m.n for m in layers)
    nbytes = sum(m.bytes for m in layers)
    bias = None if layers[0].bias is None else torch.cat([m.bias for m in layers])
    deq = torch.cat([m.deq for m in layers])
    exact = (x.float().view(1, k) @ deq.float().T + (bias.float() if bias is not None else 0)).view(-1)
    cols, probe = probe_columns(k)
    gbs = lambda t: nbytes / t / 1e9  # noqa: E731
    row = dict(model=model, layer=name, n=n, k=k, bias=bias is not None, bytes=nbytes)
    line = [f"{model} {name:>7} {n}x{k}:"]
    fused = len(layers) > 1
    if "nf4_gemv" in kernels and not fused:
        m = layers[0]
        weights = [from_quant_state(p, m.qs) for p in m.packs]
        rule = pick_config(m.n, k, 64, sms)
        configs = [rule] + (sweep_configs(rule, k) if time.perf_counter() - STARTED < SWEEP_UNTIL_S else [])
        times = {c: graph_time([lambda v=v, c=c: nf4_gemv(x, v, m.bias, c) for v in weights]) for c in configs}
        out = nf4_gemv(x, weights[0], m.bias)
        same = torch.equal(torch.stack([nf4_gemv(p.view(1, k), weights[0]).view(-1) for p in probe], 1),
                           m.deq[:, cols])
        best = min(times, key=times.get)
        row["nf4_gemv"] = dict(us=times[rule] * 1e6, gbs=gbs(times[rule]), share=gbs(times[rule]) * 1e9 / ceiling,
                               rule=vars(rule), best=vars(best), us_best=times[best] * 1e6,
                               weights_equal_dequantize_4bit=same,
                               repeats_identical_100=all(torch.equal(out, nf4_gemv(x, weights[0], m.bias)) for _ in range(REPEATS)),
                               maxdiff_vs_fp32=(out.float().view(-1) - exact).abs().max().item())
        line.append(f"nf4_gemv {row['nf4_gemv']['us']:.1f} us ({row['nf4_gemv']['share']:.0%})")
    if "relayout" in kernels:
        count = min(len(m.packs) for m in layers)  # copies: each part's side by side
        relaid = [relayout([(m.packs[i], m.qs) for m in layers]) for i in range(count)]
        if count * relaid[0].nbytes < L2_FLUSH_BYTES:
            relaid += [relayout([(m.packed.clone(), m.qs) for m in layers])
                       for _ in range(-(-L2_FLUSH_BYTES // relaid[0].nbytes) - count)]
        r0 = relaid[0]
        rule = relaid_config_for(r0, x.device)
        sweep = time.perf_counter() - STARTED < RELAID_SWEEP_S
        configs = [rule] + (relaid_sweep(rule, r0.units) if sweep else [])
        times = {}
        for c in configs:
            ws = RelaidWorkspace(r0, c, x.device)
            times[c] = graph_time([lambda r=r, c=c, ws=ws: relaid_gemv(x, r, bias, c, ws) for r in relaid])
        ws = RelaidWorkspace(r0, rule, x.device)
        out = relaid_gemv(x, r0, bias, rule, ws)
        got = torch.stack([relaid_gemv(p.view(1, k), r0, None, rule, ws).view(-1) for p in probe], 1)
        best = min(times, key=times.get)
        row["relayout"] = dict(us=times[rule] * 1e6, gbs=gbs(times[rule]), share=gbs(times[rule]) * 1e9 / ceiling,
                               bytes_read=r0.nbytes, rule=vars(rule), best=vars(best),
                               us_best=times[best] * 1e6, share_best=gbs(times[best]) * 1e9 / ceiling,
                               weights_equal_dequantize_4bit=torch.equal(got, deq[:, cols]),
                               repeats_identical_100=all(torch.equal(out, relaid_gemv(x, r0, bias, rule, ws)) for _ in range(REPEATS)),
                               maxdiff_vs_fp32=(out.float().view(-1) - exact).abs().max().item(),
                               sweep={f"{c.sums}w{c.warps}g{c.groups_per_warp}u{c.units_per_warp}{'' if c.prefetch else 'nopf'}":
                                      round(t * 1e6, 2) for c, t in times.items()})
        line.append(f"relayout {row['relayout']['us']:.1f} us ({row['relayout']['share']:.0%}; best "
                    f"{min(row['relayout']['sweep'], key=row['relayout']['sweep'].get)} "
                    f"{row['relayout']['us_best']:.1f} us)")
        del relaid
    if not fused:
        m = layers[0]
        if "bnb_gemm" in kernels:
            t = graph_time([lambda p=p: bnb.matmul_4bit(x, p.t(), quant_state=m.qs, bias=m.bias) for p in m.packs])
            theirs = bnb.matmul_4bit(x, m.packed.t(), quant_state=m.qs, bias=m.bias).float().view(-1)
            row["bnb_gemm"] = dict(us=t * 1e6, gbs=gbs(t), share=gbs(t) * 1e9 / ceiling,
                                   maxdiff_vs_fp32=(theirs - exact).abs().max().item())
            line.append(f"bnb gemm_4bit {t * 1e6:.1f} us ({gbs(t) * 1e9 / ceiling:.0%})")
        if "bnb_gemv" in kernels:
            t = graph_time([lambda p=p: BF.gemv_4bit(x, p.t(), state=m.resolved) for p in m.packs])
            tn = graph_time([lambda p=p: BF.gemv_4bit(x, p.t(), state=m.qs) for p in m.packs])
            row["bnb_gemv"] = dict(us=t * 1e6, gbs=gbs(t), share=gbs(t) * 1e9 / ceiling)
            row["bnb_gemv_nested"] = dict(us=tn * 1e6, gbs=gbs(tn), share=gbs(tn) * 1e9 / ceiling)
            line.append(f"bnb gemv_4bit {t * 1e6:.1f} us ({gbs(t) * 1e9 / ceiling:.0%}; nested {tn * 1e6:.1f})")
    emit(row)
    print(" ".join(line), flush=True)
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default=os.path.join(os.environ.get("OUT", "bench/results/tmp"),
                                                           "nf4_bench.jsonl"))
    ap.add_argument("--models", default=os.environ.get("NF4_BENCH_MODELS", ""),
                    help="comma list of shapes (default all: " + ",".join(MODELS) + ")")
    ap.add_argument("--kernels", default=",".join(KERNELS),
                    help="comma list of sides (default all: " + ",".join(KERNELS) + ")")
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="run every path at a tiny shape on the CPU (TRITON_INTERPRET=1): a check "
                         "of the script, no figures")
    args = ap.parse_args(argv)
    models = MODELS
    if args.cpu_smoke:
        if os.environ.get("TRITON_INTERPRET") != "1":
            ap.error("--cpu-smoke needs TRITON_INTERPRET=1 (set before Python starts)")
        smoke_mode()
        models = SMOKE
    kernels = set(args.kernels.split(","))
    unknown = kernels - set(KERNELS)
    if unknown:
        ap.error(f"unknown kernels: {', '.join(sorted(unknown))}")
    path = args.out
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    out = open(path, "a")

    def emit(row):
        out.write(json.dumps(row) + "\n")
        out.flush()

    t0 = time.perf_counter()
    card = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "CPU (smoke run)"
    sms = torch.cuda.get_device_properties(0).multi_processor_count if DEVICE == "cuda" else 1
    ceiling = copy_bandwidth()
    import bitsandbytes
    import triton

    emit(dict(card=card, copy_gbs=ceiling / 1e9, torch=torch.__version__, triton=triton.__version__,
              bitsandbytes=bitsandbytes.__version__, sms=sms, kernels=sorted(kernels)))
    print(f"{card}: copy bandwidth {ceiling / 1e9:.0f} GB/s, {sms} SMs; torch {torch.__version__}, "
          f"triton {triton.__version__}, bitsandbytes {bitsandbytes.__version__}", flush=True)
    for model, (hidden, inter, n_layers, heads, kv_heads) in models.items():
        if args.models and model not in args.models.split(","):
            continue
        shapes = layer_shapes(hidden, inter, heads, kv_heads)
        layers = {name: Layer(name, n, k, b, seed=i) for i, (name, (n, k, b)) in enumerate(shapes.items())}
        x = {k: torch.randn(1, 1, k, device=DEVICE, dtype=torch.bfloat16) for k in (hidden, inter)}
        rows = {}
        if "relayout" in kernels:  # first: the launches the app makes, while the sweep runs
            for name, parts in FUSED.items():
                rows[name] = measure(model, name, [layers[p] for p in parts], kernels,
                                     x[hidden], ceiling, emit, sms)
        for name, m in layers.items():
            rows[name] = measure(model, name, [m], kernels, x[m.k], ceiling, emit, sms)
        total_bytes = n_layers * sum(m.bytes for m in layers.values())
        summary = dict(model=model, card=card, layers=n_layers, bytes_per_token=total_bytes)
        line = [f"{model}: one token's linears"]
        launched = {"relayout": ("q/k/v", "o", "gate/up", "down")}
        for side in ("nf4_gemv", "relayout", "bnb_gemm", "bnb_gemv", "bnb_gemv_nested"):
            names = launched.get(side, tuple(shapes))
            if not all(side in rows[n] for n in names):
                continue
            ms = n_layers * sum(rows[n][side]["us"] for n in names) / 1e3
            share = total_bytes / (ms / 1e3) / ceiling
            summary[side] = dict(ms=ms, share=share)
            if side == "relayout":
                summary[side]["ms_best"] = n_layers * sum(rows[n][side]["us_best"] for n in names) / 1e3
            line.append(f"{side} {ms:.2f} ms ({share:.1%} of copy bandwidth)")
        checks = [rows[n][s] for n in rows for s in ("nf4_gemv", "relayout") if s in rows[n]]
        summary["all_identical"] = all(c["repeats_identical_100"] for c in checks)
        summary["all_weights_equal"] = all(c["weights_equal_dequantize_4bit"] for c in checks)
        emit(summary)
        line.append(f"weights equal dequantize_4bit: {summary['all_weights_equal']}, "
                    f"{REPEATS} repeats identical: {summary['all_identical']}")
        print("; ".join(line), flush=True)
        del layers
        torch.cuda.empty_cache()
    print(f"done in {time.perf_counter() - t0:.0f} s -> {path}", flush=True)


if __name__ == "__main__":
    main()
