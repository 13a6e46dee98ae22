"""Which change made identical runs repeat? The code before issue 8 (a copy of its bonsai_ui,
``--root``), run as it was and with one suspect removed at a time; text of three identical runs.

usage: python bench/old_path_ablation.py --root .baseline --model DIR [--no-cudnn] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--no-cudnn", action="store_true", help="SDPA without cuDNN's attention")
    ap.add_argument("--prompt-tokens", type=int, default=1500)
    ap.add_argument("--new-tokens", type=int, default=300)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    sys.path.insert(0, args.root)
    sys.path.insert(1, f"{args.root}/bench")
    import torch
    from bench import sentences  # the old bench.py

    from bonsai_ui.engine import Timing, load_engine

    def common_prefix(a, b):  # the code before has no reuse.common_prefix
        return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    from bonsai_ui.settings import AppSettings, GenerationSettings

    if args.no_cudnn:
        torch.backends.cuda.enable_cudnn_sdp(False)
    engine = load_engine(AppSettings(model=args.model, backend="transformers", load_in_4bit="no",
                                     context_length=8192))
    backend = engine.backend
    backend.ignore_eos = True
    prompt = sentences(args.prompt_tokens, backend.count_tokens)
    settings = GenerationSettings(max_new_tokens=args.new_tokens, temperature=0.0, repetition_penalty=1.0)
    texts = []
    for _ in range(3):
        backend.forget_caches()
        texts.append("".join(engine.stream(prompt, settings, threading.Event(), (), Timing(), "a")))
    words = [list(t) for t in texts]  # characters: random weights write few spaces

    record = dict(code=args.root, no_cudnn=args.no_cudnn, decoder=backend.decoder_note,
                  card=torch.cuda.get_device_name(), chars=len(words[0]),
                  chars_agree=[common_prefix(words[0], w) for w in words[1:]])
    print(json.dumps(record), flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
