"""The ablation map's core: splitting, variants, change measures, the sweep (scripted and on the
embedded model), storage with the attempt and the exports."""

from __future__ import annotations

import json
import os
import threading

import pytest

os.environ["HF_DATASETS_OFFLINE"] = "1"  # read before `datasets` is imported

from bonsai_ui.ablation.sweep import (Ablator, AblationRequest, Result, attempts_jsonl, change_share,  # noqa: E402
                                final_answer, replacements, result_attempt, rows_csv, rows_jsonl,
                                split_units, variant)
from bonsai_ui.workbench.attempts import Attempt, History  # noqa: E402
from bonsai_ui.engine import Engine  # noqa: E402
from bonsai_ui.workbench.export import dpo_jsonl, import_jsonl  # noqa: E402
from bonsai_ui.editor.runs import Runner, UserError  # noqa: E402
from bonsai_ui.core.settings import GenerationSettings, parse_app_settings  # noqa: E402
from conftest import ScriptedBackend  # noqa: E402

SENTENCES = [
    # text, expected sentences
    ("Jack has 4 pears. He eats 5 of them! So 4 - 5 = -1? That is impossible.",
     ["Jack has 4 pears.", "He eats 5 of them!", "So 4 - 5 = -1?", "That is impossible."]),
    ("The price is 3.5 dollars. It was 2.75 before.", ["The price is 3.5 dollars.", "It was 2.75 before."]),
    ("Dr. Smith agrees, e.g. in his book. Mr. Lee does not, i.e. he weighs A vs. B. Fine.",
     ["Dr. Smith agrees, e.g. in his book.", "Mr. Lee does not, i.e. he weighs A vs. B.", "Fine."]),
    ("Wait... Let me check. Done", ["Wait...", "Let me check.", "Done"]),
    ("He said \"stop.\" Then he left.", ["He said \"stop.\"", "Then he left."]),
    ("ジャックは梨を4個持っています。5個食べます！残りは？「不可能」。",
     ["ジャックは梨を4個持っています。", "5個食べます！", "残りは？", "「不可能」。"]),
    ("価格は3.5ドルです。（確認済み）次に進む。", ["価格は3.5ドルです。", "（確認済み）次に進む。"]),
    ("Steps:\n1. Add 2 and 3. Get 5.\n2. Multiply by 2.\n- a list item\n* another\n・項目です。",
     ["Steps:", "1. Add 2 and 3.", "Get 5.", "2. Multiply by 2.", "- a list item", "* another",
      "・項目です。"]),
    ("a) first option\n(2) second\n3.5 is a number, not a list marker.",
     ["a) first option", "(2) second", "3.5 is a number, not a list marker."]),
    ("no full stop at the end", ["no full stop at the end"]),
    ("  \n\n  ", []),
    ("Line one\nline two\n\n\nline three", ["Line one", "line two", "line three"]),
]


@pytest.mark.parametrize("text,expected", SENTENCES)
def test_sentences(text, expected):
    units = split_units(text)
    assert [u.text for u in units] == expected
    assert all(text[u.start:u.end] == u.text for u in units)


PARAGRAPHS = [
    ("One. Two.\nThree.\n\nFour.", ["One. Two.\nThree.", "Four."]),
    ("\n\n  Only one paragraph.  \n", ["Only one paragraph."]),
    ("A\n \nB\n\n\n\nC", ["A", "B", "C"]),
]


@pytest.mark.parametrize("text,expected", PARAGRAPHS)
def test_paragraphs(text, expected):
    assert [u.text for u in split_units(text, "paragraph")] == expected


def test_unknown_unit_is_refused():
    with pytest.raises(UserError, match="unknown unit 'word'"):
        split_units("a. b.", "word")


LISTED = "Steps:\n1. Add 2 and 3. Get 5.\n2. Multiply by 2.\n\nSo 10."
VARIANTS = [
    # unit removed, reasoning left, text taken out
    (0, "1. Add 2 and 3. Get 5.\n2. Multiply by 2.\n\nSo 10.", "Steps:\n"),
    (1, "Steps:\nGet 5.\n2. Multiply by 2.\n\nSo 10.", "1. Add 2 and 3. "),
    (2, "Steps:\n1. Add 2 and 3.\n2. Multiply by 2.\n\nSo 10.", " Get 5."),
    (3, "Steps:\n1. Add 2 and 3. Get 5.\n\nSo 10.", "\n2. Multiply by 2."),
    (4, "Steps:\n1. Add 2 and 3. Get 5.\n2. Multiply by 2.", "\n\nSo 10."),
]


