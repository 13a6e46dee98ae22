"""Not a benchmark: the full-size history that the workbench benchmarks (bench/workbench_latency.py,
bench/diff_speed.py) and tests/test_workbench_browser.py use: 200 attempts whose reasoning and
response are ~3,000 tokens each (the app generates up to 3,072 tokens of reasoning), English or
Japanese.

Attempts come in families: a generated text, then versions with a few sentences edited, as a
researcher's regenerates are. Text is drawn from a fixed vocabulary with a seeded generator, so
every run of a bench sees the same history.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bonsai_ui.workbench.attempts import Attempt, History  # noqa: E402

WORDS = ("the cat sat on a mat and Jack has four pears he eats five of them so there are none left "
         "which is impossible because one cannot eat more pears than one has therefore the question "
         "contains a contradiction let us check each premise first then count the fruit carefully "
         "apples books are not fruit Henri has three apples Jill has five books answer total").split()
KANA = ("まず前提を確認します。ジャックは梨を四個持っています。五個食べることはできません。したがって質問は矛盾して"
        "います。アンリはリンゴを三個、ジルは本を五冊持っています。本は果物ではありません。果物は全部で三個です。")
# ~0.75 English words a token and ~1.3 Japanese characters a token for these models' tokenizers.
WORDS_PER_TOKEN, CHARS_PER_TOKEN = 0.75, 1.3


def english(rng: random.Random, tokens: int) -> str:
    out = []
    for i in range(int(tokens * WORDS_PER_TOKEN)):
        word = rng.choice(WORDS)
        out.append(word.capitalize() if not out or out[-1].endswith(". ") else word)
        out.append(". " if rng.random() < 0.08 else ("\n" if rng.random() < 0.01 else " "))
    return "".join(out).strip() + "."


def japanese(rng: random.Random, tokens: int) -> str:
    sentences = [s + "。" for s in KANA.split("。") if s]
    out, n = [], 0
    while n < tokens * CHARS_PER_TOKEN:
        s = rng.choice(sentences)
        if rng.random() < 0.3:  # vary the sentences, so that they are not all alike
            i = rng.randrange(len(s) - 1)
            s = s[:i] + rng.choice("一二三四五六七八九") + s[i:]
        out.append(s + ("\n" if rng.random() < 0.1 else ""))
        n += len(s)
    return "".join(out)


def edited(rng: random.Random, text: str, edits: int = 5) -> str:
    """``text`` with a few sentences rewritten, as a user edits reasoning."""
    sentences = text.replace("。", "。\0").replace(". ", ". \0").split("\0")
    for _ in range(edits):
        i = rng.randrange(len(sentences))
        sentences[i] = rng.choice(["Actually, the premise is wrong. ", "前提が間違っています。",
                                   sentences[i] + " Check again. ", ""])
    return "".join(sentences)


def make_history(n: int = 200, lang: str = "en", tokens: int = 3000, seed: int = 0) -> History:
    rng = random.Random(f"{lang}-{seed}")
    write = english if lang == "en" else japanese
    history = History()
    base_r = base_a = ""
    for i in range(n):
        if i % 10 == 0:  # a new question family every 10 attempts
            question = f"Question {i // 10}: how many pears are left?" if lang == "en" else \
                f"質問{i // 10}：梨は何個残りますか？"
            base_r, base_a = write(rng, tokens), write(rng, tokens)
            reasoning, response = base_r, base_a
        else:
            reasoning, response = edited(rng, base_r), edited(rng, base_a)
        history.add(Attempt(question=question, mode="reasoning" if i % 10 == 0 else "special",
                            reasoning_generated=base_r, reasoning_sent=reasoning, response=response,
                            model="bench", backend="scripted",
                            settings={"max_new_tokens": 3072, "temperature": 0.0, "seed": i},
                            timings={"ttft_s": 0.1, "total_s": 30.0, "new_tokens": 6000,
                                     "tokens_per_s": 200.0, "calls": 2, "ended_by": "end of text"}))
    return history
