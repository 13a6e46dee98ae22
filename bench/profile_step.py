"""GPU: where one decode step's time goes -- kernels per step, and the top kernels by GPU time.

Loads a model through the app's engine (as bench.py does), prefills a prompt, then runs decode
steps of the static decoder eagerly (the same ``_forward`` the graphs record) under
``torch.profiler``, and times graphed steps (what the app runs) the same way.

Prints, and appends to ``--out`` as one JSON line: GPU time of a step, kernels launched a step,
the 25 kernels with the most GPU time (name, calls a step, microseconds a step), and the graphed
step's wall time. Why: the 7B 4-bit decode reads 3.6 GB a token (0.85 ms at 4.2 TB/s) yet a step
took 6.2 ms on an H200; the profile says how much of the rest is the 4-bit products and how much
is the many small kernels around them.

usage: python bench/profile_step.py --model /tmp/qwen2.5-7b [--config unsloth-4bit]
                                   [--nf4-kernel on|off] [--decode-kernels on|off] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

CONFIGS = {"unsloth-4bit": ("unsloth", "yes"), "transformers-nf4": ("transformers", "yes"),
           "transformers-bf16": ("transformers", "no")}
STEPS = 8


def summary(prof) -> dict:
    """GPU microseconds and kernels a step, and the 12 kernels with the most time."""
    per = defaultdict(lambda: [0, 0.0])
    for event in prof.events():
        if event.device_type.name == "CUDA":
            per[event.name][0] += 1
            per[event.name][1] += getattr(event, "device_time_total", 0.0)
    top = sorted(per.items(), key=lambda kv: -kv[1][1])[:12]
    return {"gpu_us": round(sum(v[1] for v in per.values()) / STEPS, 1),
            "kernels": round(sum(v[0] for v in per.values()) / STEPS, 1),
            "top": [{"name": n[:80], "calls": round(c / STEPS, 1), "us": round(t / STEPS, 1)}
                    for n, (c, t) in top]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--label", default="")
    ap.add_argument("--config", choices=CONFIGS, default="unsloth-4bit")
    ap.add_argument("--nf4-kernel", default="off")
    ap.add_argument("--decode-kernels", default="on", choices=("on", "off"))
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from bonsai_ui.engine import load_engine
    from bonsai_ui.settings import AppSettings

    backend_name, four_bit = CONFIGS[args.config]
    extra = {"nf4_kernel": args.nf4_kernel} if args.nf4_kernel != "off" else {}
    extra["decode_kernels"] = args.decode_kernels
    engine = load_engine(AppSettings(model=args.model, backend=backend_name, load_in_4bit=four_bit,
                                     context_length=8192, decoder="static", **extra))
    backend = engine.backend
    decoder = backend.decoder
    cache = decoder.cache
    ids = list(range(100, 100 + 1271))
    with torch.inference_mode():
        logits = decoder.prefill(cache, ids, 0)
        token = logits.argmax(-1)
        position = len(ids)
        window = decoder.window_for(position + STEPS)
        for _ in range(3):  # warm-up (compiled kernels, allocator)
            decoder.step_ids.view(-1).copy_(token.view(-1))
            decoder.step_pos.fill_(position)
            decoder._step_eager(cache, window)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for i in range(STEPS):
                decoder.step_pos.fill_(position + i)
                decoder._step_eager(cache, window)
            torch.cuda.synchronize()
        graphed = []
        for i in range(3 * STEPS):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            decoder.step(cache, token, position + i)
            torch.cuda.synchronize()
            graphed.append(time.perf_counter() - t0)
        # the page's sampled settings: what choose_token costs the GPU a token
        from bonsai_ui.engine.static_decoder import choose_token
        from bonsai_ui.settings import GenerationSettings

        sampled = GenerationSettings(temperature=0.7, top_p=0.9, top_k=50, repetition_penalty=1.1,
                                     seed=1)
        seen = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        generator = torch.Generator(device=logits.device)
        for i in range(3):
            choose_token(logits, seen, sampled, generator, position + i)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as sampling_prof:
            for i in range(STEPS):
                choose_token(logits, seen, sampled, generator, position + i)
            torch.cuda.synchronize()
    result_sampling = summary(sampling_prof)
    per = defaultdict(lambda: [0, 0.0])
    for event in prof.events():
        if event.device_type.name != "CUDA":
            continue
        row = per[event.name]
        row[0] += 1
        row[1] += event.device_time_total if hasattr(event, "device_time_total") else event.cuda_time_total
    total_us = sum(v[1] for v in per.values()) / STEPS
    kernels = sum(v[0] for v in per.values()) / STEPS
    top = sorted(per.items(), key=lambda kv: -kv[1][1])[:25]
    graphed.sort()
    result = {"label": args.label or args.model, "config": args.config, "nf4_kernel": args.nf4_kernel,
              "decode_kernels": args.decode_kernels,
              "device": torch.cuda.get_device_name(), "decoder": backend.decoder_note,
              "eager_gpu_us_per_step": round(total_us, 1), "kernels_per_step": round(kernels, 1),
              "graphed_step_ms_median": round(1000 * graphed[len(graphed) // 2], 3),
              "sampling_page_sampled": result_sampling,
              "top": [{"name": name[:90], "calls": round(c / STEPS, 1), "us": round(t / STEPS, 1)}
                      for name, (c, t) in top]}
    print(json.dumps(result, indent=1), flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
