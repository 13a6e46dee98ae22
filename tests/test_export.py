"""Exports as training files: the rows, DPO pairing, import back, and loading with `datasets`."""

import json
import os

os.environ["HF_DATASETS_OFFLINE"] = "1"  # read before `datasets` is imported

import datasets  # noqa: E402
import pytest  # noqa: E402

from bonsai_ui.workbench.attempts import Attempt  # noqa: E402
from bonsai_ui.workbench.export import (ImportFormatError, alpaca_jsonl, dpo_jsonl, dpo_pairs,  # noqa: E402
                              exportable, import_jsonl, messages_jsonl)

Q = "LUNAは白猫ですか？"
CATS = "LUNA: black\nMIKE: white"


def attempt(question=Q, input="", reasoning="猫の色を確認する。", response="いいえ、黒猫です。",
            generated=None, **marks) -> Attempt:
    return Attempt(question=question, input=input, reasoning_generated=generated or reasoning,
                   reasoning_sent=reasoning, response=response, **marks)


def rows(jsonl: str) -> list[dict]:
    assert jsonl == "" or jsonl.endswith("\n")
    assert not {"\x85", "\u2028", "\u2029"} & set(jsonl)  # one row a line, whoever splits them
    return [json.loads(line) for line in jsonl.splitlines()]


def test_alpaca_rows_use_the_reasoning_that_was_sent():
    a = attempt(input=CATS, reasoning="edited", generated="as generated", starred=True)
    assert rows(alpaca_jsonl([a])) == [
        {"instruction": Q, "input": CATS, "reasoning": "edited", "output": "いいえ、黒猫です。"}]
    assert "LUNAは" in alpaca_jsonl([a])  # Japanese kept readable, not \u escapes


MESSAGES = [
    # input, user content
    ("", Q),
    (CATS, f"{Q}\n\n{CATS}"),
    ("  ", Q),  # an input of spaces is no input
]


@pytest.mark.parametrize("input,user", MESSAGES)
def test_messages_rows(input, user):
    [row] = rows(messages_jsonl([attempt(input=input, starred=True)]))
    assert row == {"messages": [
        {"role": "user", "content": user},
        {"role": "assistant", "content": "<think>\n猫の色を確認する。\n</think>\n\nいいえ、黒猫です。"}]}


SELECTION = [
    # attempt fields, in a starred-only export, in an "all" export
    ({"starred": True}, True, True),
    ({}, False, True),
    ({"rejected": True}, False, False),  # a rejected attempt is never an SFT example
    ({"starred": True, "reasoning": "", "mode": "vanilla"}, False, False),  # nothing to learn to reason
    ({"starred": True, "response": "  "}, False, False),  # stopped before answering
]


@pytest.mark.parametrize("fields,starred_only,everything", SELECTION)
def test_which_attempts_are_exported(fields, starred_only, everything):
    a = attempt(**fields)
    assert (exportable([a]) == [a]) is starred_only
    assert (exportable([a], starred_only=False) == [a]) is everything


def test_dpo_pairs_per_question_newest_first_each_attempt_once():
    s1, r1, s2, r2, r3 = (attempt(response="s1", starred=True), attempt(response="r1", rejected=True),
                          attempt(response="s2", starred=True), attempt(response="r2", rejected=True),
                          attempt(response="r3", rejected=True))
    other_s = attempt("Other?", response="os", starred=True)  # no rejected attempt: no pair
    with_input_r = attempt(input=CATS, response="ir", rejected=True)  # same question, other input
    with_input_s = attempt(input=CATS, response="is", starred=True)
    plain = attempt(response="plain")  # unmarked attempts take no part
    history = [s1, r1, other_s, with_input_r, s2, plain, r2, r3, with_input_s]
    pairs = [(c.response, r.response) for c, r in dpo_pairs(history)]
    assert pairs == [("s2", "r3"), ("s1", "r2"), ("is", "ir")]  # r1: no starred attempt left


