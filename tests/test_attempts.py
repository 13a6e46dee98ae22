"""The attempt history: marks, restore, the size cap, and stored values that are not ours."""

import json
from dataclasses import asdict

import pytest

from bonsai_ui.workbench.attempts import MAX_ATTEMPTS, Attempt, History, timings_dict
from bonsai_ui.engine import Timing


def attempt(question="LUNAは白猫ですか？", **fields) -> Attempt:
    return Attempt(question=question, **fields)


def test_history_survives_json_as_browser_state_stores_it():
    history = History()
    history.add(attempt(reasoning_generated="猫の色", reasoning_sent="猫の色を確認", response="黒猫",
                        settings={"seed": 7, "temperature": 0.0}, timings={"ttft_s": 0.1},
                        starred=True, note="良い"))
    history.add(attempt("Count the fruit.", input="3 apples", mode="vanilla", response="3"))
    stored = json.loads(json.dumps(history.to_data()))
    loaded, warning = History.from_data(stored)
    assert warning == "" and loaded.attempts == history.attempts


def test_for_question_lists_newest_first_and_matches_input():
    history = History()
    first, other, second = (history.add(attempt(response="1")), history.add(attempt("Other")),
                            history.add(attempt(" LUNAは白猫ですか？\n", response="2")))
    with_input = history.add(attempt(input="LUNA: black"))
    assert history.for_question("LUNAは白猫ですか？") == [second, first]
    assert history.for_question("LUNAは白猫ですか？", "LUNA: black") == [with_input]
    assert history.for_question("Other") == [other]
    assert history.for_question("never asked") == []


MARKS = [
    # actions in order, expected (starred, rejected)
    ([("star", True)], (True, False)),
    ([("reject", True)], (False, True)),
    ([("star", True), ("reject", True)], (False, True)),
    ([("reject", True), ("star", True)], (True, False)),
    ([("star", True), ("star", False)], (False, False)),
    ([("reject", True), ("star", False)], (False, True)),  # unstarring leaves a rejection alone
    ([("star", True), ("reject", False)], (True, False)),
]


@pytest.mark.parametrize("actions,expected", MARKS)
def test_star_and_reject_are_mutually_exclusive(actions, expected):
    history = History()
    a = history.add(attempt())
    for action, on in actions:
        getattr(history, action)(a.id, on)
    assert (a.starred, a.rejected) == expected


def test_note_restore_and_unknown_id():
    history = History()
    edited = history.add(attempt(input="in", mode="special", prompt_format="think",
                                 reasoning_generated="model's", reasoning_sent="mine",
                                 response="R", settings={"seed": 3}))
    unedited = history.add(attempt(reasoning_generated="model's only", response="R2"))
    history.set_note(edited.id, "the edit fixed it")
    assert edited.note == "the edit fixed it"
    assert history.restore(edited.id) == {
        "question": "LUNAは白猫ですか？", "input": "in", "mode": "special", "prompt_format": "think",
        "reasoning": "mine", "response": "R", "settings": {"seed": 3}}
    assert history.restore(unedited.id)["reasoning"] == "model's only"
    with pytest.raises(KeyError, match="no attempt"):
        history.star("nope")


@pytest.mark.parametrize("keep_starred,left", [(False, []), (True, ["kept"])])
def test_clear(keep_starred, left):
    history = History()
    history.add(attempt(response="gone"))
    history.add(attempt(response="kept", starred=True))
    history.clear(keep_starred=keep_starred)
    assert [a.response for a in history.attempts] == left


def test_ids_are_unique_even_when_one_collides():
    history = History()
    a = history.add(attempt(id="same"))
    b = history.add(attempt(id="same"))
    assert a.id == "same" and b.id != "same"
    for _ in range(300):
        history.add(attempt())
    assert len({a.id for a in history.attempts}) == len(history.attempts) == MAX_ATTEMPTS


CAPS = [
    # marks of the attempts in the history (oldest first), then the one added; limit 3; kept
    ("...", ".", "123"),  # oldest plain dropped
    ("*..", ".", "023"),  # starred outlives newer plain ones
    (".x.", ".", "123"),
    ("x..", ".", "023"),  # rejected outlives plain: half of a DPO pair
    ("xn.", ".", "013"),  # so does an attempt with a note
    ("*xx", ".", "023"),
    ("***", ".", "123"),  # all starred: the oldest starred goes, never the new one
]


