"""The debate's fact-based questions with and without their format held while decoding.

For each of 20 contexts (answers and answer + rebuttal pairs, English and Japanese, one sentence to
a paragraph) the questions step runs as the Debate tab runs it (greedy, the seed's template):

- ``held``: under the grammar (core/constraints.py) with the format's own token budget;
- ``free``: the model's free text at the page's default max new tokens, read by the tolerant
  parser, as the seed did (the count of contexts that give five parseable questions);
- ``same_tokens``: the same prompt without the grammar, end of text and stop strings ignored, for
  exactly as many tokens as ``held`` wrote: the step's time and decode speed at the same token
  count, so the ratio is the cost of the mask alone.

Every run re-reads the whole prompt (no kept prefix), one run after the other in one process.
One JSON line per context, then a summary line.

usage: python bench/fbq_bench.py [APP OPTIONS...] [--only NAME,NAME] [--out FILE]
       python bench/fbq_bench.py --out bench/results/fbq-smollm2-xeon-2vcpu-DATE.jsonl
       python bench/fbq_bench.py --backend unsloth --model /dev/shm/qwen2.5-7b --out ...   (GPU)
Results: docs/benchmarks.md, "Fact-based questions held to their format".
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bonsai_ui.core.constraints import FBQ  # noqa: E402
import threading  # noqa: E402

from bonsai_ui.core.prompts import load_format, render_prompt, render_task  # noqa: E402
from bonsai_ui.core.settings import GENERATION_BOUNDS, GenerationSettings, parse_app_settings  # noqa: E402
from bonsai_ui.debate.rounds import MAX_QUESTIONS, parse_fact_questions  # noqa: E402
from bonsai_ui.editor.runs import Runner  # noqa: E402
from bonsai_ui.engine import Timing, load_engine  # noqa: E402

EN_ANSWERS = [
    "Yes.",
    "No. LUNA is not white, and KIKI has black fur.",
    "Companies should not replace human support with AI: customers with complex problems need "
    "judgement, and a chatbot that fails them costs more than it saves.",
    "Remote work raises productivity for focused tasks, but it weakens mentoring. Junior staff "
    "learn less when nobody sits beside them, and the savings on offices go into tools and travel.",
    "Cities should ban cars from their centres. Air gets cleaner, streets get safer and shops see "
    "more people on foot. Delivery vans and disabled drivers can have permits, and buses must run "
    "more often before the ban starts, or the people who live furthest out lose the most.",
]
EN_REBUTTALS = [
    "But a chatbot answers at night, in every language, and never loses its temper.",
    "Offices also cost commuting hours; mentoring can be scheduled online.",
    "A ban hurts the elderly and night workers most, and shops in the centre lose the customers "
    "who drive in from villages without buses.",
]
JA_ANSWERS = [
    "はい。",
    "いいえ。LUNAは白くなく、KIKIは黒い毛です。",
    "企業は人間のサポートをAIに置き換えるべきではありません。複雑な問題には判断が必要で、"
    "失敗するチャットボットは節約分以上のコストを生みます。",
    "在宅勤務は集中作業の生産性を上げますが、指導の機会を減らします。若手は隣に誰もいないと"
    "学びが少なく、オフィスの節約分は道具と出張に消えます。",
    "都市の中心部から車を締め出すべきです。空気はきれいになり、道は安全になり、歩く人が増えて"
    "店も潤います。配達車と障害のある運転者には許可を出し、禁止の前にバスを増やすべきです。",
]
JA_REBUTTALS = [
    "しかしチャットボットは夜でも、どの言語でも答え、決して怒りません。",
    "オフィスにも通勤時間というコストがあり、指導はオンラインでも予定できます。",
    "禁止は高齢者と夜勤の人を最も苦しめ、バスのない村から車で来る客を中心部の店は失います。",
]


def contexts() -> list[tuple[str, str]]:
    """20 (name, context): five answers and five answer + rebuttal pairs in each language."""
    out = []
    for lang, answers, rebuttals in (("en", EN_ANSWERS, EN_REBUTTALS), ("ja", JA_ANSWERS, JA_REBUTTALS)):
        out += [(f"{lang}-answer-{i}", a) for i, a in enumerate(answers)]
        pairs = [(answers[2], rebuttals[0]), (answers[3], rebuttals[1]), (answers[4], rebuttals[2]),
                 (answers[1], rebuttals[0]), (answers[0], rebuttals[2])]
        out += [(f"{lang}-rebuttal-{i}", f"{a}\n\n{r}") for i, (a, r) in enumerate(pairs)]
    return out


def run(engine, instruction: str, settings: GenerationSettings, constraint=None):
    engine.backend.forget_caches()  # the whole prompt read in every run
    state = None
    started = time.perf_counter()
    for state in Runner(engine).generate(instruction, "", "vanilla", "alpaca", "", settings,
                                         constraint=constraint):
        pass
    timing = state.timings[-1]
    return state, {"seconds": round(time.perf_counter() - started, 3), "tokens": timing.new_tokens,
                   "decode_tps": round(timing.decode_tps or 0.0, 2), "ended_by": timing.ended_by,
                   "parsed": len(parse_fact_questions(state.response))}


def same_tokens(engine, instruction: str, tokens: int) -> dict:
    """The unconstrained prompt for exactly ``tokens`` new tokens: no stop string, no end of text."""
    engine.backend.forget_caches()
    prompt = render_prompt(load_format("alpaca"), "vanilla", instruction, "", chat=engine.backend.chat)
    timing = Timing()
    engine.backend.ignore_eos = True
    started = time.perf_counter()
    try:
        for _ in engine.stream(prompt, GenerationSettings(max_new_tokens=tokens, temperature=0.0),
                               threading.Event(), (), timing):
            pass
    finally:
        engine.backend.ignore_eos = False
    return {"seconds": round(time.perf_counter() - started, 3), "tokens": timing.new_tokens,
            "decode_tps": round(timing.decode_tps or 0.0, 2), "ended_by": timing.ended_by}


def main(argv: list[str]) -> None:
    out_path, only = None, None
    if "--out" in argv:
        i = argv.index("--out")
        out_path, argv = argv[i + 1], argv[:i] + argv[i + 2:]
    if "--only" in argv:  # re-measure some contexts (a row that ran while the cores were busy)
        i = argv.index("--only")
        only, argv = set(argv[i + 1].split(",")), argv[:i] + argv[i + 2:]
    settings = parse_app_settings(argv, environ={})
    engine = load_engine(settings)
    backend = engine.backend
    fmt = load_format("alpaca")
    page_default = int(GENERATION_BOUNDS["max_new_tokens"].default)
    lines = []
    machine = f"{platform.machine()} {platform.processor() or ''}".strip()

    def emit(record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False)
        print(line, flush=True)
        lines.append(line)

    # warm up: the first runs pay one-time costs (the grammar's first mask, caches, thread pools)
    warm = render_task(fmt, "fbq", str_output_aff="Warm up.")
    run(engine, warm, GenerationSettings(max_new_tokens=32, temperature=0.0), FBQ)
    run(engine, warm, GenerationSettings(max_new_tokens=32, temperature=0.0))
    for name, context in contexts():
        if only and name not in only:
            continue
        instruction = render_task(fmt, "fbq", str_output_aff=context)
        state, held = run(engine, instruction, GenerationSettings(max_new_tokens=FBQ.max_tokens,
                                                                  temperature=0.0), FBQ)
        _, free = run(engine, instruction, GenerationSettings(max_new_tokens=page_default,
                                                              temperature=0.0))
        same = same_tokens(engine, instruction, held["tokens"])
        emit({"context": name, "prompt_tokens": state.timings[-1].prompt_tokens, "held": held,
              "free": free, "same_tokens": same,
              "time_ratio": round(held["seconds"] / same["seconds"], 3),
              "decode_ratio": round(held["decode_tps"] / same["decode_tps"], 3) if same["decode_tps"] else None,
              "held_text": state.response})
    records = [json.loads(x) for x in lines]
    emit({"summary": True, "model": backend.model_name, "backend": backend.name, "machine": machine,
          "contexts": len(records),
          "held_five": sum(r["held"]["parsed"] == MAX_QUESTIONS for r in records),
          "free_five": sum(r["free"]["parsed"] == MAX_QUESTIONS for r in records),
          "free_any": sum(r["free"]["parsed"] > 0 for r in records),
          "time_ratio_median": statistics.median(r["time_ratio"] for r in records),
          "time_ratio_max": max(r["time_ratio"] for r in records),
          "decode_ratio_median": statistics.median(r["decode_ratio"] for r in records if r["decode_ratio"]),
          "held_tokens_median": statistics.median(r["held"]["tokens"] for r in records),
          "command": "python bench/fbq_bench.py " + " ".join(sys.argv[1:])})
    if out_path:
        Path(out_path).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
