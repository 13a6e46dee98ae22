"""Where the time to first token goes: the same prefill called ever closer to how the app calls it.

Prints one line per layer (median of several runs, full prefill of the same prompt each time):
the decoder in this thread, the decoder in a fresh thread, in a long-lived thread, the backend's
stream, the engine's stream. The differences between lines are the cost of each layer.

usage: python bench/ttft_probe.py --model DIR [--backend unsloth] [--prompt-tokens 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--prompt-tokens", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--decoder", default="static")
    args = ap.parse_args()

    import torch

    from bench import sentences
    from bonsai_ui.engine import Timing, load_engine
    from bonsai_ui.engine.static_decoder import decode
    from bonsai_ui.settings import AppSettings, GenerationSettings

    engine = load_engine(AppSettings(model=args.model, backend=args.backend,
                                     context_length=8192, decoder=args.decoder))
    backend = engine.backend
    print("decoder:", backend.decoder_note, flush=True)
    prompt = sentences(args.prompt_tokens, backend.count_tokens)
    one = GenerationSettings(max_new_tokens=1, temperature=0.0, repetition_penalty=1.0)
    ids = backend.encode(prompt)

    def sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def direct():
        with torch.inference_mode():
            decode(backend.decoder, backend.decoder.cache, ids, 0, one, set(), lambda t: True)
        sync()

    def fresh_thread():
        t = threading.Thread(target=direct)
        t.start()
        t.join()

    pool = ThreadPoolExecutor(1)

    def long_lived_thread():
        pool.submit(direct).result()

    def backend_stream():
        backend.forget_caches()
        for _ in backend.stream(prompt, one, threading.Event(), "probe"):
            pass

    def engine_stream():
        backend.forget_caches()
        for _ in engine.stream(prompt, one, threading.Event(), (), Timing(), "probe"):
            pass

    def encode_only():
        backend.encode(prompt)

    layers = [("encode only", encode_only), ("decoder, this thread", direct),
              ("decoder, fresh thread", fresh_thread), ("decoder, long-lived thread", long_lived_thread),
              ("backend.stream", backend_stream), ("engine.stream", engine_stream)]
    for name, fn in layers:
        fn()  # warm
        times = []
        for _ in range(args.runs):
            sync()
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        print(f"{name:28s} median {statistics.median(times) * 1000:8.1f} ms   "
              f"min {min(times) * 1000:8.1f} ms  ({len(ids)} prompt tokens)", flush=True)


if __name__ == "__main__":
    main()
