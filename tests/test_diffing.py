"""Diffs for the Compare view: words for Latin text, characters for Japanese, spacing kept."""

import html
import random
import re

import pytest

from bonsai_ui.workbench.attempts import Attempt
from bonsai_ui.workbench.diffing import align, count_changes, diff_attempts, diff_texts, diff_texts_difflib, to_html, tokenize

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
    _readable(old, new, diff_texts(old, new))


def _readable(old, new, segments):
    assert "".join(t for t, tag in segments if tag != "+") == old
    assert "".join(t for t, tag in segments if tag != "-") == new
    assert all(text for text, _ in segments)  # no empty segments for the display
    assert all(a[1] != b[1] for a, b in zip(segments, segments[1:]))  # neighbours merged
    # A change is shown as its deletions, then its insertions, never the other way round.
    assert all((a[1], b[1]) != ("+", "-") for a, b in zip(segments, segments[1:]))


EN = ("Jack has 4 pears. He eats 5 of them. So he has 0 left.\n"
      "The question is contradictory: 5 of 4 cannot be eaten.")
JA = "ジャックは梨を4個持っています。5個食べます。残りは0個です。\n質問は矛盾しています。"
# The table the rapidfuzz alignment must reproduce exactly as difflib (the implementation before) did.
SAME_AS_BEFORE = [
    (EN, EN),  # equal
    ("", EN), (EN, ""),
    (EN, EN.replace("4 pears.", "4 pears and 2 apples.")),  # insertion
    (EN, EN.replace(": 5 of 4 cannot be eaten", "")),  # deletion
    (EN, EN.replace("pears", "apples")),  # replacement, twice
    (EN, "He eats 5 of them. Jack has 4 pears. So he has 0 left.\n"  # moved sentence
         "The question is contradictory: 5 of 4 cannot be eaten."),
    (EN, EN.replace("\n", "\n\n")),  # whitespace only
    (EN, EN.replace(". ", ".  ")),
    ("a\tb\r\nc", "a b\nc"),
    (JA, JA.replace("4個", "四個")),  # CJK by character
    (JA, JA.replace("梨を", "")),
    (JA, "5個食べます。ジャックは梨を4個持っています。残りは0個です。\n質問は矛盾しています。"),
    (JA, JA + "\nAnswer: 0 pears. 答え：0個"),  # mixed scripts
    ("LUNA\u3000は白猫", "LUNA は黒猫"),  # ideographic space against a space
]


MOVED, TABS, IDEOGRAPHIC_SPACE = SAME_AS_BEFORE[6], SAME_AS_BEFORE[9], SAME_AS_BEFORE[14]


@pytest.mark.parametrize("old,new", SAME_AS_BEFORE)
def test_alignment_matches_the_difflib_implementation(old, new):
    segments = align(old, new)
    assert segments == diff_texts_difflib(old, new)
    _readable(old, new, segments)
    # What the view shows is the same, but for three cases of FOLDS: no other case has an equal
    # stretch between two changes that is as short as both.
    if (old, new) not in (MOVED, TABS, IDEOGRAPHIC_SPACE):
        assert diff_texts(old, new) == segments


