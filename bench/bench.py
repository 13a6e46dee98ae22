"""Speed and memory of the engine, one backend configuration per process.

Measures the app's own defaults (``--decoder``, ``--nf4-kernel``, ``--decode-kernels`` and the
context length come from ``bonsai_ui.core.settings.APP_OPTIONS``) unless a flag says otherwise.
Why one configuration per process: ``import unsloth`` patches transformers globally, so "plain
transformers" is only plain in a process that never imported Unsloth, and peak-memory figures are
only honest for a process that loaded one model.

Measured (greedy, batch 1, EOS ignored so every run writes all its tokens; decode tokens/s exclude
the first token; the prompt is numbered English sentences), one JSON line per section as it ends
(the last line of a run holds every section):
- load time, cold start (``--started-at``: process launch to engine ready, as app.py does it), the
  first request's time to first token, peak GPU memory;
- ``stream``: the app's streamed path (``Engine.stream``): time to first token and decode tokens/s;
- ``sampling``: decode speed of the page's defaults and of sampled settings against greedy;
- with the static decoder: the same decode loop called directly, without the worker thread and
  detokenizer, streamed and not alternating (``streaming_overhead_pct``);
- ``reuse``: regenerate after an early and a late edit of ``--reuse-lengths`` prompts: time to first
  token with the session's prefix cache and without it (medians of three);
- ``plain``: the same model's plain ``model.generate`` without a streamer (what the original app
  called), and ``static``: transformers' own static-cache ``generate``; both run last, with the NF4
  kernel taken off as ``--decoder generate`` runs (a kernel left on there launches eagerly);
- ``ceiling`` (CUDA): device-to-device copy bandwidth ÷ weight bytes read per token, and the decode
  speed's share of it.

usage: python bench/bench.py --config unsloth-4bit --model DIR --label qwen2.5-7b [--out FILE]
       python bench/bench.py --config llama.cpp-cpu --out FILE          (the embedded model, CPU)
On a GPU machine, `bash bench/gpu.sh speed` (and `peer`) runs it; results table: docs/benchmarks.md,
"GPU decode speed" and "Prefill and regenerate"; on a CPU, "CPU engines".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONFIGS = {
    # name: (backend, load_in_4bit)
    "unsloth-4bit": ("unsloth", "yes"),
    "unsloth-bf16": ("unsloth", "no"),
    "transformers-bf16": ("transformers", "no"),
    "transformers-nf4": ("transformers", "yes"),
    "transformers-cpu": ("transformers", "no"),
    "llama.cpp-cpu": ("llama.cpp", "no"),
}


def sentences(n_tokens: int, count, salt: str = "") -> str:
    """Numbered sentences up to about n_tokens: distinct text, so edits change real tokens."""
    parts, i = [], 0
    text = ""
    while True:
        parts.append(f"Step {i}{salt}: Jack counts {i % 7 + 1} pears and Henri {i % 5 + 2} apples. ")
        i += 1
        if i % 20 == 0:
            text = "".join(parts)
            if count(text) >= n_tokens:
                return text


def timed_stream(engine, prompt, settings, session=""):
    from bonsai_ui.engine import Timing

    timing = Timing()
    for _ in engine.stream(prompt, settings, threading.Event(), (), timing, session):
        pass
    return timing


def cuda_sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def copy_bandwidth() -> float:
    """Bytes/s of a device-to-device copy, counting bytes read and written (as the card's spec)."""
    import torch

    x = torch.empty(2 * 1024**3, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        y.copy_(x)
    torch.cuda.synchronize()
    bw = 2 * x.numel() * 10 / (time.perf_counter() - start)
    del x, y
    torch.cuda.empty_cache()
    return bw


def weight_bytes_per_token(model) -> int:
    """Bytes of weights one decode step reads: every parameter and quantized buffer except the
    input embedding (one row is read) — lm_head is read whole."""
    import torch

    embed = model.get_input_embeddings().weight
    total = 0
    seen = set()
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() in seen or t.device.type != "cuda" or not t.is_floating_point() and t.dtype != torch.uint8:
            continue
        seen.add(t.data_ptr())
        if t.data_ptr() == embed.data_ptr() and model.get_output_embeddings() is not None and \
                model.get_output_embeddings().weight.data_ptr() != embed.data_ptr():
            continue
        total += t.numel() * t.element_size()
    return total


def plain_generate(backend, prompt, new_tokens, **extra):
    """What the original app called: tokenizer → model.generate(use_cache=True), no streamer."""
    import torch

    inputs = backend.tokenizer([prompt], return_tensors="pt").to(backend.model.device)
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, use_cache=True, do_sample=False,
                  pad_token_id=backend.tokenizer.pad_token_id or 0, **extra)
    with torch.inference_mode():
        t0 = time.perf_counter()
        backend.model.generate(**{**inputs, **kwargs, "max_new_tokens": 3, "min_new_tokens": 3})  # warm-up
        cuda_sync()
        warmup = time.perf_counter() - t0
        cuda_sync()
        t0 = time.perf_counter()
        backend.model.generate(**inputs, **{**kwargs, "max_new_tokens": 1, "min_new_tokens": 1})
        cuda_sync()
        prefill = time.perf_counter() - t0
        t0 = time.perf_counter()
        backend.model.generate(**inputs, **kwargs)
        cuda_sync()
        total = time.perf_counter() - t0
    return {"warmup_s": warmup, "ttft_s": prefill, "total_s": total,
            "decode_tok_s": (new_tokens - 1) / max(total - prefill, 1e-9)}


def plain_static(backend, prompt, new_tokens):
    """The static decoder's loop without streaming: no worker thread, no detokenizer."""
    import torch

    from bonsai_ui.engine.static_decoder import decode
    from bonsai_ui.core.settings import GenerationSettings

    ids = backend.encode(prompt)
    cache = backend.decoder.new_cache()
    stamps: list[float] = []

    def run(n):
        stamps.clear()
        settings = GenerationSettings(max_new_tokens=n, temperature=0.0, repetition_penalty=1.0)
        with torch.inference_mode():
            decode(backend.decoder, cache, ids, 0, settings, set(),
                   lambda token: stamps.append(time.perf_counter()) or True)

    run(3)  # warm-up: graphs of this prompt's windows
    cuda_sync()
    t0 = time.perf_counter()
    run(new_tokens)
    return {"ttft_s": stamps[0] - t0, "total_s": stamps[-1] - t0,
            "decode_tok_s": (new_tokens - 1) / max(stamps[-1] - stamps[0], 1e-9)}


# the options bench.py shares with the app: default and choices are the app's own
# (bonsai_ui.core.settings.APP_OPTIONS), never restated here
APP_FLAGS = ("decoder", "nf4_kernel", "decode_kernels", "context_length")


def build_parser() -> argparse.ArgumentParser:
    from bonsai_ui.core.settings import APP_OPTIONS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Sections: stream, sampling, reuse, plain, static, ceiling "
                                        "(--skip); --decoder, --nf4-kernel, --decode-kernels and "
                                        "--context-length default to the app's own defaults.")
    ap.add_argument("--config", choices=CONFIGS, required=True)
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--label", default="")
    ap.add_argument("--prompt-tokens", type=int, default=1000)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--reuse-lengths", default="1000,2000,4000")
    ap.add_argument("--skip", default="",
                    help="comma list of sections to skip: sampling,plain,static,reuse,ceiling")
    for name in APP_FLAGS:
        opt = APP_OPTIONS[name]
        ap.add_argument(opt.flag, dest=name, default=opt.default, type=opt.type, choices=opt.choices,
                        help=f"as app.py's {opt.flag} (default: the app's, %(default)s)")
    ap.add_argument("--started-at", type=float, default=0.0,
                    help="epoch seconds when the process was launched (date +%%s.%%N), for cold start")
    ap.add_argument("--out", default="")
    return ap


