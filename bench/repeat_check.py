"""Same input, same tokens? Identical runs, prefix-reuse runs and fresh sessions, token for token.

One backend configuration per process (``import unsloth`` patches transformers globally), with the
app's defaults (``--nf4-kernel``, ``--decode-kernels`` from ``APP_OPTIONS``) unless told otherwise.
For each decoding loop (``--decoders``: static, generate) and sampling mode (``--modes``: greedy,
seeded, page-defaults, seeded-top-p): three identical runs (caches forgotten before each), one run
that reuses the prefix of an edited prompt sent just before (an edit at 90 % of a 1,500-token
prompt), and one in a fresh session. Every run writes ``--new-tokens`` tokens (1,000; EOS ignored).
Prints one JSON line per check as it goes: tokens equal from the start for each run against the
first (``repeats_agree``, ``reuse_agree``, ``fresh_agree``), ``identical``, and decode speeds.

usage: python bench/repeat_check.py --config unsloth-4bit --model DIR [--label L] [--modes greedy,seeded]
                                   [--decoders static] [--out FILE]
`bash bench/gpu.sh repeat` runs it on the GPU shapes. Results: bench/results/repeat-*.jsonl;
docs/benchmarks.md, "Exactness". On the CPU the same check is a test
(tests/test_engine.py::test_same_input_same_tokens_run_after_run_and_with_reuse).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import CONFIGS, sentences  # noqa: E402  (bench/bench.py: this folder is on the path)

SAMPLING = {
    "greedy": dict(temperature=0.0, repetition_penalty=1.0),
    "seeded": dict(temperature=0.7, top_p=0.9, top_k=50, repetition_penalty=1.1, seed=1234),
    "page-defaults": dict(temperature=0.0, repetition_penalty=1.1),
    "seeded-top-p": dict(temperature=0.8, top_p=0.9, top_k=0, repetition_penalty=1.0, seed=99),
}


def run(engine, prompt, settings, session):
    from bonsai_ui.engine import Timing

    timing = Timing()
    for _ in engine.stream(prompt, settings, threading.Event(), (), timing, session):
        pass
    return timing


def agree(a: list[int], b: list[int]) -> int:
    """Tokens equal from the start."""
    from bonsai_ui.engine.reuse import common_prefix

    return common_prefix(a, b)


def main() -> None:
    from bonsai_ui.core.settings import APP_OPTIONS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, choices=sorted(CONFIGS))
    parser.add_argument("--model", required=True)
    parser.add_argument("--label", default="")
    parser.add_argument("--decoders", default="static,generate")
    parser.add_argument("--prompt-tokens", type=int, default=1500)
    parser.add_argument("--new-tokens", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default="greedy,seeded")
    parser.add_argument("--nf4-kernel", default=APP_OPTIONS["nf4_kernel"].default,
                        choices=APP_OPTIONS["nf4_kernel"].choices)
    parser.add_argument("--decode-kernels", default=APP_OPTIONS["decode_kernels"].default,
                        choices=("on", "off"))
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    from bonsai_ui.engine import load_engine
    from bonsai_ui.core.settings import AppSettings, GenerationSettings

    backend_name, four_bit = CONFIGS[args.config]
    engine = load_engine(AppSettings(model=args.model, backend=backend_name, load_in_4bit=four_bit,
                                     decoder="auto", nf4_kernel=args.nf4_kernel,
                                     decode_kernels=args.decode_kernels,
                                     context_length=8192))
    backend = engine.backend
    backend.ignore_eos = True
    prompt = sentences(args.prompt_tokens, backend.count_tokens)
    cut = int(len(prompt) * 0.9)
    edited = prompt[:cut] + " Jill says the pears were books all along. " + prompt[cut:]
    card = ""
    try:
        import torch

        card = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor()
    except ImportError:
        pass
    out = open(args.out, "a") if args.out else None

    def emit(record):
        record.update(config=args.config, label=args.label, card=card,
                      prompt_tokens=backend.count_tokens(prompt), new_tokens=args.new_tokens)
        line = json.dumps(record)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    for decoder in args.decoders.split(","):
        if decoder == "static" and backend_name in ("transformers", "unsloth"):
            backend.use_decoder("static", args.nf4_kernel, args.decode_kernels)
        elif decoder == "generate" and backend_name in ("transformers", "unsloth"):
            backend.use_decoder("generate")
        note = getattr(backend, "decoder_note", backend_name)
        for mode in args.modes.split(","):
            settings = GenerationSettings(max_new_tokens=args.new_tokens, **SAMPLING[mode])
            runs = []
            for _ in range(args.repeats):
                if hasattr(backend, "forget_caches"):
                    backend.forget_caches()
                runs.append(run(engine, prompt, settings, "a"))
            run(engine, edited, settings, "b")  # the session's cache now holds the edited prompt
            reuse = run(engine, prompt, settings, "b")
            fresh = run(engine, prompt, settings, "c")
            first = runs[0].token_ids
            emit(dict(decoder=note, mode=mode,
                      repeats_agree=[agree(first, r.token_ids) for r in runs[1:]],
                      reuse_agree=agree(first, reuse.token_ids), reused_tokens=reuse.reused_tokens,
                      fresh_agree=agree(first, fresh.token_ids),
                      identical=all(r.token_ids == first for r in runs[1:] + [reuse, fresh]),
                      fingerprints=[r.fingerprint for r in runs + [reuse, fresh]],
                      decode_tok_s=[round(r.decode_tps or 0, 1) for r in runs],
                      ttft_full=round(runs[-1].ttft, 4), ttft_reuse=round(reuse.ttft, 4)))
        if decoder == "static":  # decode speed of the page's defaults, for the sampling targets
            settings = GenerationSettings(max_new_tokens=min(args.new_tokens, 512),
                                          **SAMPLING["page-defaults"])
            speeds = [run(engine, prompt, settings, "d").decode_tps for _ in range(3)]
            emit(dict(decoder=note, mode="page-defaults", decode_tok_s=[round(s, 1) for s in speeds],
                      median=round(statistics.median(speeds), 1)))
    if out:
        out.close()


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"# done in {time.time() - t0:.0f} s", flush=True)
