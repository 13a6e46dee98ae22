"""GPU: where one decode step's time goes -- kernels a step, and the kernels with the most GPU time.

Loads a model through the app's engine (as bench.py does, with the app's defaults unless told
otherwise), prefills a 1,271-token prompt, then runs decode steps of the static decoder eagerly
(the same ``_forward`` the graphs record) under ``torch.profiler``, and times graphed steps (what
the app runs). Also profiles the sampling of the page's sampled settings for one token.

Prints, and appends to ``--out`` as one JSON line: GPU time of a step, kernels launched a step,
the 25 kernels with the most GPU time (name, calls a step, microseconds a step), and the graphed
step's wall time. What it answers: of a 7B 4-bit step, how much is the 4-bit products and how
much the many small kernels around them (``--decode-kernels off``: the step in PyTorch operations).

usage: python bench/profile_step.py --model /tmp/qwen2.5-7b [--config unsloth-4bit]
                                   [--nf4-kernel on|off|relayout] [--decode-kernels on|off] [--out FILE]
`bash bench/gpu.sh profile` runs it with the fused step and the PyTorch step. Results:
bench/results/profile-7b-*.jsonl; docs/benchmarks.md, "GPU decode speed" (where a step's time goes).
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
    from bonsai_ui.core.settings import APP_OPTIONS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--label", default="")
    ap.add_argument("--config", choices=CONFIGS, default="unsloth-4bit")
    ap.add_argument("--nf4-kernel", default=APP_OPTIONS["nf4_kernel"].default,
                    choices=APP_OPTIONS["nf4_kernel"].choices)
    ap.add_argument("--decode-kernels", default=APP_OPTIONS["decode_kernels"].default,
                    choices=("on", "off"))
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from bonsai_ui.engine import load_engine
    from bonsai_ui.core.settings import AppSettings

    backend_name, four_bit = CONFIGS[args.config]
    engine = load_engine(AppSettings(model=args.model, backend=backend_name, load_in_4bit=four_bit,
                                     context_length=8192, decoder="static",
                                     nf4_kernel=args.nf4_kernel, decode_kernels=args.decode_kernels))
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
        from bonsai_ui.core.settings import GenerationSettings

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