def main() -> None:
    ap = build_parser()
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    backend_name, four_bit = CONFIGS[args.config]
    result = {"config": args.config, "label": args.label or args.model, "backend": backend_name,
              "load_in_4bit": four_bit, "nf4_kernel": args.nf4_kernel, "decode_kernels": args.decode_kernels,
              "started": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "python": platform.python_version(), "host": platform.node()}

    def emit():
        line = json.dumps(result)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")

    import torch
    cuda = torch.cuda.is_available()
    versions = {"torch": torch.__version__}
    for name in ("transformers", "unsloth", "bitsandbytes", "llama_cpp"):
        try:
            versions[name] = __import__(name).__version__ if name != "unsloth" or backend_name == "unsloth" else None
        except Exception:  # noqa: BLE001
            versions[name] = None
    result["device"] = torch.cuda.get_device_name() if cuda else f"CPU x{os.cpu_count()}"

    from bonsai_ui.engine import load_engine
    from bonsai_ui.core.settings import AppSettings, GenerationSettings

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    engine = load_engine(AppSettings(model=args.model, backend=backend_name, load_in_4bit=four_bit,
                                     context_length=args.context_length, decoder=args.decoder,
                                     nf4_kernel=args.nf4_kernel, decode_kernels=args.decode_kernels))
    cuda_sync()
    result["load_s"] = round(time.perf_counter() - t0, 2)
    if backend_name == "unsloth":
        versions["unsloth"] = __import__("unsloth").__version__
    result["versions"] = versions
    backend = engine.backend
    backend.ignore_eos = True
    result["decoder"] = getattr(backend, "decoder_note", backend.name)
    settings = GenerationSettings(max_new_tokens=args.new_tokens, temperature=0.0, repetition_penalty=1.0)
    prompt = sentences(args.prompt_tokens, backend.count_tokens)
    result["prompt_tokens"] = backend.count_tokens(prompt)

    if args.started_at:  # process launch -> engine ready, as app.py does it (imports, load, warm-up)
        result["cold_start_s"] = round(time.time() - args.started_at, 2)
    t0 = time.perf_counter()
    first = timed_stream(engine, prompt, GenerationSettings(max_new_tokens=8, repetition_penalty=1.0), "warm")
    cuda_sync()
    result["first_request"] = {"ttft_s": round(first.ttft, 4), "total_s": round(time.perf_counter() - t0, 4),
                               "new_tokens": first.new_tokens}
    if hasattr(backend, "forget_caches"):
        backend.forget_caches()
    if backend_name == "llama.cpp":
        backend.llm.reset()  # a cold prompt: llama.cpp would reuse the warm-up's cache
    t = timed_stream(engine, prompt, settings, "main")
    result["stream"] = {"ttft_s": round(t.ttft, 4), "decode_tok_s": round(t.decode_tps, 2),
                        "new_tokens": t.new_tokens}
    emit()

    if "sampling" not in skip:  # what sampling costs against greedy: medians of three, alternating
        variants = {"greedy": dict(temperature=0.0, repetition_penalty=1.0),
                    "page_defaults": dict(temperature=0.0, repetition_penalty=1.1),
                    "sampled": dict(temperature=0.7, top_p=0.9, top_k=50, repetition_penalty=1.1),
                    "sampled_top_p_only": dict(temperature=0.7, top_p=0.9, top_k=0,
                                               repetition_penalty=1.0)}
        speeds = {name: [] for name in variants}
        for _ in range(3):
            for name, kw in variants.items():
                speeds[name].append(timed_stream(engine, prompt, GenerationSettings(
                    max_new_tokens=args.new_tokens, **kw), "sampling").decode_tps)
        greedy = statistics.median(speeds["greedy"])
        result["sampling_decode_tok_s"] = {
            name: {"median": round(statistics.median(v), 1),
                   "vs_greedy_pct": round(100 * (statistics.median(v) / greedy - 1), 1)}
            for name, v in speeds.items()}
        emit()

    if getattr(backend, "decoder", None) is not None:
        # streamed and not, alternating, medians of three each: one pair is within run-to-run noise
        streamed, plain = [], []
        for _ in range(3):
            backend.forget_caches()
            streamed.append(timed_stream(engine, prompt, settings, "main").decode_tps)
            plain.append(plain_static(backend, prompt, args.new_tokens)["decode_tok_s"])
        p = plain_static(backend, prompt, args.new_tokens)
        result["plain_static"] = {k: round(v, 4) for k, v in p.items()}
        result["ab_decode_tok_s"] = {"streamed": [round(x, 1) for x in streamed],
                                     "plain": [round(x, 1) for x in plain]}
        result["streaming_overhead_pct"] = round(
            100 * (1 - statistics.median(streamed) / statistics.median(plain)), 1)
        emit()

    if "reuse" not in skip:
        rows = []
        short = GenerationSettings(max_new_tokens=1, repetition_penalty=1.0)
        for n in [int(x) for x in args.reuse_lengths.split(",")]:
            base = sentences(n, backend.count_tokens)
            steps = base.split("Step ")
            for where, frac in (("early", 0.1), ("late", 0.95)):
                k = max(1, int(len(steps) * frac))
                edited = "Step ".join(steps[:k]) + "Step EDITED, pears are never apples. Step " + "Step ".join(steps[k:])
                row = {"prompt_tokens": backend.count_tokens(edited), "edit": where}
                timed_stream(engine, base, short, "warm-reuse")  # first use of a passed cache warms up
                timed_stream(engine, edited, short, "warm-reuse")
                for mode in ("full", "reuse") * 3:  # alternating; medians of three
                    if hasattr(backend, "forget_caches"):
                        backend.forget_caches()
                    if mode == "full" and backend_name == "llama.cpp":
                        backend.llm.reset()
                    timed_stream(engine, base, short, "edit")
                    if mode == "full":
                        if hasattr(backend, "forget_caches"):
                            backend.forget_caches()
                        if backend_name == "llama.cpp":
                            backend.llm.reset()
                    timing = timed_stream(engine, edited, short, "edit")
                    row.setdefault(f"ttft_{mode}_runs", []).append(round(timing.ttft, 4))
                    row[f"reused_tokens_{mode}"] = backend.last_reused_tokens
                for mode in ("full", "reuse"):
                    row[f"ttft_{mode}_s"] = statistics.median(row[f"ttft_{mode}_runs"])
                row["speedup"] = round(row["ttft_full_s"] / row["ttft_reuse_s"], 2)
                rows.append(row)
        result["regenerate_ttft"] = rows
        emit()

    if ("plain" not in skip or "static" not in skip and cuda) and hasattr(backend, "model"):
        if getattr(backend, "_nf4_installed", False):  # as --decoder generate runs: bitsandbytes
            backend._fast_linears(False)
            result["plain_generate_note"] = "NF4 kernel taken off, as --decoder generate runs"
    if "plain" not in skip and hasattr(backend, "model"):
        p = plain_generate(backend, prompt, args.new_tokens)
        result["plain_generate"] = {k: round(v, 4) for k, v in p.items()}
        result["speedup_vs_plain_generate"] = round(t.decode_tps / p["decode_tok_s"], 2)
        if getattr(backend, "decoder", None) is None:
            result["streaming_overhead_pct"] = round(100 * (1 - t.decode_tps / p["decode_tok_s"]), 1)
        emit()

    if "static" not in skip and cuda and hasattr(backend, "model"):
        try:  # transformers' static KV cache, which it auto-compiles (CUDA graphs) on CUDA
            p = plain_generate(backend, prompt, args.new_tokens, cache_implementation="static")
            result["plain_generate_static"] = {k: round(v, 4) for k, v in p.items()}
        except Exception as error:  # noqa: BLE001 - record why the variant failed
            result["plain_generate_static"] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
        emit()

    if cuda:
        result["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if "ceiling" not in skip and hasattr(backend, "model"):
            bw = copy_bandwidth()
            wb = weight_bytes_per_token(backend.model)
            result["copy_bandwidth_tb_s"] = round(bw / 1e12, 3)
            result["weight_bytes_per_token_gb"] = round(wb / 1e9, 3)
            result["ceiling_tok_s"] = round(bw / wb, 1)  # copy bandwidth ÷ bytes read a token
            result["share_of_ceiling_pct"] = round(100 * t.decode_tps / result["ceiling_tok_s"], 1)
        emit()


if __name__ == "__main__":
    main()
