"""The guided demo's pure parts (sentences, the changed sentence, the explanation, the examples per
model) and the ready reasonings, run on the real embedded model."""

from __future__ import annotations

import pytest

from bonsai_ui.editor import guided
from bonsai_ui.core.prompts import Example, Variant, _example, examples
from bonsai_ui.editor.runs import Runner
from bonsai_ui.core.settings import GENERATION_BOUNDS

A = "3 + 4 = 7 fruits. Jill's books are not fruits. Jack eats 5 pears, so 7 - 5 = 2 are left."
B = "3 + 4 = 7 fruits. Jill's books are not fruits. Jack has only 4 pears, so there are still 7."


@pytest.mark.parametrize("text, expected", [
    ("", []),
    ("One. Two! Three?", ["One.", "Two!", "Three?"]),
    ("It costs 3.5 yen. Then 7 - 5 = 2.", ["It costs 3.5 yen.", "Then 7 - 5 = 2."]),
    ("Line one\nLine two", ["Line one", "Line two"]),
    ("まず数えます。次に引きます。", ["まず数えます。", "次に引きます。"]),
    ("  spaced.   \n\n  out.  ", ["spaced.", "out."]),
])
def test_sentences(text, expected):
    assert guided.sentences(text) == expected


@pytest.mark.parametrize("a, b, expected", [
    (A, B, ("Jack eats 5 pears, so 7 - 5 = 2 are left.", "Jack has only 4 pears, so there are still 7.")),
    ("One. Two. Three.", "One. Deux. Three.", ("Two.", "Deux.")),
    ("One. Two.", "One. Two. Three.", ("", "Three.")),
    ("One. Two. Three.", "One. Three.", ("Two.", "")),
    ("One. Two.", "One.  Two.", None),  # whitespace between sentences is not a change
    ("One. Two.", "One. Two.", None),
    ("A. B. C.", "X. B. Y.", ("A. B. C.", "X. B. Y.")),  # two edits apart: the span between them
    ("まず数えます。七個です。", "まず数えます。二個です。", ("七個です。", "二個です。")),
])
def test_changed_sentences(a, b, expected):
    assert guided.changed_sentences(a, b) == expected


@pytest.mark.parametrize("response, expected", [
    ("#### 2\nThe answer is 2.", "2"),  # the last number
    ("The answer is 7.", "7"),
    ("答えは１２個です。", "12"),
    ("No, LUNA is not a white kitten.\nShe is black.", "No, LUNA is not a white kitten."),  # the first line
    ("## Yes\nLUNA is white.", "Yes"),
    ("  \n\n", ""),  # nothing to read
    ("x" * 200, "x" * (guided.ANSWER_CHARS - 1) + "…"),  # a phrase, never a paragraph
])
def test_answer_of(response, expected):
    assert guided.answer_of(response) == expected


@pytest.mark.parametrize("a, b, ra, rb, expected_en", [
    (A, B, "#### 2\nThe answer is 2.", "The answer is 7.",
     "You changed this sentence of the reasoning: “Jack eats 5 pears, so 7 - 5 = 2 are left.” → "
     "“Jack has only 4 pears, so there are still 7.”; the final answer changed from “2” to “7”."),
    ("One.", "One. Two.", "yes", "no",
     "You added this sentence to the reasoning: “Two.”; the final answer changed from “yes” to “no”."),
    ("One. Two.", "One.", "yes", "yes",
     "You removed this sentence of the reasoning: “Two.”; the final answer stayed “yes”."),
    ("One.", "One.", "yes", "no",
     "You left the reasoning as it was; the final answer changed from “yes” to “no”."),
    ("One.", "Two.", "3 pears.", "",
     "You changed this sentence of the reasoning: “One.” → “Two.”; no answer can be read from the "
     "second response: it is empty."),
    ("One.", "Two.", "", " ",
     "You changed this sentence of the reasoning: “One.” → “Two.”; no answer can be read: both "
     "responses are empty."),
])
def test_explanation(a, b, ra, rb, expected_en):
    text = guided.explanation(a, b, ra, rb)
    en, _, ja = text.partition(" / ")
    assert en == expected_en
    assert ja, "the explanation has a Japanese half"