@pytest.mark.parametrize("i,left,taken", VARIANTS)
def test_removing_a_unit_keeps_the_other_lines_apart(i, left, taken):
    units = split_units(LISTED)
    assert variant(LISTED, units, i) == (left, taken)
    assert left.startswith(LISTED[:units[i].start].rstrip()), "the prompt up to the unit is kept"


def test_replacing_a_unit_and_removing_the_only_one():
    units = split_units("A is 1. B is 2.")
    assert variant("A is 1. B is 2.", units, 0, "A is 3.") == ("A is 3. B is 2.", "A is 1.")
    assert variant("one sentence", split_units("one sentence"), 0) == ("", "one sentence")


@pytest.mark.parametrize("text,answer", [
    ("So the answer is 12 apples.", "12"),
    ("3 apples cost 1,250 yen in total.", "1250"),
    ("It is -3.5 degrees.", "-3.5"),
    ("答えは１２個です。", "12"),
    ("\n  Impossible: he has only four.\nSecond line", "Impossible: he has only four."),
    ("", ""),
])
def test_final_answer(text, answer):
    assert final_answer(text) == answer


@pytest.mark.parametrize("old,new,share", [
    ("a b c d", "a b c d", 0.0),
    ("a b c d", "a b x d", 0.25),  # 1 removed + 1 added of 4 + 4 words
    ("a b", "c d", 1.0),
    ("", "", 0.0),
    ("", "a b", 1.0),
    ("a b c d", "a b c d e f g h", 4 / 12),
    ("猫は黒い", "猫は白い", 2 / 8),  # a CJK character is a word
    ("a  b", "a b", 0.0),  # whitespace is no word
])
def test_change_share(old, new, share):
    assert change_share(old, new) == pytest.approx(share)


def test_replacements_are_declared_in_both_languages():
    items = replacements()
    assert items and all(r.text_en and r.text_ja and r.label_en and r.label_ja for r in items)


def test_the_sentence_cap_is_a_setting():
    assert parse_app_settings([], {}).ablation_max_sentences == 40
    assert parse_app_settings(["--ablation-max-sentences", "3"], {}).ablation_max_sentences == 3
    assert parse_app_settings([], {"BONSAI_ABLATION_MAX_SENTENCES": "7"}).ablation_max_sentences == 7
    with pytest.raises(SystemExit):
        parse_app_settings(["--ablation-max-sentences", "0"], {})


# -- the sweep on a scripted backend -------------------------------------------------------------

QUESTION = "Jack has 4 pears and eats 5 of them. How many pears are left?"
REASONING = "Jack has 4 pears. He eats 5 of them. The weather is nice."
SETTINGS = GenerationSettings(max_new_tokens=64, temperature=0.0, seed=0)


def request(reasoning=REASONING, **kw) -> AblationRequest:
    return AblationRequest(QUESTION, "", reasoning, "alpaca", SETTINGS, **kw)


def scripted(*responses: str, delay: float = 0.0) -> tuple[Ablator, ScriptedBackend]:
    backend = ScriptedBackend(script=[r.split("|") for r in responses], delay=delay)
    return Ablator(Runner(Engine(backend))), backend


def test_sweep_measures_each_variant_exactly():
    # calls: the baseline, then the variants from the last sentence to the first
    ablator, backend = scripted("Jack has |-1 |pears.", "Jack has |-1 |pears.",
                                "Jack |ate |4 |pears.", "He |has |no |pears, |so |0.")
    states = list(ablator.sweep(request()))
    assert [s.done for s in states] == [1, 2, 3, 4, 4] and states[-1].finished
    assert [s.total for s in states] == [4] * 5
    rows = states[-1].rows
    assert [r.index for r in rows] == [0, 1, 2, 3]
    base, first, second, weather = rows
    assert base.response == "Jack has -1 pears." and base.answer == "-1"
    assert weather.sentence == "The weather is nice." and weather.removed == " The weather is nice."
    assert weather.identical and weather.change_share == 0 and not weather.answer_changed
    assert second.response == "Jack ate 4 pears." and second.answer == "4" and second.answer_changed
    # "has", "-", "1" out and "ate", "4" in, of 6 + 5 words ("-" and "." are words of the diff)
    assert second.change_share == pytest.approx(5 / 11)
    assert first.response == "He has no pears, so 0." and first.answer_changed
    # "has", "pears" and "." kept: 3 of 6 words out, 5 of 8 in
    assert not first.identical and first.change_share == pytest.approx(8 / 14)
    # exactly the special prompt with the sentence removed, in the order the cache reuses best
    assert [p.split("### Reasoning:\n")[1].split("\n\n### Response:")[0] for p in backend.prompts] == [
        REASONING, "Jack has 4 pears. He eats 5 of them.", "Jack has 4 pears. The weather is nice.",
        "He eats 5 of them. The weather is nice."]
    assert "3 of 4 responses" in states[2].status and "✅ done" in states[-1].status
    assert "final answer changed by 2, identical response for 1" in states[-1].status


