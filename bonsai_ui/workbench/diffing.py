"""Word-level diffs for the Compare view: what the user changed in the reasoning, and what that did.

Japanese has no spaces between words, so splitting on spaces would make a whole sentence one
"word" and any edit would repaint all of it. Text is cut into tokens instead: each CJK character
(kanji, kana, hangul, full-width forms and punctuation) is a token, Latin words and numbers are
tokens, and whitespace runs are tokens of their own, so the diff keeps the text's spacing exactly.
The output is (text, tag) pairs with tag None, "+" or "-"; ``to_html`` makes them the one HTML
string the Compare view shows.

The alignment is a longest common subsequence of the two token lists, computed by rapidfuzz
(``Indel.editops``: bit-parallel LCS in C++, N·M/64 word operations after the common prefix and
suffix are cut off). difflib's SequenceMatcher, used before, is quadratic on English, where " "
and "the" occur thousands of times: two 4,000-word texts took 2.7–5 s on this 2-vCPU machine, the
view takes 5.5 ms of CPU with a few sentences edited and 14 ms for two unrelated texts
(bench/diff_speed.py, docs/benchmarks.md). rapidfuzz is a maintained, dependency-free wheel for
every platform; a longest common subsequence never marks more tokens changed than difflib did
(tests/test_diffing.py checks that on random edits). Everything after the alignment works on token
indexes and character offsets into the two texts (``_Cut``), so the changes are cut out of the
texts once, at the end.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from itertools import accumulate
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


@dataclass(frozen=True)
class _Cut:
    """A text cut into tokens, with running sums: ``at[i]`` is where token i starts (characters),
    ``spaces[i]`` how many of the tokens before it are whitespace. A stretch of tokens is then a
    slice of the text, and its word count a subtraction: the diff below never joins tokens back
    into strings one by one (that, and folding by string concatenation, took ~16 of the ~40 ms a
    pair of unrelated 3,000-token English attempts cost, this 2-vCPU machine)."""

    text: str
    tokens: list[str]
    at: list[int]
    spaces: list[int]  # spaces[i]: how many of the tokens before token i are whitespace

    def span(self, i: int, j: int) -> str:
        return self.text[self.at[i]:self.at[j]]

    def words(self, i: int, j: int) -> int:
        """Tokens i:j that are not whitespace: what ``count_changes`` counts."""
        return j - i - (self.spaces[j] - self.spaces[i])


def _cut_uncached(text: str) -> _Cut:
    tokens = tokenize(text)
    return _Cut(text, tokens, list(accumulate(map(len, tokens), initial=0)),
                list(accumulate(map(str.isspace, tokens), initial=0)))


# An attempt's texts never change, and a Compare pick keeps one side (B, the newest): a cut takes
# ~115 bytes a token, ~0.5 MB for a 3,000-token text, so 16 hold a few pairs' worth. A text longer
# than CACHED_CHARS (an imported attempt may hold megabytes) is cut afresh each time instead.
CACHED_CHARS = 200_000
_cut_cached = lru_cache(maxsize=16)(_cut_uncached)


def _cut(text: str) -> _Cut:
    return _cut_cached(text) if len(text) <= CACHED_CHARS else _cut_uncached(text)


def forget_cuts() -> None:
    """Empty the cache of cuts (benchmarks: a first pick of a pair cuts both texts)."""
    _cut_cached.cache_clear()


# Groups over two _Cuts, by token index: ("=", i1, i2, j1, j2) an equal stretch, ("~", i1, i2, j1,
# j2) everything between two equal stretches (tokens i1:i2 removed, j1:j2 added: what difflib
# calls a replace, or a run of its opcodes).
Group = tuple[str, int, int, int, int]


def _groups(blocks: Iterable[tuple[int, int, int]], n_a: int, n_b: int) -> list[Group]:
    """Groups from the alignment's matching blocks (``(i, j, size)``: tokens i:i+size of A equal
    j:j+size of B, in order, as difflib's get_matching_blocks gives them): an equal stretch per
    block, a change for every gap between two."""
    out: list[Group] = []
    i = j = 0
    for bi, bj, size in blocks:
        if bi > i or bj > j:
            out.append(("~", i, bi, j, bj))
        if size:
            if out and out[-1][0] == "=" and (out[-1][2], out[-1][4]) == (bi, bj):  # adjacent: one stretch
                out[-1] = ("=", out[-1][1], bi + size, out[-1][3], bj + size)
            else:
                out.append(("=", bi, bi + size, bj, bj + size))
        i, j = bi + size, bj + size
    if i < n_a or j < n_b:
        out.append(("~", i, n_a, j, n_b))
    return out


def _fold(a: _Cut, b: _Cut, groups: list[Group]) -> list[tuple]:
    """Equal stretches that sit between two changes and are no longer (in characters) than the
    change on each side become part of those changes: diff-match-patch's semantic cleanup rule.
    Two unrelated English texts share thousands of single spaces and short words ("the", "a")
    scattered between their words; marked one by one, two 3,000-token attempts gave ~7,500 marked
    spans, which Chromium took 1.1-2.3 s to draw. Folded, the changed stretch
    reads as whole phrases removed and added. Equal stretches at either end, or longer than a change
    beside them, stay: a typical edit of a few words shows exactly as before.

    One pass with a stack: when a change grows by a fold, the equal stretch before it is checked
    again, so the result is the fixed point (no equal stretch left that the rule would fold). A
    fold joins three neighbouring stretches of both texts, so the change it makes is the span from
    the first one's start to the last one's end."""
    at_a, at_b = a.at, b.at
    out: list = []
    for group in groups:
        if group[0] == "=":
            out.append(group)
            continue
        _, i1, i2, j1, j2 = group
        size = max(at_a[i2] - at_a[i1], at_b[j2] - at_b[j1])  # the longer of removed and added
        while len(out) >= 2 and out[-2][0] == "~" and at_a[out[-1][2]] - at_a[out[-1][1]] <= min(out[-2][5], size):
            before = out[-2]
            del out[-2:]
            i1, j1 = before[1], before[3]
            size = max(at_a[i2] - at_a[i1], at_b[j2] - at_b[j1])
        out.append(("~", i1, i2, j1, j2, size))  # its size kept for the next one's test
    return out  # groups, a change's with its size as a sixth item


def _segments(a: _Cut, b: _Cut, groups: list[Group]) -> list[Segment]:
    """Segments from groups: a change shows its deletions, then its insertions."""
    out: list[Segment] = []
    for tag, i1, i2, j1, j2, *_ in groups:
        if tag == "=":
            _append(out, a.span(i1, i2), None)
        else:
            _append(out, a.span(i1, i2), "-")
            _append(out, b.span(j1, j2), "+")
    return out


def _aligned(old: str, new: str) -> tuple[_Cut, _Cut, list[Group]]:
    a, b = _cut(old or ""), _cut(new or "")
    # Tokens as small integers, numbered exactly by a dict: rapidfuzz would otherwise compare
    # strings by their hash, and a collision would show two different words as equal.
    number = {t: i for i, t in enumerate(dict.fromkeys(a.tokens + b.tokens))}
    ids_a, ids_b = list(map(number.__getitem__, a.tokens)), list(map(number.__getitem__, b.tokens))
    blocks = Indel.editops(ids_a, ids_b).as_matching_blocks()
    return a, b, _groups(blocks, len(ids_a), len(ids_b))


def align(old: str, new: str) -> list[Segment]:
    """The token alignment as segments, before short equal stretches are folded into changes: every
    token that the longest common subsequence keeps is shown as kept."""
    return _segments(*_aligned(old, new))


def diff_texts(old: str, new: str) -> list[Segment]:
    """The new text with deletions interleaved, as the Compare view shows it (``align`` with short
    equal stretches between changes folded into them): joining the None and "+" parts gives
    ``new``, joining the None and "-" parts gives ``old``."""
    a, b, groups = _aligned(old, new)
    return _segments(a, b, _fold(a, b, groups))


def diff_texts_difflib(old: str, new: str) -> list[Segment]:
    """The alignment as the Compare view computed it before rapidfuzz (difflib, quadratic on
    English), unfolded: the reference the tests and bench/diff_speed.py hold ``align`` against."""
    a, b = _cut(old or ""), _cut(new or "")
    blocks = SequenceMatcher(None, a.tokens, b.tokens, autojunk=False).get_matching_blocks()
    return _segments(a, b, _groups(blocks, len(a.tokens), len(b.tokens)))


_MARKUP = {None: "{}", "+": "<ins>{}</ins>", "-": "<del>{}</del>"}


def to_html(segments: list[Segment]) -> str:
    """The segments as one HTML string: additions in <ins>, deletions in <del>, every text escaped
    (attempts hold what anyone typed or imported). One string, not a component per segment: two
    English ~3,000-token attempts give thousands of segments, which gr.HighlightedText took ~1 s of
    server CPU to postprocess and the page 14 s (p50) to render span by span.
    Spacing and line breaks are kept by the page's CSS (white-space: pre-wrap)."""
    return "".join(_MARKUP[tag].format(html.escape(text, quote=False)) for text, tag in segments)