def test_dpo_rows():
    chosen = attempt(input=CATS, reasoning="LUNAは黒。", response="いいえ。", starred=True)
    rejected = attempt(input=CATS, reasoning="LUNAは白。", response="はい。", rejected=True)
    assert rows(dpo_jsonl([rejected, chosen])) == [{
        "prompt": f"{Q}\n\n{CATS}",
        "chosen": "<think>\nLUNAは黒。\n</think>\n\nいいえ。",
        "rejected": "<think>\nLUNAは白。\n</think>\n\nはい。"}]
    assert dpo_jsonl([chosen]) == ""


TRICKY = [  # texts that a careless JSONL writer or reader would break
    attempt(starred=True),
    attempt("Count the fruit.", input="Henri: 3 apples\n\nJack: 4 pears", starred=True,
            reasoning="  leading spaces\nand \"quotes\" \\ kept\n", response="7\n"),
    attempt("Line\u2028separator and \x85 next-line", starred=True, reasoning="tab\there",
            response="{\"not\": \"json\"}"),
]


@pytest.mark.parametrize("export", [alpaca_jsonl, messages_jsonl])
def test_export_import_round_trip(export):
    text = export(TRICKY)
    imported = import_jsonl(text)
    assert export(imported) == text
    assert all(a.model == "imported" and a.starred and a.reasoning_generated == a.reasoning_sent
               for a in imported)
    if export is alpaca_jsonl:  # the chat layout keeps question and input as one user message
        assert [(a.question, a.input, a.reasoning, a.response) for a in imported] == [
            (a.question, a.input, a.reasoning, a.response) for a in TRICKY]
    assert {a.prompt_format for a in imported} == {"alpaca" if export is alpaca_jsonl else "think"}


def test_import_skips_blank_lines_and_a_byte_order_mark():
    text = "\ufeff" + alpaca_jsonl(TRICKY[:1]) + "\n  \n" + alpaca_jsonl(TRICKY[:1]).replace("\n", "\r\n")
    assert len(import_jsonl(text, starred=False)) == 2
    assert not any(a.starred for a in import_jsonl(text, starred=False))


GOOD = json.dumps({"instruction": "Q", "input": "", "reasoning": "R", "output": "A"})
USER = {"role": "user", "content": "Q"}
MALFORMED = [
    # second line, message
    ("{not json", "line 2: not valid JSON"),
    ("[1, 2]", "line 2: expected a JSON object"),
    ('{"prompt": "Q", "chosen": "A"}', "line 2: neither an Alpaca row"),
    ('{"instruction": "Q", "output": "A"}', "line 2: 'reasoning' is missing"),
    ('{"instruction": "Q", "reasoning": "R", "output": 3}', "line 2: 'output' must be a string"),
    ('{"instruction": "Q", "input": null, "reasoning": "R", "output": "A"}', "line 2: 'input' must"),
    (json.dumps({"messages": [USER]}), "line 2: 'messages' must be a user message followed"),
    (json.dumps({"messages": "hi"}), "line 2: 'messages' must be"),
    (json.dumps({"messages": [USER, {"role": "assistant", "content": "no think"}]}),
     "line 2: the assistant message does not start with a <think>"),
    (json.dumps({"messages": [USER, {"role": "assistant", "content": "<think>\nunclosed"}]}),
     "line 2: the assistant message"),
    (json.dumps({"messages": [{"role": "user", "content": 1}, USER]}), "line 2: 'messages' must"),
]


@pytest.mark.parametrize("line,message", MALFORMED)
def test_malformed_lines_are_refused_by_number(line, message):
    with pytest.raises(ImportFormatError, match=message):
        import_jsonl(f"{GOOD}\n{line}\n{GOOD}\n")


DPO_HISTORY = [attempt(reasoning="良い推論", starred=True), attempt(reasoning="悪い推論", rejected=True),
               attempt("Q2", input="in", starred=True), attempt("Q2", input="in", rejected=True)]


@pytest.mark.parametrize("export,history", [(alpaca_jsonl, TRICKY), (messages_jsonl, TRICKY),
                                            (dpo_jsonl, DPO_HISTORY)])
def test_exported_files_load_with_datasets(export, history, tmp_path):
    text = export(history)
    path = tmp_path / "export.jsonl"
    path.write_text(text, encoding="utf-8")
    dataset = datasets.load_dataset("json", data_files=str(path), split="train",
                                    cache_dir=str(tmp_path / "cache"))
    assert dataset.to_list() == rows(text) and len(dataset) >= 2