def test_a_stop_string_ends_one_response_not_the_sweep():
    ablator, backend = scripted("4|\n### |Instruction", "5|\n### |x", "6", "7")
    result = list(ablator.sweep(request()))[-1]
    assert result.finished and not result.stopped and result.done == 4
    assert [r.response for r in result.rows] == ["4", "7", "6", "5"]


def test_sweep_with_a_replacement_and_a_cap():
    ablator, backend = scripted("4", "5", "6")
    states = list(ablator.sweep(request(replacement="I am not sure.", cap=2)))
    result = states[-1]
    assert result.total == 3 and [r.index for r in result.rows] == [0, 1, 2]
    assert "Only the first 2 of 3 sentences" in result.status
    assert result.row(2).reasoning == "Jack has 4 pears. I am not sure. The weather is nice."
    assert result.row(2).removed == "He eats 5 of them." and result.row(2).replacement == "I am not sure."


def test_one_sentence_and_empty_reasoning():
    ablator, backend = scripted("4", "no idea")
    result = list(ablator.sweep(request("Jack has 4 pears.")))[-1]
    assert [r.reasoning for r in result.rows] == ["Jack has 4 pears.", ""]
    assert result.row(1).answer == "no idea" and result.row(1).answer_changed
    with pytest.raises(UserError, match="The reasoning is empty"):
        list(ablator.sweep(request("  \n ")))
    with pytest.raises(UserError, match="Type a question first"):
        list(ablator.sweep(AblationRequest(" ", "", REASONING, "alpaca", SETTINGS)))


def test_stop_mid_sweep_keeps_the_finished_rows():
    ablator, backend = scripted("a|b|c", "a|b|c", "d|e|f", "g|h|i", delay=0.05)
    seen = []
    for state in ablator.sweep(request(), session="s"):
        seen.append(state)
        if state.done == 2:
            threading.Timer(0.05, ablator.stop, ["s"]).start()  # during the third response
    last = seen[-1]
    assert last.stopped and not last.finished and last.done == 2
    assert [r.index for r in last.rows] == [0, 3]
    assert not ablator.stop("s"), "the flag is gone once the sweep ended"


def test_the_result_is_kept_with_the_attempt_and_read_back():
    ablator, _ = scripted("4", "4", "5", "6")
    req = request()
    result = list(ablator.sweep(req))[-1]
    attempt = result_attempt(req, result, "scripted stand-in", "scripted")
    assert attempt.mode == "special" and attempt.response == "4" and attempt.reasoning == REASONING
    history = History()
    history.add(attempt)
    stored = json.loads(json.dumps(history.to_data()))  # as the browser keeps it
    back, warning = History.from_data(stored)
    assert not warning
    assert Result.from_data(back.attempts[0].ablation) == result
    assert Result.from_data({}) is None and Result.from_data({"version": 1, "rows": 3}) is None


def test_exports(tmp_path):
    import datasets

    ablator, _ = scripted("4", "4", "5", "6")
    result = list(ablator.sweep(request()))[-1]
    text = rows_jsonl(result, QUESTION)
    rows = [json.loads(line) for line in text.splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2, 3] and rows[3]["identical"]
    assert rows[1]["sentence"] == "Jack has 4 pears." and rows[1]["response"] == "6"
    csv_text = rows_csv(result, QUESTION)
    assert csv_text.splitlines()[0].startswith("question,input,index,sentence,removed")
    for name, content in (("rows.jsonl", text), ("rows.csv", csv_text)):
        (tmp_path / name).write_text(content, encoding="utf-8")
    for kind, name in (("json", "rows.jsonl"), ("csv", "rows.csv")):
        loaded = datasets.load_dataset(kind, data_files=str(tmp_path / name), split="train",
                                       cache_dir=str(tmp_path / "cache"))
        assert loaded.num_rows == 4 and str(loaded[2]["response"]) == "5"
    # the variants as attempts: imported, one starred and one rejected, they make a DPO pair
    attempts = import_jsonl(attempts_jsonl(result, QUESTION), starred=False)
    assert [a.reasoning for a in attempts][:2] == [REASONING, "He eats 5 of them. The weather is nice."]
    attempts[0].starred, attempts[1].rejected = True, True
    pair = json.loads(dpo_jsonl(attempts))
    assert REASONING in pair["chosen"] and "He eats 5 of them. The weather" in pair["rejected"]


