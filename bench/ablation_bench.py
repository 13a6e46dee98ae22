"""Wall time of an ablation sweep: with prefix reuse (as the app runs it) against full re-encodes.

A reasoning of ``--sentences`` sentences (20) of about ``--sentence-tokens`` tokens each (30;
``--sentence-tokens 80`` for a long one), responses of ``--new-tokens`` tokens (128; EOS ignored,
so every response writes all of them), greedy. The sweep regenerates the baseline and one response
per sentence with that sentence removed, through the app's own ``Ablator``:

- reuse: as the app runs it (last sentence first; each variant keeps the cached prefix up to its
  removed sentence, in whole prefill chunks: 512-token batches on llama.cpp, 256 on the
  transformers backends);
- naive: the backend's caches forgotten before every response, so every prompt is re-encoded.

Both sweeps must write the same tokens (``same_tokens``). Reported per mode: wall and CPU time,
prompt tokens and tokens reused, the time to first token summed over the responses (the part reuse
can save; the rest is decoding, which no reuse shortens), and ``speedup_ceiling``: the speed-up if
every prompt token were reused. Each line records the commit and the load average before and after.

usage (CPU, the embedded model; ~4 minutes on 2 idle cores):
    python bench/ablation_bench.py --backend llama.cpp --out bench/results/tmp/ablation.jsonl
usage (GPU): bash bench/gpu.sh ablation   (the 7B random-weight shape on Unsloth, both lengths)
Results: bench/results/ablation-*.jsonl; docs/benchmarks.md, "Ablation sweep".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUESTION = "Jack has 4 pears and eats 5 of them. How many pears are left?"


def reasoning(n: int, tokens_each: int, count) -> str:
    """``n`` distinct sentences, each padded with clauses to about ``tokens_each`` tokens."""
    out = []
    for i in range(n):
        sentence = f"Step {i + 1}: Jack counts {i % 7 + 1} pears and Henri {i % 5 + 2} apples"
        k = 0
        while count(sentence + ".") < tokens_each:
            sentence += f", then basket {k} holds {(i * 3 + k) % 11} more plums than box {k + i}"
            k += 1
        out.append(sentence + ".")
    return " ".join(out)


def sweep(ablator, request, naive: bool) -> dict:
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = None
    for result in ablator.sweep(request, "bench-naive" if naive else "bench-reuse", forget_caches=naive):
        pass
    wall = time.perf_counter() - t0
    rows = result.rows
    # CPU seconds of every thread of this process: on a shared machine less inflated than the wall
    # time (it still counts llama.cpp's threads spinning at barriers while a sibling is descheduled)
    return {"wall_s": round(wall, 3), "cpu_s": round(time.process_time() - cpu0, 3),
            "load_avg": [round(x, 2) for x in os.getloadavg()], "responses": len(rows),
            "prompt_tokens": sum(r.prompt_tokens for r in rows),
            "reused_tokens": sum(r.reused_tokens for r in rows),
            "first_token_s": round(sum(r.first_token_s for r in rows), 3),
            "new_tokens": sum(r.new_tokens for r in rows),
            "reused_per_variant": [r.reused_tokens for r in rows],
            "tokens": [r.tokens for r in rows]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="llama.cpp", choices=("llama.cpp", "transformers", "unsloth"))
    ap.add_argument("--model", default="embedded", help="as app.py's --model: embedded, a folder, a .gguf")
    ap.add_argument("--decoder", default="auto", choices=("auto", "static", "generate"))
    ap.add_argument("--load-in-4bit", default="auto", choices=("auto", "yes", "no"))
    ap.add_argument("--label", default="")
    ap.add_argument("--sentences", type=int, default=20)
    ap.add_argument("--sentence-tokens", type=int, default=30)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=1, help="sweeps per mode, alternating; best kept")
    ap.add_argument("--machine", default="", help="what the machine is, for the record")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    load_before = os.getloadavg()  # the 1, 5, 15-minute load: a timing on a busy machine is void

    from bonsai_ui.ablation.sweep import Ablator, AblationRequest, split_units
    from bonsai_ui.engine import load_engine
    from bonsai_ui.editor.runs import Runner
    from bonsai_ui.core.settings import AppSettings, GenerationSettings

    t0 = time.perf_counter()
    engine = load_engine(AppSettings(model=args.model, backend=args.backend, context_length=8192,
                                     decoder=args.decoder, load_in_4bit=args.load_in_4bit))
    load_s = time.perf_counter() - t0
    backend = engine.backend
    backend.ignore_eos = True
    text = reasoning(args.sentences, args.sentence_tokens, backend.count_tokens)
    assert len(split_units(text)) == args.sentences, "the splitter must see every sentence"
    settings = GenerationSettings(max_new_tokens=args.new_tokens, temperature=0.0, repetition_penalty=1.0)
    request = AblationRequest(QUESTION, "", text, "alpaca", settings, cap=args.sentences)
    ablator = Ablator(Runner(engine))
    warm = AblationRequest(QUESTION, "", "Jack has 4 pears. He eats 5.", "alpaca",
                           GenerationSettings(max_new_tokens=4, temperature=0.0))
    for _ in ablator.sweep(warm, "warm"):
        pass

    best: dict[str, dict] = {}
    for _ in range(args.repeats):
        for mode in ("naive", "reuse"):
            got = sweep(ablator, request, mode == "naive")
            if mode not in best or got["wall_s"] < best[mode]["wall_s"]:
                best[mode] = got
    naive, reuse = best["naive"], best["reuse"]
    same = naive.pop("tokens") == reuse.pop("tokens")
    decode_s = naive["wall_s"] - naive["first_token_s"]
    result = {
        "bench": "ablation", "backend": backend.name, "decoder": getattr(backend, "decoder_note", backend.name),
        "model": args.label or backend.model_name, "host": platform.node(),
        "machine": args.machine or f"{os.cpu_count()} CPUs", "python": platform.python_version(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parents[1],
                                 capture_output=True, text=True).stdout.strip(),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "load_s": round(load_s, 1), "sentences": args.sentences,
        "reasoning_tokens": backend.count_tokens(text), "new_tokens": args.new_tokens,
        "repeats": args.repeats, "naive": naive, "reuse": reuse,
        "speedup": round(naive["wall_s"] / reuse["wall_s"], 3), "same_tokens": same,
        # Amdahl: even reusing every prompt token, the decode part remains
        "speedup_ceiling": round(naive["wall_s"] / max(decode_s, 1e-9), 3),
        "prompt_share_naive": round(naive["first_token_s"] / naive["wall_s"], 3),
    }
    line = json.dumps(result)
    print(line, flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
