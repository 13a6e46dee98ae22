"""Word-level diffs for the Compare view: what the user changed in the reasoning, and what that did.

Japanese has no spaces between words, so splitting on spaces would make a whole sentence one
"word" and any edit would repaint all of it. Text is cut into tokens instead: each CJK character
(kanji, kana, hangul, full-width forms and punctuation) is a token, Latin words and numbers are
tokens, and whitespace runs are tokens of their own, so the diff keeps the text's spacing exactly.
The output is (text, tag) pairs with tag None, "+" or "-"; ``to_html`` makes them the one HTML
string the Compare view shows.

The alignment is a longest common subsequence of the two token lists, computed by rapidfuzz
(``Indel.opcodes``: bit-parallel LCS in C++, N·M/64 word operations after the common prefix and
suffix are cut off). difflib's SequenceMatcher, used before, is quadratic on English, where " "
and "the" occur thousands of times: two 4,000-word texts took 3.3–5 s on this 2-vCPU machine,
rapidfuzz takes ~12 ms, and ~17 ms for two unrelated texts (docs/benchmarks.md). rapidfuzz is a
maintained, dependency-free wheel for every platform; a longest common subsequence never marks
more tokens changed than difflib did (tests/test_diffing.py checks that on random edits).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Iterable

from rapidfuzz.distance import Indel

from .attempts import Attempt

_CJK = ("\u1100-\u11ff\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf"
        "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0003134f")
_TOKEN = re.compile(rf"\s+|[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")  # words stop at CJK

Segment = tuple[str, str | None]


def tokenize(text: str) -> list[str]:
    """Tokens that join back into ``text`` exactly."""
    return _TOKEN.findall(text)


def _append(out: list[Segment], text: str, tag: str | None) -> None:
    if not text:
        return
    if out and out[-1][1] == tag:
        out[-1] = (out[-1][0] + text, tag)
    else:
        out.append((text, tag))


def _groups(a: list[str], b: list[str], opcodes: Iterable[tuple[str, int, int, int, int]]) -> list:
    """Opcodes over token lists as alternating groups: an equal stretch is its text (a str), every
    run of changes between two equal stretches is [removed, added] texts (what difflib calls a
    replace)."""
    out: list = []
    for op, i1, i2, j1, j2 in opcodes:
        if op == "equal":
            out.append("".join(a[i1:i2]))
        elif out and isinstance(out[-1], list):
            out[-1][0] += "".join(a[i1:i2])
            out[-1][1] += "".join(b[j1:j2])
        else:
            out.append(["".join(a[i1:i2]), "".join(b[j1:j2])])
    return out


def _fold(groups: list) -> list:
    """Equal stretches that sit between two changes and are no longer (in characters) than the
    change on each side become part of those changes: diff-match-patch's semantic cleanup rule.
    Two unrelated English texts share thousands of single spaces and short words ("the", "a")
    scattered between their words; marked one by one, two 3,000-token attempts gave ~7,500 marked
    spans, which Chromium took 1.1-2.3 s to draw (docs/benchmarks.md). Folded, the changed stretch
    reads as whole phrases removed and added. Equal stretches at either end, or longer than a change
    beside them, stay: a typical edit of a few words shows exactly as before.

    One pass with a stack: when a change grows by a fold, the equal stretch before it is checked
    again, so the result is the fixed point (no equal stretch left that the rule would fold)."""
    out: list = []
    for group in groups:
        if isinstance(group, str):
            out.append(group)
            continue
        change = group
        while len(out) >= 2 and isinstance(out[-2], list) and \
                len(out[-1]) <= min(max(map(len, out[-2])), max(map(len, change))):
            equal, before = out.pop(), out.pop()
            change = [before[0] + equal + change[0], before[1] + equal + change[1]]
        out.append(change)
    return out


def _segments(groups: list) -> list[Segment]:
    """Segments from groups: a change shows its deletions, then its insertions."""
    out: list[Segment] = []
    for group in groups:
        if isinstance(group, str):
            _append(out, group, None)
        else:
            _append(out, group[0], "-")
            _append(out, group[1], "+")
    return out


def _aligned(old: str, new: str) -> list:
    a, b = tokenize(old or ""), tokenize(new or "")
    # Tokens as small integers, numbered exactly by a dict: rapidfuzz would otherwise compare
    # strings by their hash, and a collision would show two different words as equal.
    number: dict[str, int] = {}
    ids_a = [number.setdefault(t, len(number)) for t in a]
    ids_b = [number.setdefault(t, len(number)) for t in b]
    opcodes = Indel.opcodes(ids_a, ids_b)
    return _groups(a, b, ((o.tag, o.src_start, o.src_end, o.dest_start, o.dest_end) for o in opcodes))


def align(old: str, new: str) -> list[Segment]:
    """The token alignment as segments, before short equal stretches are folded into changes: every
    token that the longest common subsequence keeps is shown as kept."""
    return _segments(_aligned(old, new))


def diff_texts(old: str, new: str) -> list[Segment]:
    """The new text with deletions interleaved, as the Compare view shows it (``align`` with short
    equal stretches between changes folded into them): joining the None and "+" parts gives
    ``new``, joining the None and "-" parts gives ``old``."""
    return _segments(_fold(_aligned(old, new)))


def diff_texts_difflib(old: str, new: str) -> list[Segment]:
    """The alignment as the Compare view computed it before rapidfuzz (difflib, quadratic on
    English), unfolded: the reference the tests and bench/diff_speed.py hold ``align`` against."""
    a, b = tokenize(old or ""), tokenize(new or "")
    return _segments(_groups(a, b, SequenceMatcher(None, a, b, autojunk=False).get_opcodes()))


_MARKUP = {None: "{}", "+": "<ins>{}</ins>", "-": "<del>{}</del>"}


def to_html(segments: list[Segment]) -> str:
    """The segments as one HTML string: additions in <ins>, deletions in <del>, every text escaped
    (attempts hold what anyone typed or imported). One string, not a component per segment: two
    English ~3,000-token attempts give thousands of segments, which gr.HighlightedText took ~1 s of
    server CPU to postprocess and the page 14 s (p50) to render span by span (docs/benchmarks.md).
    Spacing and line breaks are kept by the page's CSS (white-space: pre-wrap)."""
    return "".join(_MARKUP[tag].format(html.escape(text, quote=False)) for text, tag in segments)


