"""The embedded model's speed and tokens on two llama-cpp-python builds of this machine: the pinned
instruction set that requirements-cpu.txt builds (AVX2, FMA, F16C) against a native build
(``-march=native``: AVX-512 where the CPU has it). Each build runs in its own interpreter:

    python bench/cpu_kernels.py --python .venv/bin/python --python /path/to/native-venv/bin/python

For each: its instruction sets, prompt processing and decode speed (tokens/s, median of --repeat
runs) and a fingerprint of the greedy tokens, so the same run shows what pinning costs and that
the builds' words differ. A native build: ``pip install --no-cache-dir llama-cpp-python==0.3.36``
in another venv (--no-cache-dir: pip would otherwise hand back the pinned wheel it keeps).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run inside each interpreter: llama_cpp alone, on the GGUF the embedded model ships.
PROBE = r"""
import hashlib, json, os, statistics, sys, time
import llama_cpp
path, prompt, new, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
llm = llama_cpp.Llama(model_path=path, n_ctx=4096, n_threads=os.cpu_count(), verbose=False)
tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
prefill, decode, outs = [], [], set()
for _ in range(repeat):
    llm.reset()
    start = time.perf_counter(); first = None; out = []
    for token in llm.generate(tokens, temp=0.0, top_k=50, top_p=0.95, repeat_penalty=1.1):
        now = time.perf_counter()
        first = first or now
        out.append(token)
        if len(out) >= new:
            break
    prefill.append(len(tokens) / (first - start)); decode.append((len(out) - 1) / (now - first))
    outs.add(hashlib.sha256(json.dumps(out).encode()).hexdigest()[:12])
print(json.dumps({"system_info": llama_cpp.llama_print_system_info().decode().strip(),
                  "prompt_tokens": len(tokens), "new_tokens": new,
                  "prefill_tok_s": round(statistics.median(prefill), 1),
                  "decode_tok_s": round(statistics.median(decode), 1), "tokens": sorted(outs)}))
"""

PROMPT = ("Below is an instruction that describes a task. Write a response that appropriately "
          "completes the request.\n\n### Instruction:\nExplain, step by step, how a greedy decoder "
          "picks each token of a sentence, and why two computers may pick different ones.\n\n"
          "### Response:\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", required=True,
                        help="an interpreter with a llama-cpp-python build (give two or more)")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", help="append each build's result to this JSON-lines file")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from bonsai_ui.engine.source import embedded_gguf

    gguf = str(embedded_gguf())
    results = []
    out = open(args.out, "a", encoding="utf-8") if args.out else None
    machine = {"machine": platform.machine(), "cpu": _cpu_model(), "cores": _cores()}
    for python in args.python:
        done = subprocess.run([python, "-c", PROBE, gguf, PROMPT, str(args.new_tokens), str(args.repeat)],
                              capture_output=True, text=True)
        if done.returncode:  # a build that crashes is a result too (a native one did here)
            result = {"python": python, "crashed": done.returncode, "stderr": done.stderr[-500:]}
        else:
            result = {"python": python, **json.loads(done.stdout.strip().splitlines()[-1])}
        results.append(result)
        print(json.dumps(result), flush=True)
        if out:
            out.write(json.dumps({**machine, **result}) + "\n")
    base = results[0]
    for other in results[1:]:
        if "crashed" in other or "crashed" in base:
            continue
        line = (f"{other['python']}: decode {other['decode_tok_s'] / base['decode_tok_s']:.3f}x, "
                f"prefill {other['prefill_tok_s'] / base['prefill_tok_s']:.3f}x of {base['python']}; "
                f"tokens {'identical' if other['tokens'] == base['tokens'] else 'differ'}")
        print(line)
        if out:
            out.write(json.dumps({**machine, "ratio": line}) + "\n")
    print(json.dumps(machine))


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def _cores() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
