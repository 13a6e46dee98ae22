"""The Compare diff against the difflib one it replaced, on the same texts in the same process.

Texts: a 4,000-word English text and a copy with a few sentences edited, two unrelated 4,000-word
texts (the worst case: responses of two different runs), and the Japanese pair of
bench/long_history.py at ~3,000 tokens. Each figure is the best of ``--repeat`` CPU-time runs. Like
for like, the alignment (``align``) is held against difflib's (``diff_texts_difflib``, kept in
bonsai_ui/workbench/diffing.py for this); ``diff_texts`` (what the view shows: the alignment with
short equal stretches folded into the changes around them) is timed as well, with the number of
marked spans each gives. ~1 minute (difflib's side is most of it).

usage: python bench/diff_speed.py [--repeat 3] [--out FILE]
Results: bench/results/diff-speed-*.json; docs/benchmarks.md, "Diff speed".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from long_history import ROOT, edited, english, japanese  # noqa: E402

from bonsai_ui.workbench.diffing import align, diff_texts, diff_texts_difflib, forget_cuts, tokenize  # noqa: E402


def best_cpu_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        forget_cuts()  # every run cuts both texts into tokens, as a first pick of a pair does
        start = time.process_time()
        fn()
        times.append((time.process_time() - start) * 1000)
    return round(min(times), 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "tmp" / "diff-speed.json"))
    args = ap.parse_args()
    rng = random.Random("diff-speed")
    words = 4000 / 0.75  # english() writes 0.75 words a token
    text = english(rng, int(words))
    cases = {"4,000 English words, 5 sentences edited": (text, edited(rng, text)),
             "4,000 English words, unrelated texts": (text, english(rng, int(words))),
             "~3,000 tokens of Japanese, 5 sentences edited": (ja := japanese(rng, 3000), edited(rng, ja))}
    rows = []
    for name, (old, new) in cases.items():
        fast, slow, shown = align(old, new), diff_texts_difflib(old, new), diff_texts(old, new)
        for segments in (fast, slow, shown):
            assert "".join(t for t, g in segments if g != "+") == old
            assert "".join(t for t, g in segments if g != "-") == new
        changed = [sum(len(tokenize(t)) for t, g in s if g) for s in (fast, slow)]
        row = {"case": name, "chars": len(old), "words": len(old.split()), "tokens": [len(tokenize(old)), len(tokenize(new))],
               "rapidfuzz_ms": best_cpu_ms(lambda: align(old, new), args.repeat),
               "difflib_ms": best_cpu_ms(lambda: diff_texts_difflib(old, new), args.repeat),
               "shown_ms": best_cpu_ms(lambda: diff_texts(old, new), args.repeat),
               "changed_tokens_rapidfuzz": changed[0], "changed_tokens_difflib": changed[1],
               "marked_spans_aligned": sum(1 for _, g in fast if g),
               "marked_spans_shown": sum(1 for _, g in shown if g)}
        row["speedup"] = round(row["difflib_ms"] / max(row["rapidfuzz_ms"], 0.01), 1)
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    result = {"machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} vCPU",
              "when": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
              "python": platform.python_version(), "cases": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