@pytest.mark.parametrize("marks,new,kept", CAPS)
def test_history_cap_drops_oldest_unstarred_first(marks, new, kept):
    history = History(limit=3)
    for i, mark in enumerate(marks + new):
        history.add(attempt(response=str(i), starred=mark == "*", rejected=mark == "x",
                            note="n" if mark == "n" else ""))
    assert "".join(a.response for a in history.attempts) == kept


def test_cap_applies_to_stored_data_too():
    data = History([attempt(response=str(i)) for i in range(5)]).to_data()
    loaded, _ = History.from_data(data, limit=2)
    assert [a.response for a in loaded.attempts] == ["3", "4"]


GOOD = asdict(attempt(id="ok"))
STORED = [
    # stored value, attempts kept, warning (substring; "" = none)
    (None, 0, ""),
    ({}, 0, ""),
    ([], 0, ""),
    ("not a history", 0, "not readable"),
    (42, 0, "not readable"),
    ([GOOD], 0, "not readable"),  # a bare list is not our layout
    ({"attempts": "x", "version": 1}, 0, "not readable"),
    ({"chat": [], "version": 1}, 0, "not readable"),  # another app's value
    ({"attempts": [GOOD]}, 0, "version None"),
    ({"attempts": [GOOD], "version": 99}, 0, "version 99"),
    ({"attempts": [GOOD], "version": 1}, 1, ""),
    ({"attempts": [GOOD, {**GOOD, "future_field": 1}], "version": 1}, 1, "1 unreadable"),  # same id
    ({"attempts": [GOOD, {**GOOD, "id": "b", "future_field": 1}], "version": 1}, 2, ""),
    ({"attempts": [GOOD, "junk", {"id": "x"}, {**GOOD, "id": "s", "starred": "yes"},
                   {**GOOD, "id": "m", "mode": "debate"}, {**GOOD, "id": "n", "settings": []}],
      "version": 1}, 1, "5 unreadable"),
]


@pytest.mark.parametrize("stored,kept,warning", STORED)
def test_corrupt_or_foreign_stored_values_never_crash(stored, kept, warning):
    history, said = History.from_data(stored)
    assert len(history.attempts) == kept
    assert warning in said if warning else said == ""


def test_timings_dict_from_engine_timings():
    main = Timing(new_tokens=11, started=10.0, first_token=10.5, last_token=12.5)  # 10 tokens in 2 s
    fallback = Timing(new_tokens=5, started=12.6, first_token=12.8, last_token=13.0)  # 4 in 0.2 s
    assert timings_dict([main]) == {"ttft_s": 0.5, "total_s": 2.5, "new_tokens": 11, "tokens_per_s": 5.0}
    both = timings_dict([main, fallback])
    assert both["total_s"] == 3.0 and both["new_tokens"] == 16
    assert both["tokens_per_s"] == pytest.approx((5 * 11 + 20 * 5) / 16, abs=0.01)
    assert timings_dict([Timing(started=1.0)]) == {"ttft_s": None, "total_s": 0.0, "new_tokens": 0,
                                                   "tokens_per_s": None}
    assert timings_dict([]) == {}


def test_marks_are_stored_apart_and_laid_back_over_the_history():
    history = History()
    a, b = history.add(attempt(response="1")), history.add(attempt(response="2", starred=True))
    stored_texts = json.loads(json.dumps(history.to_data()))  # written when b was recorded
    history.star(a.id)
    history.reject(b.id)
    history.set_note(b.id, "本は果物ではない")
    marks = json.loads(json.dumps(history.marks_to_data()))
    assert len(json.dumps(marks)) < 200, "a click writes the marks, not the texts"
    loaded, _ = History.from_data(stored_texts)
    assert [(x.starred, x.rejected, x.note) for x in loaded.attempts] == [(False, False, ""), (True, False, "")]
    loaded.apply_marks(marks)
    assert loaded.attempts == history.attempts


@pytest.mark.parametrize("marks", [
    None, {}, [], "x", {"version": 2, "marks": {}}, {"version": 1, "marks": []},
    {"version": 1, "marks": {"ID": [True, False]}},  # too short
    {"version": 1, "marks": {"ID": ["yes", False, ""]}},  # wrong types
    {"version": 1, "marks": {"ID": [True, False, 3]}},
    {"version": 1, "marks": {"other": [True, True, "n"]}},  # no such attempt
])
def test_unreadable_marks_leave_the_historys_own(marks):
    history = History()
    history.add(attempt(id="ID", starred=False, rejected=True, note="kept"))
    history.apply_marks(marks)
    assert (history.attempts[0].starred, history.attempts[0].rejected, history.attempts[0].note) == \
        (False, True, "kept")
