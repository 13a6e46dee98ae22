"""The guided demo ("Show me") and the examples per model, without Gradio.

The demo runs one example twice in special mode, with reasoning A and then reasoning B, and says
in one sentence what changed: the sentence of the reasoning that differs and the two answers.
The page (ui/guided_ui.py) runs both through the Runner like any Regenerate; this module only
chooses and explains.
"""

from __future__ import annotations

import re

from ..core.answers import final_answer
from ..core.prompts import Example, examples
from ..core.settings import EMBEDDED_MODEL

# A sentence ends at . ! ? followed by a space or the end (so "3.5" and "7 - 5" stay whole), at a
# Japanese 。！？, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*|\n+")
ANSWER_CHARS = 80  # a first line quoted as the answer is cut here: a phrase, never a paragraph


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
    """The final answer as quoted in one sentence (answers.final_answer: the last number, else the
    first line), cut at ANSWER_CHARS; "" when the response is empty."""
    answer = final_answer(response).lstrip("#").strip()  # a markdown heading's marks are no answer
    return answer if len(answer) <= ANSWER_CHARS else answer[:ANSWER_CHARS - 1].rstrip() + "…"


def _answers(a: str, b: str) -> tuple[str, str]:
    """What the two final answers did, in English and Japanese."""
    if not a and not b:
        return ("no answer can be read: both responses are empty",
                "どちらの回答も空なので、答えを読み取れません")
    if not a or not b:
        which_en, which_ja = ("first", "最初") if not a else ("second", "二番目")
        return (f"no answer can be read from the {which_en} response: it is empty",
                f"{which_ja}の回答は空なので、答えを読み取れません")
    if a == b:
        return f"the final answer stayed “{a}”", f"最終的な答えは “{a}” のままです"
    return (f"the final answer changed from “{a}” to “{b}”",
            f"最終的な答えが “{a}” から “{b}” に変わりました")


def explanation(reasoning_a: str, reasoning_b: str, response_a: str, response_b: str) -> str:
    """One sentence (English, then Japanese): what was edited, and what the final answer did."""
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
    answer_en, answer_ja = _answers(answer_of(response_a), answer_of(response_b))
    return f"{edit_en}; {answer_en}. / {edit_ja}。{answer_ja}。"


def context_line(example: Example) -> str:
    """What loading ``example`` set besides its texts, in one line (English / Japanese)."""
    settings = example.settings
    sampling = ("greedy" if settings.greedy else
                f"temperature {settings.temperature:g}, top-p {settings.top_p:g}, top-k {settings.top_k}")
    return (f"Loaded with the {example.prompt_format} prompt format, {sampling}, at most "
            f"{settings.max_new_tokens} new tokens a phase, seed {settings.seed}: the context its "
            f"answers were checked in (Generation settings). / {example.prompt_format} 形式・"
            f"最大 {settings.max_new_tokens} トークン・シード {settings.seed} で読み込みました。")


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
