"""Where does streaming cost time? Plain ``generate`` against the app's streamed path and variants
that each remove one ingredient, alternated in one process so that drift hits all alike.

usage: python bench/streaming_ab.py --model DIR [--backend unsloth|transformers] [--tokens 128]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import cuda_sync, plain_generate, sentences, timed_stream  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--backend", default="unsloth")
    ap.add_argument("--four-bit", default="yes")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import torch
    from transformers.generation.streamers import BaseStreamer

    from bonsai_ui.engine import load_engine
    from bonsai_ui.engine import transformers_backend as tb
    from bonsai_ui.settings import AppSettings, GenerationSettings

    engine = load_engine(AppSettings(model=args.model, backend=args.backend, load_in_4bit=args.four_bit))
    backend = engine.backend
    backend.ignore_eos = True
    prompt = sentences(1000, backend.count_tokens)
    settings = GenerationSettings(max_new_tokens=args.tokens, repetition_penalty=1.0)
    ids = backend.encode(prompt)
    x = torch.tensor([ids], device=backend.model.device)

    class NullStreamer(BaseStreamer):
        def put(self, value):
            value.cpu()

        def end(self):
            pass

    def raw(**extra):
        """generate() in this thread with the app's kwargs plus or minus one ingredient."""
        kwargs = {**backend.generate_kwargs(settings), **extra}
        cuda_sync()
        t0 = time.perf_counter()
        with torch.inference_mode():
            backend.model.generate(input_ids=x, attention_mask=torch.ones_like(x), **kwargs)
        cuda_sync()
        return (args.tokens - 1) / (time.perf_counter() - t0)

    def app_stream(switch=None):
        old = sys.getswitchinterval()
        if switch:
            sys.setswitchinterval(switch)
        try:
            backend.forget_caches()
            return timed_stream(engine, prompt, settings, "ab").decode_tps
        finally:
            sys.setswitchinterval(old)

    def threaded_raw(**extra):
        """The same generate() in a worker thread, the caller idle: the cost of the thread alone."""
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("v", raw(**extra)))
        t.start()
        t.join()
        return out["v"]

    cancel = threading.Event()
    variants = {
        "plain_generate (seed)": lambda: plain_generate(backend, prompt, args.tokens)["decode_tok_s"],
        "app stream": app_stream,
        "app stream, switchinterval 0.2ms": lambda: app_stream(0.0002),
        "generate, app kwargs": lambda: raw(),
        "generate, app kwargs + cancel criteria": lambda: raw(stopping_criteria=tb.StoppingCriteriaList(
            [tb._CancelCriteria(cancel)])),
        "generate, app kwargs + null streamer": lambda: raw(streamer=NullStreamer()),
        "generate, app kwargs + detokenizer": lambda: raw(streamer=tb._IncrementalDetokenizer(
            backend.tokenizer, ids, lambda text, n: None)),
        "generate, app kwargs, return_dict": lambda: raw(return_dict_in_generate=True),
        "generate in a worker thread": lambda: threaded_raw(),
    }
    print(f"# {torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'} {args.model} {args.backend} {args.tokens} new tokens, "
          f"median decode tok/s of {args.rounds}", flush=True)
    results = {name: [] for name in variants}
    for round_ in range(args.rounds + 1):  # round 0 warms up and is not counted
        for name, fn in variants.items():
            value = fn()
            print(f"  round {round_} {value:8.2f}  {name}", flush=True)  # partial results survive a timeout
            if round_:
                results[name].append(value)
    for name, values in results.items():
        print(f"{statistics.median(values):8.2f}  {name}")


if __name__ == "__main__":
    main()
