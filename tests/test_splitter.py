"""The streamed-text logic, table-driven: split reasoning/response, cut at stop strings."""

import pytest

from bonsai_ui.core.prompts import load_format
from bonsai_ui.core.splitter import Split, StopFilter, Until, split_reasoning

ALPACA = "### Response:"
THINK = "</think>"

SPLITS = [
    # text so far, marker, start, final, expected
    ("first I check", ALPACA, "", False, Split("first I check", None)),
    ("first I check\n\n### Resp", ALPACA, "", False, Split("first I check", None)),  # half marker held
    ("first I check\n\n#", ALPACA, "", False, Split("first I check", None)),
    ("first I check\n\n### Resp", ALPACA, "", True, Split("first I check\n\n### Resp", None)),  # ended: shown
    ("r\n\n### Response:", ALPACA, "", False, Split("r", "")),  # marker at the very end
    ("r\n\n### Response:\nThe answer", ALPACA, "", False, Split("r", "The answer")),
    ("r ### Response: a ### Response: b", ALPACA, "", False, Split("r", "a ### Response: b")),  # first wins
    ("", ALPACA, "", False, Split("", None)),
    ("猫の色を確認する。\n### Response:\nLUNAは黒猫です。", ALPACA, "", False, Split("猫の色を確認する。", "LUNAは黒猫です。")),
    ("色を確認###", ALPACA, "", False, Split("色を確認", None)),
    ("<think>\nplan</think>\n\nanswer", THINK, "<think>", False, Split("plan", "answer")),
    ("plan</think>answer", THINK, "<think>", False, Split("plan", "answer")),  # prompt already opened it
    ("<thi", THINK, "<think>", False, Split("", None)),  # half opening marker held
    ("<thi", THINK, "<think>", True, Split("<thi", None)),
    ("plan</thi", THINK, "<think>", False, Split("plan", None)),
    ("  <think>考える</think>答え", THINK, "<think>", False, Split("考える", "答え")),
]


@pytest.mark.parametrize("text,marker,start,final,expected", SPLITS)
def test_split_reasoning(text, marker, start, final, expected):
    assert split_reasoning(text, marker, start, final=final) == expected


@pytest.mark.parametrize("marker,start,text", [
    (ALPACA, "", "Check each premise.\n\n### Response:\nJack cannot eat 5 of 4 pears."),
    (THINK, "<think>", "<think>\n各前提を確認する。\n</think>\n\n矛盾しています。"),
])
def test_no_half_marker_ever_flashes_whatever_the_piece_boundaries(marker, start, text):
    """Feed the text cut at every position, one and two characters at a time."""
    for size in (1, 2, 3):
        shown = []
        for end in range(0, len(text) + 1, size):
            split = split_reasoning(text[:end], marker, start)
            shown.append(split)
            for fragment in (marker[:k] for k in range(2, len(marker))):
                assert not split.reasoning.endswith(fragment)
            assert start == "" or not start[:2] in split.reasoning
        assert shown[-1].response is not None or len(text) % size
        reasonings = [s.reasoning for s in shown]
        assert all(b.startswith(a) for a, b in zip(reasonings, reasonings[1:])), "reasoning only grows"


STOPS = ["### Instruction:", "### Input:"]
FILTERS = [
    # pieces, expected visible text, stopped
    (["Hello", " world"], "Hello world", False),
    (["answer\n\n###", " Instruction:", " more"], "answer\n\n", True),
    (["answer ##", "# In", "put: x"], "answer ", True),
    (["a #", "# b"], "a ## b", False),  # a held '#' that was not a stop string is released
    (["tail ###"], "tail ###", False),  # held at the end, released by flush
    (["x### Instruction:y"], "x", True),
    (["日本語", "### Inst", "ruction:"], "日本語", True),
]


@pytest.mark.parametrize("pieces,expected,stopped", FILTERS)
def test_stop_filter(pieces, expected, stopped):
    f = StopFilter(STOPS)
    visible = []
    for piece in pieces:
        out = f.feed(piece)
        visible.append(out)
        assert "### I" not in "".join(visible)
    visible.append(f.flush())
    assert "".join(visible) == expected
    assert f.stopped is stopped


def test_stop_filter_never_shows_a_stop_prefix_mid_stream():
    f = StopFilter(STOPS)
    assert f.feed("ok ### Ins") == "ok "
    assert f.feed("ide") == "### Inside"
    assert f.feed("### Input: gone") == ""
    assert f.stopped and f.flush() == ""


def test_stop_filter_without_stops_passes_everything():
    f = StopFilter([])
    assert f.feed("###") == "###" and f.flush() == ""


# -- the Alpaca response ends at the next section header (the embedded model writes many) --------

RESPONSE_STOPS = [  # (stops, pieces, shown)
    (load_format("alpaca").reasoning_stops,
     ["Think.\n### Note: x\n### Resp", "onse:\nFour.\n", "### Question: more"],
     "Think.\n### Note: x\n### Response:\nFour."),
    (load_format("alpaca").response_stops, ["Four pears.\n\n#", "## Question: how?"], "Four pears.\n"),
    (load_format("think").reasoning_stops, ["a</think>\n### Heading\ntext"], "a</think>\n### Heading\ntext"),
    ((("M", "X"),), ["aXbM", "cX"], "aXbMc"),
    # A response that opens with a header is not cut to nothing: the next header ends it.
    (load_format("alpaca").response_stops, ["\n### Question: x\nFour.", "\n### Next"], "\n### Question: x\nFour."),
    (load_format("alpaca").reasoning_stops, ["r\n### Response:\n", "### Q\nA.\n### Z"], "r\n### Response:\n### Q\nA."),
]


@pytest.mark.parametrize("stops,pieces,shown", RESPONSE_STOPS)
def test_response_stops_count_only_after_the_response_marker(stops, pieces, shown):
    f = StopFilter(stops)
    text = "".join(f.feed(p) for p in pieces) + f.flush()
    assert text == shown


# -- a stray response header ends the reasoning, never the response -----------------------------

REASONING_STOPS = [  # (stops, pieces, shown)
    (load_format("alpaca").reasoning_stops, ["I count.\n### Out", "put: 7 fruits"], "I count.\n"),
    (load_format("alpaca").reasoning_stops, ["I count.\n### Answer:\n7"], "I count.\n"),
    (load_format("alpaca").reasoning_stops,  # after the marker the same header is the response's
     ["I count.\n### Response:\n### Answer:", "\n7"], "I count.\n### Response:\n### Answer:\n7"),
    (load_format("alpaca").reasoning_stops, ["I count.\n### Response:\n### Output: 7"],
     "I count.\n### Response:\n### Output: 7"),
    (load_format("alpaca").response_stops, ["### Answer:\nThe plan: Nikko."], "### Answer:\nThe plan: Nikko."),
    ((Until("M", "X"),), ["aMX", "X"], "aMXX"),
    ((Until("M", "X"),), ["aX", "M"], "a"),
]


@pytest.mark.parametrize("stops,pieces,shown", REASONING_STOPS)
def test_reasoning_stops_count_only_before_the_response_marker(stops, pieces, shown):
    f = StopFilter(stops)
    assert "".join(f.feed(p) for p in pieces) + f.flush() == shown
