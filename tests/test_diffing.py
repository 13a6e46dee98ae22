"""Diffs for the Compare view: words for Latin text, characters for Japanese, spacing kept."""

import pytest

from bonsai_ui.attempts import Attempt
from bonsai_ui.diffing import count_changes, diff_attempts, diff_texts, tokenize

DIFFS = [
    # old, new, expected (text, tag) pairs
    ("the cat sat on the mat", "the dog sat on a mat",
     [("the ", None), ("cat", "-"), ("dog", "+"), (" sat on ", None), ("the", "-"), ("a", "+"),
      (" mat", None)]),
    ("Jack has 4 pears.", "Jack has 4 pears and 2 apples.",
     [("Jack has 4 pears", None), (" and 2 apples", "+"), (".", None)]),
    ("LUNAは白猫です。", "LUNAは黒猫です。",
     [("LUNAは", None), ("白", "-"), ("黒", "+"), ("猫です。", None)]),
    ("まず、各猫の色を確認します。", "まず、各猫の色と名前を確認します。",
     [("まず、各猫の色", None), ("と名前", "+"), ("を確認します。", None)]),
    ("Check 猫 colours: 白", "Check 猫 colors: 黒",  # mixed scripts
     [("Check 猫 ", None), ("colours", "-"), ("colors", "+"), (": ", None), ("白", "-"), ("黒", "+")]),
    ("identical\n  text 同じ", "identical\n  text 同じ", [("identical\n  text 同じ", None)]),
    ("", "", []),
    ("", "new text", [("new text", "+")]),
    ("old text", "", [("old text", "-")]),
    ("a  b", "a\nb", [("a", None), ("  ", "-"), ("\n", "+"), ("b", None)]),
]


@pytest.mark.parametrize("old,new,expected", DIFFS)
def test_diff_texts(old, new, expected):
    assert diff_texts(old, new) == expected


@pytest.mark.parametrize("old,new,_", DIFFS)
def test_both_texts_can_be_read_back_from_the_diff(old, new, _):
    segments = diff_texts(old, new)
    assert "".join(t for t, tag in segments if tag != "+") == old
    assert "".join(t for t, tag in segments if tag != "-") == new
    assert all(text for text, _ in segments)  # no empty segments for the display
    assert all(a[1] != b[1] for a, b in zip(segments, segments[1:]))  # neighbours merged


TOKENS = [
    ("LUNAは白猫", ["LUNA", "は", "白", "猫"]),  # a Latin word stops where Japanese starts
    ("ＬＵＮＡ「猫」？", ["Ｌ", "Ｕ", "Ｎ", "Ａ", "「", "猫", "」", "？"]),  # full-width forms per character
    ("3.14 e-mail", ["3", ".", "14", " ", "e", "-", "mail"]),
    ("café  naïve\u3000한국", ["café", "  ", "naïve", "\u3000", "한", "국"]),
]


@pytest.mark.parametrize("text,tokens", TOKENS)
def test_tokenize(text, tokens):
    assert tokenize(text) == tokens and "".join(tokens) == text


COUNTS = [
    ("the cat sat", "the dog sat", (1, 1)),
    ("白猫です", "黒い猫です", (2, 1)),  # CJK characters count one each
    ("a b", "a  b", (0, 0)),  # whitespace is not a word
    ("", "one two three", (3, 0)),
]


@pytest.mark.parametrize("old,new,counts", COUNTS)
def test_count_changes(old, new, counts):
    assert count_changes(diff_texts(old, new)) == counts


SUMMARIES = [
    # old (reasoning, response), new (reasoning, response), summary
    (("check colours", "LUNA is white"), ("check the colours first", "LUNA is black"),
     "reasoning: +2 \u22120 words; response: +1 \u22121 words"),
    (("同じ", "同じ"), ("同じ", "同じ"), "reasoning: unchanged; response: unchanged"),
    (("a b", "x"), ("a\nb", "x"), "reasoning: whitespace only; response: unchanged"),
    (("", "vanilla answer"), ("new reasoning", "answer"),
     "reasoning: +2 \u22120 words; response: +0 \u22121 words"),
]


@pytest.mark.parametrize("old,new,summary", SUMMARIES)
def test_diff_attempts_summary(old, new, summary):
    a = Attempt("Q", reasoning_generated=old[0], reasoning_sent=old[0], response=old[1])
    b = Attempt("Q", reasoning_generated=new[0], reasoning_sent=new[0], response=new[1])
    assert diff_attempts(a, b).summary == summary


def test_diff_attempts_compares_the_reasoning_that_was_sent():
    before = Attempt("Q", reasoning_generated="LUNAは白猫", reasoning_sent="LUNAは白猫", response="白")
    after = Attempt("Q", reasoning_generated="LUNAは白猫", reasoning_sent="LUNAは黒猫", response="黒")
    diff = diff_attempts(before, after)
    assert diff.reasoning == [("LUNAは", None), ("白", "-"), ("黒", "+"), ("猫", None)]
    assert diff.response == [("白", "-"), ("黒", "+")]