def count_changes(segments: list[Segment]) -> tuple[int, int]:
    """Words added and removed; a CJK character counts as a word, whitespace does not."""
    counts = {"+": 0, "-": 0}
    for text, tag in segments:
        if tag:
            counts[tag] += sum(1 for t in tokenize(text) if not t.isspace())
    return counts["+"], counts["-"]


def _summary(name: str, aligned: list[Segment]) -> str:
    """The counts come from the alignment (``align``): the words that really changed, not the
    equal ones folded into a change for the view."""
    added, removed = count_changes(aligned)
    if not added and not removed:
        changed = any(tag for _, tag in aligned)
        return f"{name}: {'whitespace only' if changed else 'unchanged'}"
    return f"{name}: +{added} \u2212{removed} words"


@dataclass(frozen=True)
class AttemptDiff:
    reasoning: list[Segment]  # what the user changed
    response: list[Segment]  # what changed because of it
    summary: str  # e.g. "reasoning: +12 −3 words; response: +40 −38 words"


def _shown_and_aligned(old: str, new: str) -> tuple[list[Segment], list[Segment]]:
    groups = _aligned(old, new)
    return _segments(_fold(groups)), _segments(groups)


def diff_attempts(old: Attempt, new: Attempt) -> AttemptDiff:
    """Compare the reasoning each response was conditioned on, and the responses themselves."""
    reasoning, reasoning_aligned = _shown_and_aligned(old.reasoning, new.reasoning)
    response, response_aligned = _shown_and_aligned(old.response, new.response)
    return AttemptDiff(reasoning, response, f"{_summary('reasoning', reasoning_aligned)}; "
                                            f"{_summary('response', response_aligned)}")