def count_changes(segments: list[Segment]) -> tuple[int, int]:
    """Words added and removed; a CJK character counts as a word, whitespace does not."""
    counts = {"+": 0, "-": 0}
    for text, tag in segments:
        if tag:
            counts[tag] += sum(1 for t in tokenize(text) if not t.isspace())
    return counts["+"], counts["-"]


def _summary(name: str, a: _Cut, b: _Cut, aligned: list[Group]) -> str:
    """The counts come from the alignment (``align``): the words that really changed, not the
    equal ones folded into a change for the view; as ``count_changes`` counts them on its
    segments (a stretch of tokens cut again gives the same tokens), by the running sums."""
    changes = [g for g in aligned if g[0] == "~"]
    added = sum(b.words(j1, j2) for _, _, _, j1, j2 in changes)
    removed = sum(a.words(i1, i2) for _, i1, i2, _, _ in changes)
    if not added and not removed:
        return f"{name}: {'whitespace only' if changes else 'unchanged'}"
    return f"{name}: +{added} \u2212{removed} words"


@dataclass(frozen=True)
class AttemptDiff:
    reasoning: list[Segment]  # what the user changed
    response: list[Segment]  # what changed because of it
    summary: str  # e.g. "reasoning: +12 −3 words; response: +40 −38 words"


def _shown_and_summed(name: str, old: str, new: str) -> tuple[list[Segment], str]:
    a, b, groups = _aligned(old, new)
    return _segments(a, b, _fold(a, b, groups)), _summary(name, a, b, groups)


def diff_attempts(old: Attempt, new: Attempt) -> AttemptDiff:
    """Compare the reasoning each response was conditioned on, and the responses themselves."""
    reasoning, reasoning_summary = _shown_and_summed("reasoning", old.reasoning, new.reasoning)
    response, response_summary = _shown_and_summed("response", old.response, new.response)
    return AttemptDiff(reasoning, response, f"{reasoning_summary}; {response_summary}")