@pytest.mark.parametrize("model, embedded", [
    ("embedded", True), ("HuggingFaceTB/SmolLM2-360M-Instruct", True),
    ("SmolLM2-135M-Instruct (Q4_1 GGUF, embedded)", True), ("Qwen/Qwen2.5-0.5B-Instruct", False),
    ("/models/qeur23-bonsai.gguf", False),
])
def test_examples_per_model(model, embedded):
    listed = guided.ordered_examples(model)
    langs = [e.lang for e in listed]
    first = "en" if embedded else "ja"
    assert guided.is_embedded(model) is embedded
    assert langs == sorted(langs, key=lambda lang: lang != first) and langs[0] == first
    assert sorted(e.title for e in listed) == sorted(e.title for e in examples())  # all, once


def test_examples_data():
    """English versions of the seed's three questions, each with 2-3 reasonings that differ; the
    Japanese originals kept; exactly one demo example."""
    english = [e for e in examples() if e.lang == "en"]
    japanese = [e for e in examples() if e.lang == "ja"]
    assert len(english) == len(japanese) == 3
    for e in english:
        assert 2 <= len(e.variants) <= 3, e.title
        assert len({v.reasoning for v in e.variants}) == len(e.variants)
        assert all(mode == "special" for *_, mode, _ in e.rows())
    assert all(len(row[0]) <= 60 for e in examples() for row in e.rows())  # Gradio cuts labels there
    demo = guided.demo_example()
    assert demo.lang == "en" and "Jack eats 5 of his pears" in demo.question
    assert [row[0] for row in demo.rows()] == [f"{demo.title} — {v.label}" for v in demo.variants]


@pytest.mark.parametrize("item, message", [
    ({"lang": "fr"}, "lang = 'fr'"),
    ({"demo": True, "variant": [{"label": "x", "reasoning": "y"}]}, "needs two variants"),
])
def test_bad_example_data_is_refused(item, message):
    base = {"title": "t", "mode": "special", "question": "q", "input": ""}
    with pytest.raises(ValueError, match=message):
        _example({**base, **item})


def test_rows_of_an_example_without_variants():
    e = Example("t", "reasoning", "q", "", "r")
    assert e.rows() == [("t", "q", "", "reasoning", "r")]
    e = Example("t", "special", "q", "", variants=(Variant("a", "ra"), Variant("b", "rb")))
    assert [row[0] for row in e.rows()] == ["t — a", "t — b"]


def test_every_example_carries_the_context_it_was_checked_in():
    """Format and settings: the English ones in alpaca, greedy, 64 new tokens; the seed's in alpaca."""
    for e in examples():
        assert e.prompt_format == "alpaca", e.title
        assert e.settings.temperature == 0 and e.settings.seed == 0, e.title
        assert e.context == ("alpaca", *(getattr(e.settings, name) for name in GENERATION_BOUNDS))
    assert {e.settings.max_new_tokens for e in examples() if e.lang == "en"} == {64}


@pytest.mark.parametrize("item, message", [
    ({"format": "nope"}, "unknown prompt format 'nope'"),
    ({"settings": {"temperature": 9}}, "temperature = 9 is out of range"),
    ({"settings": {"max_tokens": 9}}, "unknown generation setting"),
])
def test_an_examples_bad_context_is_refused_at_load(item, message):
    base = {"title": "t", "mode": "special", "question": "q", "input": ""}
    with pytest.raises(ValueError, match=message):
        _example({**base, **item})


@pytest.mark.parametrize("example", [e for e in examples() if e.lang == "en"], ids=lambda e: e.title)
def test_ready_reasonings_lead_to_different_answers_on_the_embedded_model(llama_engine, example):
    """In the context the example carries (as loading it sets the page): each ready reasoning gives
    its own answer."""
    runner = Runner(llama_engine)
    answers = []
    for v in example.variants:
        *_, last = runner.regenerate(example.question, example.input, v.reasoning,
                                     example.prompt_format, example.settings)
        answers.append(last.response)
    assert all(answers) and len(set(answers)) == len(answers), answers
    if example.demo:  # the demo's story, as the README tells it
        assert [guided.answer_of(a) for a in answers] == ["2", "7"]
        assert answers == ["#### 2\nThe answer is 2.", "The answer is 7."]
