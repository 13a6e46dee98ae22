"""The batching engine's own ceiling: one llama.cpp decode step for B sequences at once, no server.

However a server batches its users, it cannot beat what one ``llama_decode`` of a batch of B
tokens (one per sequence) costs against a batch of one. This measures exactly that, through
llama-cpp-python's low-level API (the same libllama/libggml that llama-server links), for B = 1,
2, 4, 8, 16, each sequence with a 64-token prompt already in its cache, 64 steps timed. It bounds
what bench/concurrency.py's batching row can reach on the same machine. ~1 minute a GGUF.

    python bench/engine_batch.py [GGUF ...] [--threads 2] [--requantize Q4_0 Q8_0] [--out FILE]

Without a GGUF it measures the embedded SmolLM2-135M (Q4_1). Other quantizations of the same
weights can be made with ``--requantize Q4_0 Q8_0`` (llama.cpp's own quantizer; from Q4_1, so a
lossy second step: for measuring the kernels, not for serving).
Results: bench/results/engine-batch-*.jsonl; docs/benchmarks.md, "Many users at once".
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCHES = (1, 2, 4, 8, 16)
PROMPT_TOKENS = 64
STEPS = 64


def requantize(src: Path, kind: str, out_dir: Path) -> Path:
    import llama_cpp as L

    dst = out_dir / f"{src.stem}.{kind}.gguf"
    params = L.llama_model_quantize_default_params()
    params.ftype = getattr(L, f"LLAMA_FTYPE_MOSTLY_{kind}")
    params.allow_requantize = True
    if L.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params)) != 0:
        raise SystemExit(f"llama.cpp could not quantize {src} to {kind}")
    return dst


def sweep(gguf: Path, threads: int) -> list[dict]:
    import llama_cpp as L

    L.llama_backend_init()
    model = L.llama_model_load_from_file(str(gguf).encode(), L.llama_model_default_params())
    cp = L.llama_context_default_params()
    cp.n_ctx = max(BATCHES) * (PROMPT_TOKENS + STEPS + 8)
    cp.n_batch = cp.n_ubatch = max(BATCHES) * PROMPT_TOKENS  # a whole batch of prompts at once
    cp.n_seq_max = max(BATCHES)
    cp.n_threads = cp.n_threads_batch = threads
    cp.kv_unified = False  # as llama-server with -np N: each slot its own cells
    ctx = L.llama_init_from_model(model, cp)

    def decode(batch_size: int, pos: int, tokens: int) -> None:
        batch = L.llama_batch_init(batch_size * tokens, 0, batch_size)
        batch.n_tokens = batch_size * tokens
        k = 0
        for seq in range(batch_size):
            for t in range(tokens):
                batch.token[k], batch.pos[k], batch.n_seq_id[k] = 100 + seq + t, pos + t, 1
                batch.seq_id[k][0], batch.logits[k] = seq, t == tokens - 1
                k += 1
        if L.llama_decode(ctx, batch) != 0:
            raise SystemExit(f"llama_decode failed at B={batch_size}")
        L.llama_batch_free(batch)

    rows = []
    for b in BATCHES:
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        decode(b, 0, PROMPT_TOKENS)
        decode(b, PROMPT_TOKENS, 1)  # warm: the one-token graph
        started = time.perf_counter()
        for i in range(STEPS):
            decode(b, PROMPT_TOKENS + 1 + i, 1)
        step = (time.perf_counter() - started) / STEPS
        rows.append({"gguf": gguf.name, "threads": threads, "batch": b,
                     "step_ms": round(step * 1000, 2), "tokens_per_s": round(b / step, 1)})
    for row in rows:
        row["vs_batch_1"] = round(row["tokens_per_s"] / rows[0]["tokens_per_s"], 2)
    L.llama_free(ctx)
    L.llama_model_free(model)
    return rows


def main() -> None:
    from bonsai_ui.engine.source import embedded_gguf

    ap = argparse.ArgumentParser()
    ap.add_argument("gguf", nargs="*", type=Path)
    ap.add_argument("--threads", type=int, nargs="*", default=[2])
    ap.add_argument("--requantize", nargs="*", default=[], help="also Q4_0, Q8_0, … of the embedded")
    ap.add_argument("--out")
    args = ap.parse_args()
    ggufs = args.gguf or [embedded_gguf()]
    tmp = Path(tempfile.mkdtemp(prefix="engine-batch-"))
    ggufs += [requantize(embedded_gguf(), kind, tmp) for kind in args.requantize]
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    out = open(args.out, "a") if args.out else None
    head = {"when": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(),
            "load_avg": os.getloadavg()}
    print(json.dumps(head), flush=True)
    if out:
        out.write(json.dumps(head) + "\n")
    for gguf in ggufs:
        for threads in args.threads:
            for row in sweep(gguf, threads):
                print(json.dumps(row), flush=True)
                if out:
                    out.write(json.dumps(row) + "\n")
    if out:
        out.write(json.dumps({"load_avg_after": os.getloadavg()}) + "\n")


if __name__ == "__main__":
    main()