def test_old_attempts_without_an_ablation_still_load():
    data = {"version": 1, "attempts": [{"question": "q", "id": "abcd1234"}]}
    history, warning = History.from_data(data)
    assert not warning and history.attempts[0].ablation == {}
    assert Attempt.from_dict({"question": "q", "id": "x", "ablation": {}}).ablation == {}


# -- on the embedded model -------------------------------------------------------------------------

def long_paragraph(tokens: int, count) -> str:
    """Distinct sentences up to about ``tokens`` tokens."""
    text, i = "", 0
    while count(text) < tokens:
        text += f"Step {i}: the basket holds {i} more apples than box {i + 2}. "
        i += 1
    return text.strip()


def test_embedded_model_identical_where_the_prompt_is_unchanged(llama_engine):
    """Replacing a sentence by itself leaves the prompt as it was: the response must be identical
    to the baseline, token for token, although the cache then held another variant's prompt."""
    reasoning = "Jack has 4 pears. He eats 5 of them. The weather is nice."
    ablator = Ablator(Runner(llama_engine))
    settings = GenerationSettings(max_new_tokens=24, temperature=0.0, seed=0)
    changed = list(ablator.sweep(AblationRequest(QUESTION, "", reasoning, "alpaca", settings,
                                                 replacement="The weather is nice.")))[-1]
    same = changed.row(3)
    assert same.reasoning == reasoning and same.identical and same.change_share == 0
    assert same.tokens == changed.baseline.tokens and same.tokens
    for row in changed.rows[1:3]:
        assert row.identical == (row.response == changed.baseline.response)
        assert (row.change_share == 0) == (row.response == changed.baseline.response)


@pytest.mark.parametrize("name,chunk", [("llama_engine", 512), ("static_engine", 256)])
def test_embedded_model_reuse_changes_no_token(name, chunk, request):
    """The sweep with prefix reuse writes the same tokens as with every prompt re-encoded, and
    reuses whole chunks of the shared prompt (llama.cpp's 512-token batches, the static decoder's
    256-token chunks). Paragraphs keep it short: a long first one, then two short ones."""
    engine = request.getfixturevalue(name)
    ablator = Ablator(Runner(engine))
    first = long_paragraph(chunk + 40, engine.backend.count_tokens)
    reasoning = f"{first}\n\nSo Jack has 4 pears.\n\nHe cannot eat 5."
    settings = GenerationSettings(max_new_tokens=6, temperature=0.0, seed=0)
    req = AblationRequest(QUESTION, "", reasoning, "alpaca", settings, unit="paragraph")
    reused = list(ablator.sweep(req, "reuse"))[-1]
    naive = list(ablator.sweep(req, "naive", forget_caches=True))[-1]
    assert [r.tokens for r in reused.rows] == [r.tokens for r in naive.rows] and reused.rows[0].tokens
    assert [r.reused_tokens for r in naive.rows] == [0, 0, 0, 0]
    # the baseline's prompt stays cached: the variants without paragraph 3, then 2 keep one chunk
    # of it; the one without paragraph 1 shares nothing but the header, less than a chunk
    assert [r.reused_tokens for r in reused.rows[1:]] == [0, chunk, chunk]


def test_the_csv_keeps_a_response_that_looks_like_a_formula_as_text():
    import csv
    import io

    ablator, _ = scripted("=1+2", "@SUM(A1)", "-3", "4")
    result = list(ablator.sweep(request()))[-1]
    cells = list(csv.DictReader(io.StringIO(rows_csv(result, "=HYPERLINK(\"x\")"))))
    # rows by sentence: the baseline, then the variants (run from the last sentence to the first)
    assert [row["response"] for row in cells] == ["'=1+2", "4", "'-3", "'@SUM(A1)"]
    assert {row["question"] for row in cells} == {"'=HYPERLINK(\"x\")"}
    assert json.loads(rows_jsonl(result, "=q").splitlines()[0])["response"] == "=1+2"  # JSONL: exact
