"""GPU: which operations give different bits for identical inputs? Op by op, 30 runs each.

Each op runs 30 times on identical inputs; the line says how many distinct results came out
(1 = deterministic). Shapes of the Qwen2.5-7B layer (28 query heads, 4 KV heads, head dim 128,
hidden 3584, intermediate 18944, a 152k vocabulary). Ops: SDPA per backend (decode step and a
256-token prefill chunk, boolean mask, grouped-query attention), cuBLAS linear at several batch
sizes (on one thread and on fresh threads), bitsandbytes 4-bit linear, and the sampling path's ops
(a plain cumsum over the vocabulary against the app's ``ordered_cumsum``; the app's
exponential-argmax draw). What it is for: when identical runs stop repeating, which kernel to
suspect. ~2 minutes.

usage: python bench/determinism_probe.py [--out FILE]    (on a GPU: bash bench/gpu.sh probe)
Results: bench/results/determinism-*.jsonl; docs/benchmarks.md, "Exactness".
"""

from __future__ import annotations

import argparse
import json
import threading

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
REPS = 30


def distinct(fn, reps=REPS, threads=False) -> int:
    outs = []
    for _ in range(reps):
        if threads:
            box = []
            t = threading.Thread(target=lambda: box.append(fn().clone()))
            t.start()
            t.join()
            outs.append(box[0])
        else:
            outs.append(fn().clone())
    torch.cuda.synchronize()
    uniq = []
    for o in outs:
        if not any(torch.equal(o, u) for u in uniq):
            uniq.append(o)
    return len(uniq)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    out = open(args.out, "a") if args.out else None

    def emit(**record):
        record["card"] = torch.cuda.get_device_name()
        line = json.dumps(record)
        print(line, flush=True)
        if out:
            out.write(line + "\n")

    torch.manual_seed(0)
    dev, dt = "cuda", torch.bfloat16
    heads, kv, d = 28, 4, 128
    for q_len, window in ((1, 2048), (256, 2048), (1, 8192)):
        q = torch.randn(1, heads, q_len, d, device=dev, dtype=dt)
        k = torch.randn(1, kv, window, d, device=dev, dtype=dt)
        v = torch.randn(1, kv, window, d, device=dev, dtype=dt)
        pos = torch.arange(window - q_len, window, device=dev)
        mask = torch.arange(window, device=dev)[None, :] <= pos[:, None]
        for name, backends in (("default", None), ("cudnn", [SDPBackend.CUDNN_ATTENTION]),
                               ("flash", [SDPBackend.FLASH_ATTENTION]),
                               ("efficient", [SDPBackend.EFFICIENT_ATTENTION]),
                               ("math", [SDPBackend.MATH]),
                               ("app", [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                                        SDPBackend.MATH])):
            def attn():
                return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[None, None],
                                                      enable_gqa=True)
            try:
                if backends is None:
                    n = distinct(attn)
                else:
                    with sdpa_kernel(backends):
                        n = distinct(attn)
                emit(op="sdpa", backend=name, q_len=q_len, window=window, distinct=n)
            except RuntimeError as error:
                emit(op="sdpa", backend=name, q_len=q_len, window=window,
                     error=str(error).splitlines()[0][:120])

    for m in (1, 7, 256, 1500):
        for k_dim, n_dim in ((3584, 18944), (18944, 3584), (3584, 152064)):
            x = torch.randn(m, k_dim, device=dev, dtype=dt)
            w = torch.randn(n_dim, k_dim, device=dev, dtype=dt) * 0.02
            emit(op="linear", m=m, k=k_dim, n=n_dim, distinct=distinct(lambda: F.linear(x, w)),
                 distinct_fresh_threads=distinct(lambda: F.linear(x, w), reps=10, threads=True))
    try:
        import bitsandbytes as bnb

        layer = bnb.nn.Linear4bit(3584, 18944, bias=False, compute_dtype=dt, quant_type="nf4")
        layer.weight = bnb.nn.Params4bit(torch.randn(18944, 3584, dtype=dt) * 0.02,
                                         requires_grad=False, quant_type="nf4")
        layer = layer.to(dev)
        for m in (1, 256):
            x = torch.randn(1, m, 3584, device=dev, dtype=dt)
            with torch.inference_mode():
                emit(op="bnb-nf4-linear", m=m, distinct=distinct(lambda: layer(x)))
    except Exception as error:  # noqa: BLE001 - a probe reports, it does not stop
        emit(op="bnb-nf4-linear", error=f"{type(error).__name__}: {error}"[:160])

    logits = torch.randn(1, 152064, device=dev)
    emit(op="softmax+cumsum+sort", distinct=distinct(
        lambda: torch.sort(logits, descending=False)[0].softmax(-1).cumsum(-1)))
    from bonsai_ui.engine.static_decoder import ordered_cumsum

    emit(op="softmax+ordered_cumsum+sort (the app's top-p)", distinct=distinct(
        lambda: ordered_cumsum(torch.sort(logits, descending=False)[0].softmax(-1))))
    gen = torch.Generator(device=dev)

    def sample():
        gen.manual_seed(42)
        probs = logits.softmax(-1)
        return (probs / torch.empty_like(probs).exponential_(generator=gen)).argmax(-1)
    emit(op="exponential-argmax sample", distinct=distinct(sample))
    if out:
        out.close()


if __name__ == "__main__":
    main()