# The view folds an equal stretch that sits between two changes and is no longer (in characters)
# than each of them into those changes (diff-match-patch's semantic cleanup rule).
FOLDS = [
    # old, new, aligned (the longest common subsequence), shown
    ("the cat sat", "the dog ran",  # unrelated words: the space between them is no landmark
     [("the ", None), ("cat", "-"), ("dog", "+"), (" ", None), ("sat", "-"), ("ran", "+")],
     [("the ", None), ("cat sat", "-"), ("dog ran", "+")]),
    ("Jack has four pears", "Jill eats five books",
     [("Jack", "-"), ("Jill", "+"), (" ", None), ("has", "-"), ("eats", "+"), (" ", None), ("four", "-"),
      ("five", "+"), (" ", None), ("pears", "-"), ("books", "+")],
     [("Jack has four pears", "-"), ("Jill eats five books", "+")]),
    ("cat and dog", "cow and dot",  # " and " is longer than "cat"/"cow": it stays
     [("cat", "-"), ("cow", "+"), (" and ", None), ("dog", "-"), ("dot", "+")],
     [("cat", "-"), ("cow", "+"), (" and ", None), ("dog", "-"), ("dot", "+")]),
    ("cat sat", "dog sat",  # an equal stretch at an end has a change on one side only: it stays
     [("cat", "-"), ("dog", "+"), (" sat", None)], [("cat", "-"), ("dog", "+"), (" sat", None)]),
    # A fold that makes a change longer reopens the equal stretch before it: 乙乙 (2) was longer
    # than 丙/丑 (1); once 丁 (1) folds, 丙丁戊戊/丑丁寅寅 (4) swallow 乙乙 as well.
    ("甲甲乙乙丙丁戊戊", "子子乙乙丑丁寅寅",
     [("甲甲", "-"), ("子子", "+"), ("乙乙", None), ("丙", "-"), ("丑", "+"), ("丁", None), ("戊戊", "-"),
      ("寅寅", "+")],
     [("甲甲乙乙丙丁戊戊", "-"), ("子子乙乙丑丁寅寅", "+")]),
    ("a\n\nb c", "x\n\ny z",  # whitespace is kept exactly inside a fold
     [("a", "-"), ("x", "+"), ("\n\n", None), ("b", "-"), ("y", "+"), (" ", None), ("c", "-"), ("z", "+")],
     [("a", "-"), ("x", "+"), ("\n\n", None), ("b c", "-"), ("y z", "+")]),
    (*TABS,  # "b" is no longer than the changes around it
     [("a", None), ("\t", "-"), (" ", "+"), ("b", None), ("\r\n", "-"), ("\n", "+"), ("c", None)],
     [("a", None), ("\tb\r\n", "-"), (" b\n", "+"), ("c", None)]),
    (*IDEOGRAPHIC_SPACE,  # by character: は between two changed characters
     [("LUNA", None), ("\u3000", "-"), (" ", "+"), ("は", None), ("白", "-"), ("黒", "+"), ("猫", None)],
     [("LUNA", None), ("\u3000は白", "-"), (" は黒", "+"), ("猫", None)]),
    ("白猫と黒犬", "赤猫と青犬",  # 猫と is longer than one changed character: it stays
     [("白", "-"), ("赤", "+"), ("猫と", None), ("黒", "-"), ("青", "+"), ("犬", None)],
     [("白", "-"), ("赤", "+"), ("猫と", None), ("黒", "-"), ("青", "+"), ("犬", None)]),
    (*MOVED,  # a moved sentence: the sentence between is as long as the moved one
     [("Jack has 4 pears. ", "-"), ("He eats 5 of them", None), (". Jack has 4 pears", "+"),
      (". So he has 0 left.\nThe question is contradictory: 5 of 4 cannot be eaten.", None)],
     [("Jack has 4 pears. He eats 5 of them", "-"), ("He eats 5 of them. Jack has 4 pears", "+"),
      (". So he has 0 left.\nThe question is contradictory: 5 of 4 cannot be eaten.", None)]),
]


@pytest.mark.parametrize("old,new,aligned,shown", FOLDS)
def test_short_equal_stretches_between_changes_fold_into_them(old, new, aligned, shown):
    assert align(old, new) == aligned
    assert diff_texts(old, new) == shown
    _readable(old, new, shown)
    assert _foldable(shown) == []


def _foldable(segments) -> list[str]:
    """The equal stretches that the fold rule would still fold (none, once folded)."""
    groups, change = [], None
    for text, tag in segments:
        if tag is None:
            groups.append(text)
            change = None
        elif change is None:
            change = {"-": "", "+": ""}
            groups.append(change)
        if tag:
            change[tag] += text
    return [g for before, g, after in zip(groups, groups[1:], groups[2:])
            if isinstance(g, str) and len(g) <= min(max(map(len, before.values())), max(map(len, after.values())))]


# Where an insertion or deletion could sit at two places of the same text, difflib and the longest
# common subsequence may pick different ones; the same tokens change, only the seam moves.
SLID = [
    (EN, EN.replace("He eats", "He really eats"),  # difflib: "He| really| eats"
     [("Jack has 4 pears. He ", None), ("really ", "+"), ("eats 5 of them. So he has 0 left.\n"
                                                          "The question is contradictory: 5 of 4 cannot be eaten.", None)]),
    (EN, EN.replace("He eats 5 of them. ", ""),  # difflib: "pears|. He eats 5 of them|. So"
     [("Jack has 4 pears. ", None), ("He eats 5 of them. ", "-"),
      ("So he has 0 left.\nThe question is contradictory: 5 of 4 cannot be eaten.", None)]),
    (EN, EN.replace(" So he has 0 left.", ""),  # difflib: "them|. So he has 0 left|."
     [("Jack has 4 pears. He eats 5 of them.", None), (" So he has 0 left.", "-"),
      ("\nThe question is contradictory: 5 of 4 cannot be eaten.", None)]),
    (JA, JA.replace("5個食べます。", ""),  # difflib: "持ってい|ます。5個食べ|ます。"
     [("ジャックは梨を4個持っています。", None), ("5個食べます。", "-"), ("残りは0個です。\n質問は矛盾しています。", None)]),
]


@pytest.mark.parametrize("old,new,expected", SLID)
def test_a_seam_may_move_but_the_same_tokens_change(old, new, expected):
    segments = align(old, new)
    assert segments == expected == diff_texts(old, new)
    before = diff_texts_difflib(old, new)
    assert segments != before
    for tag in "+-":
        assert sorted(tokenize("".join(t for t, g in segments if g == tag))) == \
            sorted(tokenize("".join(t for t, g in before if g == tag)))


