"""The guided demo ("Show me") and the examples per model, without Gradio.

The demo runs one example twice in special mode, with reasoning A and then reasoning B, and says
in one sentence what changed: the sentence of the reasoning that differs and the two answers.
The page (ui/guided_ui.py) runs both through the Runner like any Regenerate; this module only
chooses and explains.
"""

from __future__ import annotations

import re

from .prompts import Example, examples
from .settings import EMBEDDED_MODEL

# A sentence ends at . ! ? followed by a space or the end (so "3.5" and "7 - 5" stay whole), at a
# Japanese 。！？, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*|\n+")
ANSWER_CHARS = 120  # an answer quoted in the explanation is cut here, so it stays one sentence


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def changed_sentences(a: str, b: str) -> tuple[str, str] | None:
    """The part of reasoning ``a`` that ``b`` replaced, sentence by sentence: (removed, added),
    either "" when sentences were only added or only removed; None when no sentence differs."""
    sa, sb = sentences(a), sentences(b)
    start = 0
    while start < min(len(sa), len(sb)) and sa[start] == sb[start]:
        start += 1
    end = 0
    while end < min(len(sa), len(sb)) - start and sa[-1 - end] == sb[-1 - end]:
        end += 1
    removed, added = sa[start:len(sa) - end], sb[start:len(sb) - end]
    if not removed and not added:
        return None
    return " ".join(removed), " ".join(added)


def answer_of(response: str) -> str:
    """The response as quoted in one sentence: its last non-empty line, markdown heading marks
    dropped, cut at ANSWER_CHARS."""
    lines = [line.strip().lstrip("#").strip() for line in response.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return "(empty)"
    last = lines[-1]
    return last if len(last) <= ANSWER_CHARS else last[:ANSWER_CHARS - 1].rstrip() + "…"


def explanation(reasoning_a: str, reasoning_b: str, response_a: str, response_b: str) -> str:
    """One sentence (English, then Japanese): what was edited, and what the answer did."""
    change = changed_sentences(reasoning_a, reasoning_b)
    if change is None:
        edit_en, edit_ja = "You left the reasoning as it was", "推論は変えていません"
    elif not change[0]:
        edit_en, edit_ja = f"You added this sentence to the reasoning: “{change[1]}”", \
            f"推論にこの文を加えました: “{change[1]}”"
    elif not change[1]:
        edit_en, edit_ja = f"You removed this sentence of the reasoning: “{change[0]}”", \
            f"推論からこの文を削りました: “{change[0]}”"
    else:
        edit_en = f"You changed this sentence of the reasoning: “{change[0]}” → “{change[1]}”"
        edit_ja = f"推論のこの文を変えました: “{change[0]}” → “{change[1]}”"
    a, b = answer_of(response_a), answer_of(response_b)
    if a == b:
        return f"{edit_en}; the answer stayed “{a}”. / {edit_ja}。回答は “{a}” のままです。"
    return (f"{edit_en}; the answer changed from “{a}” to “{b}”. / "
            f"{edit_ja}。回答が “{a}” から “{b}” に変わりました。")


def is_embedded(model: str) -> bool:
    """The embedded SmolLM2-135M, by setting ("embedded") or by its name."""
    return model == EMBEDDED_MODEL or "smollm2" in model.lower()


def ordered_examples(model: str, items: tuple[Example, ...] | None = None) -> list[Example]:
    """The examples as listed for ``model``: English first for the embedded English-only model,
    the seed's Japanese first otherwise (a fine-tune such as the seed's reads them)."""
    items = examples() if items is None else items
    first = "en" if is_embedded(model) else "ja"
    return sorted(items, key=lambda e: e.lang != first)  # stable: the file's order within a language


def demo_example(items: tuple[Example, ...] | None = None) -> Example:
    """The example "Show me" runs (``demo = true`` in examples.toml; examples() checks there is one)."""
    items = examples() if items is None else items
    return next(e for e in items if e.demo)