def _changed(segments) -> int:
    return sum(len(tokenize(text)) for text, tag in segments if tag)


PIECES = {"en": ["the", "cat", "sat", "on", "mat", "Jack", "4", "pears", ".", ",", " ", " ", " ", "\n",
                 "  ", "\t", "e-mail", "3.5", "?"],
          "ja": list("猫はのをに白黒梨個、。「」？") + ["\n", "\u3000", " "],
          "mixed": ["LUNA", "は", "白", "cat", " ", "。", ".", "\n", "猫", "4", "ｶﾅ", "😀"]}


def _edit(rng: random.Random, tokens: list[str], pieces: list[str]) -> list[str]:
    """A few random insertions, deletions, replacements and moves of token runs."""
    tokens = list(tokens)
    for _ in range(rng.randint(0, 6)):
        i = rng.randint(0, len(tokens))
        j = min(len(tokens), i + rng.randint(0, 5))
        kind = rng.choice(["insert", "delete", "replace", "move"])
        run = [rng.choice(pieces) for _ in range(rng.randint(1, 5))]
        if kind == "insert":
            tokens[i:i] = run
        elif kind == "delete":
            del tokens[i:j]
        elif kind == "replace":
            tokens[i:j] = run
        else:
            moved = tokens[i:j]
            del tokens[i:j]
            k = rng.randint(0, len(tokens))
            tokens[k:k] = moved
    return tokens


@pytest.mark.parametrize("script", sorted(PIECES))
def test_random_edits_read_back_and_change_no_more_than_difflib(script):
    """Property-style: 300 random texts and edits per script, seeded so a failure repeats. The view
    (folded) and the alignment both give back both texts; the alignment marks no more tokens than
    difflib did, and the view leaves no equal stretch that the fold rule would take."""
    rng = random.Random(f"diff-{script}")
    pieces = PIECES[script]
    for _ in range(300):
        old = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 60)))
        new = "".join(_edit(rng, list(old), pieces) if rng.random() < 0.3 else
                      _edit(rng, tokenize(old), pieces))
        segments, aligned = diff_texts(old, new), align(old, new)
        for each in (segments, aligned):
            _readable(old, new, each)
            assert _from_html(to_html(each)) == (old, new)
        assert _foldable(segments) == [], (old, new)
        assert _changed(segments) >= _changed(aligned), (old, new)  # a fold only adds to changes
        # A longest common subsequence keeps at least as many tokens as difflib's blocks did.
        assert _changed(aligned) <= _changed(diff_texts_difflib(old, new)), (old, new)
        # The summary counts by running sums what count_changes counts on the alignment's text.
        added, removed = count_changes(aligned)
        summary = diff_attempts(Attempt("", reasoning_sent=old), Attempt("", reasoning_sent=new)).summary
        assert summary.startswith(f"reasoning: +{added} \u2212{removed} words;" if added or removed else
                                  "reasoning: whitespace only;" if any(t for _, t in aligned) else
                                  "reasoning: unchanged;"), (old, new, summary)


HTML = [
    # segments, the HTML the Compare view gets
    ([("a < b & c", None)], "a &lt; b &amp; c"),
    ([("x", None), ("<script>alert(1)</script>", "+"), ("</del>", "-")],
     "x<ins>&lt;script&gt;alert(1)&lt;/script&gt;</ins><del>&lt;/del&gt;</del>"),
    ([('<img src=x onerror="f()">', "-")], '<del>&lt;img src=x onerror="f()"&gt;</del>'),  # no tag, no attribute
    ([("${value} {{x}} `t`", None)], "${value} {{x}} `t`"),  # not markup: shown as typed
    ([("  two\n\nlines\t", "+")], "<ins>  two\n\nlines\t</ins>"),  # whitespace as it is (CSS pre-wrap)
    ([("猫", "-"), ("犬", "+")], "<del>猫</del><ins>犬</ins>"),
    ([], ""),
]


@pytest.mark.parametrize("segments,expected", HTML)
def test_to_html_escapes_the_text_and_marks_the_changes(segments, expected):
    assert to_html(segments) == expected


def _from_html(markup: str) -> tuple[str, str]:
    """Both texts read back from the HTML: without the <ins>, and without the <del> parts."""
    def without(tag: str) -> str:
        kept = re.sub(rf"<{tag}>.*?</{tag}>", "", markup, flags=re.S)
        return html.unescape(re.sub(r"</?(ins|del)>", "", kept))
    return without("ins"), without("del")


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
    # Shown folded ("cat a sat" removed, "dog a ran" added), counted as aligned: "a" did not change.
    (("cat a sat", "x"), ("dog a ran", "x"), "reasoning: +2 \u22122 words; response: unchanged"),
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
