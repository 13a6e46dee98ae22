"""The workbench without a browser: Continue as a run, attempts from runs, interventions, the cut,
the attempts list, compare, export/import and the browser-storage secret."""

import json
from dataclasses import replace

import orjson
import pytest

from bonsai_ui.workbench.attempts import Attempt, History
from bonsai_ui.workbench.diffing import diff_attempts
from bonsai_ui.engine import Engine
from bonsai_ui.workbench.export import ImportFormatError, alpaca_jsonl
from bonsai_ui.core.prompts import CONTINUE, INTERVENTION_PLACES, interventions, load_format, render_prompt
from bonsai_ui.editor.runs import Runner, UserError
from bonsai_ui.core.settings import GenerationSettings
from bonsai_ui.workbench import actions as wb
from conftest import ScriptedBackend

S = GenerationSettings(max_new_tokens=400)
Q_EN = "Jack has 4 pears and eats 5. How many are left?"
Q_JA = "ジャックの梨を5個食べたら、果物は全部で何個？"


def runner_with(*script, delay=0.0):
    backend = ScriptedBackend(script=[list(s) for s in script], delay=delay)
    return Runner(Engine(backend)), backend


# -- Continue reasoning --------------------------------------------------------------------------

CONTINUATIONS = [
    # format, given reasoning, pieces the model writes, expected reasoning pane, expected response
    ("alpaca", "Jack has 4 pears.", ["\nHe eats", " 5", ".", "\n\n###", " Response:", "\n", "Impossible."],
     "Jack has 4 pears.\nHe eats 5.", "Impossible."),
    ("alpaca", "ジャックは梨を4個持っています。", ["5個は", "食べられません。", "\n### Response:\n", "矛盾です。"],
     "ジャックは梨を4個持っています。5個は食べられません。", "矛盾です。"),
    ("alpaca", "Cut here.", ["\n### Response:\n", "Right away."], "Cut here.", "Right away."),
    ("think", "Count the cats.\n", [" Three", " cats.", "\n</think>\n\n", "3"], "Count the cats.\n Three cats.", "3"),
]


@pytest.mark.parametrize("fmt,given,pieces,reasoning,response", CONTINUATIONS)
def test_continue_carries_the_given_reasoning_on(fmt, given, pieces, reasoning, response):
    runner, backend = runner_with(pieces)
    states = list(runner.continue_reasoning("Q", "", given, fmt, S, session="c"))
    final = states[-1]
    assert (final.reasoning, final.response) == (reasoning, response)
    assert final.done and "✅ done" in final.stats
    prompt = render_prompt(load_format(fmt), CONTINUE, "Q", "", given)
    assert backend.prompts == [prompt] and final.prompt == prompt
    assert prompt.endswith(given), "the model must see the reasoning as it stands, to carry it on"
    assert all(s.reasoning.startswith(given.rstrip()) for s in states), "the given text never flickers"
    assert final.request.mode == CONTINUE and final.reasoning_generated == reasoning
    assert runner.finished("c") is final and runner.finished("c") is None


def test_continue_templates_extend_the_reasoning_prompt():
    alpaca = load_format("alpaca")
    assert render_prompt(alpaca, CONTINUE, "Q", "I", " as-is \n") == \
        render_prompt(alpaca, "reasoning", "Q", "I") + " as-is \n"
    think = load_format("think")
    assert render_prompt(think, CONTINUE, "Q", "", "R") == render_prompt(think, "reasoning", "Q") + "R"


def test_continue_without_a_response_marker_answers_from_the_whole_reasoning():
    runner, backend = runner_with([" and eats 5."], ["Impossible", "."])
    final = list(runner.continue_reasoning("Q", "", "Jack has 4 pears", "alpaca", S))[-1]
    assert final.reasoning == "Jack has 4 pears and eats 5." and final.response == "Impossible."
    assert backend.prompts[1] == render_prompt(load_format("alpaca"), "special", "Q", "",
                                               "Jack has 4 pears and eats 5.")
    assert "special prompt" in final.stats and len(final.timings) == 2


def test_a_stopped_continue_keeps_its_text_and_is_finished_as_stopped():
    runner, backend = runner_with([" more"] * 300, delay=0.005)
    states = []
    for state in runner.continue_reasoning("Q", "", "Start.", "alpaca", S, session="s"):
        states.append(state)
        if len(states) == 3:
            runner.stop("s")
    final = runner.finished("s")
    assert final is states[-1] and final.stopped and "⏹ stopped" in final.stats
    assert final.reasoning.startswith("Start. more") and len(backend.prompts) == 1, "no fallback"


def test_continue_refuses_an_empty_reasoning():
    runner, backend = runner_with(["x"])
    with pytest.raises(UserError, match="nothing to continue"):
        list(runner.continue_reasoning("Q", "", " \n", "alpaca", S))
    assert backend.prompts == []


def test_generate_still_takes_only_the_three_modes():
    runner, backend = runner_with(["x"])
    with pytest.raises(UserError, match="unknown mode 'continue'"):
        list(runner.generate("Q", "", CONTINUE, "alpaca", "R", S))
    assert backend.prompts == []


def test_continue_on_the_real_model(llama_engine):
    given = "Each cat has 4 legs."
    states = list(Runner(llama_engine).continue_reasoning(
        "I have 3 cats. How many legs do my cats have?", "", given, "alpaca",
        GenerationSettings(max_new_tokens=32)))
    final = states[-1]
    assert final.done and final.reasoning.startswith(given) and final.response.strip()
    assert final.prompt.startswith(render_prompt(load_format("alpaca"), CONTINUE,
                                                 "I have 3 cats. How many legs do my cats have?", "", given))


# -- runs carry what an attempt records ----------------------------------------------------------

def test_a_run_reports_the_seed_it_used_and_is_handed_out_once():
    runner, _ = runner_with(["Think.", "\n### Response:\n", "Done."])
    final = list(runner.generate("Q", "in", "reasoning", "alpaca", "", replace(S, seed=-1), "x"))[-1]
    seed = final.request.settings.seed
    assert seed >= 0 and f"seed {seed}" in final.stats
    assert (final.request.question, final.request.input, final.request.prompt_format) == ("Q", "in", "alpaca")
    assert final.request.model == "scripted stand-in" and final.request.backend == "scripted"
    assert runner.finished("x") is final and runner.finished("x") is None


def test_a_failed_run_leaves_nothing_to_record():
    runner, _ = runner_with(["a"])
    list(runner.generate("Q", "", "vanilla", "alpaca", "", S, "x"))
    with pytest.raises(UserError):
        list(runner.regenerate("Q", "", "", "alpaca", S, "x"))
    assert runner.finished("x") is None, "the run before the failed one must not be recorded again"


def _final(runner, method, *args):
    return list(getattr(runner, method)(*args))[-1]


def test_attempts_from_each_kind_of_run():
    runner, _ = runner_with(["Jack has 4.", "\n### Response:\n", "Four."], ["Zero."], ["Hi."],
                            [" He eats 5.", "\n### Response:\n", "None."], ["x"] * 50)
    generated = _final(runner, "generate", Q_EN, "", "reasoning", "alpaca", "", S)
    a = wb.attempt_from_run(generated)
    assert (a.mode, a.reasoning_generated, a.reasoning_sent, a.response) == \
        ("reasoning", "Jack has 4.", "Jack has 4.", "Four.")
    assert a.settings["seed"] == 0 and a.settings["max_new_tokens"] == 400
    assert (a.model, a.backend, a.prompt_format) == ("scripted stand-in", "scripted", "alpaca")
    assert a.timings["ended_by"] == "end of text" and a.timings["new_tokens"] == 3 and a.created

    origin = wb.origin_for(generated)
    edited = _final(runner, "regenerate", Q_EN, "", "Jack has 0.", "alpaca", S)
    b = wb.attempt_from_run(edited, origin)
    assert (b.mode, b.reasoning_generated, b.reasoning_sent, b.response) == \
        ("special", "Jack has 4.", "Jack has 0.", "Zero.")
    assert wb.run_label(b) == "regenerate ✎"
    other = wb.attempt_from_run(edited, {**origin, "question": "another question"})
    assert other.reasoning_generated == "" and wb.run_label(other) == "regenerate"

    vanilla = wb.attempt_from_run(_final(runner, "generate", Q_EN, "", "vanilla", "alpaca", "", S), origin)
    assert (vanilla.reasoning_generated, vanilla.reasoning_sent, vanilla.response) == ("", "", "Hi.")

    cont = wb.attempt_from_run(_final(runner, "continue_reasoning", Q_EN, "", "Jack has 4.", "alpaca", S))
    assert (cont.mode, cont.reasoning_sent, cont.response) == ("continue", "Jack has 4. He eats 5.", "None.")
    assert wb.run_label(cont) == "continue"

    states = []
    for state in runner.generate(Q_EN, "", "vanilla", "alpaca", "", replace(S, max_new_tokens=50), "st"):
        states.append(state)
        runner.stop("st")
    stopped = wb.attempt_from_run(runner.finished("st"))
    assert stopped.timings["ended_by"] == "stopped" and wb.run_label(stopped) == "vanilla ⏹"
    # Every kind survives the browser's JSON round trip.
    history = History()
    for attempt in (a, b, vanilla, cont, stopped):
        history.add(attempt)
    assert History.from_data(json.loads(json.dumps(history.to_data()))) == (history, "")


# -- interventions -------------------------------------------------------------------------------

BY_ID = {item.id: item for item in interventions()}


def test_interventions_are_well_formed_data():
    assert set(BY_ID) == {"premises", "markdown_list", "answer_ja", "answer_en", "cut"}
    for item in interventions():
        assert item.where in INTERVENTION_PLACES and item.label_en and item.label_ja
        if item.where != "cut":
            assert wb.has_japanese(item.text_ja) and not wb.has_japanese(item.text_en)


APPLY = [
    # intervention, reasoning, question, expected
    ("premises", "Jack has 4 pears.", Q_EN, BY_ID["premises"].text_en + "\nJack has 4 pears."),
    ("premises", "ジャックは梨を4個持っています。", Q_JA, BY_ID["premises"].text_ja + "\nジャックは梨を4個持っています。"),
    ("premises", "", Q_JA, BY_ID["premises"].text_ja),
    ("premises", "\n\nJack.\n", Q_EN, BY_ID["premises"].text_en + "\nJack."),
    ("markdown_list", "Plan the trip.", Q_EN, "Plan the trip.\n" + BY_ID["markdown_list"].text_en),
    ("markdown_list", "旅行を計画します。  \n\n", Q_JA, "旅行を計画します。\n" + BY_ID["markdown_list"].text_ja),
    ("answer_ja", "Count the fruit.", Q_EN, "Count the fruit.\nThe response must be written in Japanese."),
    ("answer_ja", "果物を数えます。", Q_JA, "果物を数えます。\n回答は日本語で書きます。"),
    ("answer_en", "果物を数えます。", Q_JA, "果物を数えます。\n回答は英語で書きます。"),
    ("answer_en", "", Q_EN, "The response must be written in English."),
]


@pytest.mark.parametrize("item,reasoning,question,expected", APPLY)
def test_apply_intervention(item, reasoning, question, expected):
    result = wb.apply_intervention(BY_ID[item], reasoning, question)
    assert result == expected
    assert wb.apply_intervention(BY_ID[item], result, question) == result, "a second click adds nothing"


def test_the_cut_is_not_a_text_edit():
    with pytest.raises(ValueError, match="not a text edit"):
        wb.apply_intervention(BY_ID["cut"], "text", "Q")


@pytest.mark.parametrize("text,expected", [
    ("LUNAは白猫ですか？", True), ("カタカナ", True), ("ｶﾀｶﾅ", True), ("Is LUNA white?", False),
    ("Ｆｕｌｌ-width Latin", False), ("", False),
])
def test_has_japanese(text, expected):
    assert wb.has_japanese(text) is expected


EN = "Jack has 4 pears. He eats 5 of them! So 3.5 is wrong. Really?"
JA = "まず数えます。ジャックは「梨を4個」持っています。5個は食べられません！矛盾です。"
LIST = "Day 1: Narita\nDay 2: Tokyo\nDay 3: Nikko"
CUTS = [
    # text, selected substring (its first occurrence), expected
    (EN, "Jack", "Jack has 4 pears."),
    (EN, "pears.", "Jack has 4 pears."),
    (EN, "pears. ", "Jack has 4 pears."),  # the selection's trailing space is not the next sentence
    (EN, "eats 5", "Jack has 4 pears. He eats 5 of them!"),
    (EN, "3.", "Jack has 4 pears. He eats 5 of them! So 3.5 is wrong."),  # 3.5 is no sentence end
    (EN, "Really", EN),  # the last sentence: nothing to cut
    (JA, "数え", "まず数えます。"),
    (JA, "梨", "まず数えます。ジャックは「梨を4個」持っています。"),  # 」 inside the sentence
    (JA, "食べ", "まず数えます。ジャックは「梨を4個」持っています。5個は食べられません！"),
    (LIST, "Tokyo", "Day 1: Narita\nDay 2: Tokyo"),  # a line is a sentence
    ("He said \"stop.\" Then left.", "stop", "He said \"stop.\""),
    ("We know it.\n\nNext part.", "it", "We know it."),
]


@pytest.mark.parametrize("text,selected,expected", CUTS)
def test_cut_after_sentence(text, selected, expected):
    start = text.index(selected)
    assert wb.cut_after_sentence(text, start, start + len(selected)) == expected


def test_cut_uses_the_browsers_utf16_indexes():
    text = "😀 Smile first. Then 😀 more."  # each emoji is two UTF-16 code units
    js_start = len(text[: text.index("Then")].encode("utf-16-le")) // 2
    selection = {"index": [js_start, js_start + 4], "value": "Then"}
    assert wb.from_utf16(text, js_start) == text.index("Then")
    assert wb.cut_at_selection(text + " Extra.", selection) == text


@pytest.mark.parametrize("selection,message", [
    (None, "Nothing is selected"),
    ({"index": [0, 4], "value": "Jill"}, "no longer matches"),  # the text changed since
    ({"index": [3, 3], "value": ""}, "Nothing is selected"),  # a caret, not a selection
])
def test_cut_without_a_usable_selection_says_so(selection, message):
    with pytest.raises(ValueError, match=message):
        wb.cut_at_selection("Jack has 4 pears.", selection)


# -- the attempts list, compare ------------------------------------------------------------------

def _history(*attempts: Attempt) -> History:
    history = History()
    for attempt in attempts:
        history.add(attempt)
    return history


def test_the_list_shows_this_questions_attempts_newest_first_or_all():
    first = Attempt(question=Q_EN, reasoning_generated="r1", reasoning_sent="r1", response="a1",
                    created="2026-11-25T19:45:38+00:00")
    other = Attempt(question=Q_JA, response="別")
    second = Attempt(question=Q_EN, mode="special", reasoning_generated="r1", reasoning_sent="r2 " * 40,
                     response="a2", starred=True, note="good")
    history = _history(first, other, second)
    shown = wb.listed(history, Q_EN + "\n", "", False)
    assert shown == [second, first]
    assert wb.listed(history, Q_EN, "", True) == [second, other, first]
    assert wb.listed(history, " ", "", False) == [second, other, first], "no question yet: all of them"
    rows = wb.table_rows(shown)
    assert [r[wb.NUMBER_COL] for r in rows] == [2, 1]
    assert rows[0][:3] == ["↩", "★", "·"] and rows[0][5] == "regenerate ✎" and rows[0][-1] == "good"
    assert rows[0][6].endswith("…") and len(rows[0][6]) == 80
    assert rows[1][4] == "11-25 19:45:38" and rows[1][5] == "reasoning"
    assert [value for _, value in wb.choices(shown)] == [second.id, first.id]
    assert wb.choices(shown)[1][0].startswith("#1 · 11-25 19:45:38 · reasoning · r1")


def test_compare_diffs_reasoning_and_response_in_japanese():
    a = Attempt(question=Q_JA, reasoning_sent="LUNAは白猫です。", response="はい。")
    b = Attempt(question=Q_JA, reasoning_sent="LUNAは黒猫です。", response="いいえ、黒猫です。")
    summary, reasoning, response = wb.compare(_history(a, b), a.id, b.id)
    assert reasoning == [("LUNAは", None), ("白", "-"), ("黒", "+"), ("猫です。", None)]
    assert "".join(t for t, tag in response if tag != "-") == b.response
    assert summary == "A → B: reasoning: +1 −1 words; response: +7 −1 words"
    assert wb.compare(_history(a), a.id, None) == ("Pick two attempts to compare. / 比較する2つの試行を選んでください。", [], [])


PREVIEWS = [
    "short", "a  b\n\nc", "x" * 80, "x" * 81, " " * 500 + "starts late " * 20, "\n" * 400 + "tail",
    "word " * 3000, "猫" * 79 + " 猫", "猫" * 100, "",
]


@pytest.mark.parametrize("text", PREVIEWS)
def test_a_preview_reads_the_head_only_but_shows_what_the_whole_text_gives(text):
    line = " ".join(text.split())
    assert wb._preview(text) == (line if len(line) <= 80 else line[:79] + "…")


def test_the_stored_json_reads_back_as_the_history():
    history = _history(Attempt(question=Q_JA, reasoning_sent="猫の色\nを確認", response="黒猫 é \"q\" \\",
                               settings={"seed": 7, "temperature": 0.0}, timings={"ttft_s": None}),
                       Attempt(question=Q_EN, reasoning_sent="Count.\n\n" * 50, response="7"))
    history.attempts[0].ablation = {"units": [{"text": "猫", "share": 0.5}], "baseline": None}
    data = history.to_data()
    text, warning = wb.stored_json(history)
    assert json.loads(text) == data and wb.read_stored(text) == data and warning == ""
    assert History.from_data(wb.read_stored(text))[0].to_data() == data
    # written from the attempts themselves, without to_data's deep copy: byte for byte the same
    assert text == orjson.dumps(data)


@pytest.mark.parametrize("text,value", [(None, None), ("", None), ("{not json", "unreadable")])
def test_nothing_or_no_json_stored_reads_as_a_fresh_start(text, value):
    assert wb.read_stored(text) == value
    history, warning = History.from_data(wb.read_stored(text))
    assert history.attempts == [] and (warning != "") == (value == "unreadable")


def test_a_pair_is_diffed_once(monkeypatch):
    calls = []
    monkeypatch.setattr(wb, "diff_attempts", lambda a, b: calls.append(1) or diff_attempts(a, b))
    a = Attempt(question=Q_EN, reasoning_sent="only once " * 7, response="a")
    b = Attempt(question=Q_EN, reasoning_sent="only twice " * 7, response="b")
    history = _history(a, b)
    first = wb.compare(history, a.id, b.id)
    history.star(a.id)
    history.set_note(b.id, "marks do not change the texts")
    assert wb.compare(history, a.id, b.id) == first and len(calls) == 1
    assert wb.compare(history, b.id, a.id) != first and len(calls) == 2


# -- export, import ------------------------------------------------------------------------------

def _graded() -> History:
    return _history(
        Attempt(question=Q_JA, reasoning_sent="数える。", response="12個", rejected=True),
        Attempt(question=Q_JA, reasoning_sent="前提が矛盾している。", response="答えられません。", starred=True),
        Attempt(question=Q_EN, reasoning_sent="Count.", response="7", note="plain"))


def test_export_writes_the_three_files(tmp_path):
    paths, summary = wb.export_files(_graded(), True, tmp_path / "out")
    assert sorted(p.name.split("-")[1] for p in paths) == ["alpaca", "dpo", "messages"]
    rows = {p.name.split("-")[1]: [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()]
            for p in paths}
    assert rows["alpaca"] == [{"instruction": Q_JA, "input": "", "reasoning": "前提が矛盾している。",
                               "output": "答えられません。"}]
    assert rows["dpo"][0]["chosen"].endswith("答えられません。") and rows["dpo"][0]["rejected"].endswith("12個")
    assert len(rows["messages"]) == 1
    assert summary.startswith("Exported 1 attempt(s) as Alpaca and chat messages, and 1 DPO pair(s), from 1 question(s)")
    paths, summary = wb.export_files(_graded(), False, tmp_path / "all")
    assert "Exported 2 attempt(s)" in summary and "from 2 question(s)" in summary


def test_export_of_nothing_says_what_to_do(tmp_path):
    history = _history(Attempt(question="Q", reasoning_sent="r", response="a"))
    with pytest.raises(ValueError, match="no starred attempt"):
        wb.export_files(history, True, tmp_path)
    paths, summary = wb.export_files(history, False, tmp_path)
    assert len(paths) == 2 and "no DPO pairs" in summary


def test_import_restores_exported_attempts_once():
    exported = alpaca_jsonl(_graded().attempts, starred_only=False).encode("utf-8")
    history = History()
    assert wb.import_into(history, b"\xef\xbb\xbf" + exported).startswith("Imported 2 attempt(s), starred")
    assert [a.response for a in history.attempts] == ["答えられません。", "7"]
    assert all(a.starred and a.model == "imported" for a in history.attempts)
    assert "0 attempt(s)" in wb.import_into(history, exported) and "2 already in the history" in \
        wb.import_into(history, exported)
    assert len(history.attempts) == 2


@pytest.mark.parametrize("data,message", [
    (b'{"instruction": "Q", "input": "", "reasoning": "r", "output": "a"}\nnot json\n', "line 2: not valid JSON"),
    (b'{"prompt": "Q", "chosen": "a", "rejected": "b"}\n', "line 1: neither an Alpaca row"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (b"\n\n", "no rows"),
    (b" " * (wb.MAX_IMPORT_BYTES + 1), "at most"),
])
def test_a_malformed_import_adds_nothing_and_says_why(data, message):
    history = _graded()
    before = history.to_data()
    with pytest.raises(ImportFormatError, match=message):
        wb.import_into(history, data)
    assert history.to_data() == before


def test_storage_warning_only_near_the_browsers_limit():
    small = _graded()
    assert wb.storage_warning(small) == ""
    big = _history(*(Attempt(question="Q", response="猫" * 10_000) for _ in range(150)))
    assert "export what you want to keep" in wb.storage_warning(big)


# -- browser storage -----------------------------------------------------------------------------

def test_the_history_secret_is_stable_and_configurable():
    default = wb.history_secret({})
    assert default == wb.history_secret({}) == wb.history_secret({"BONSAI_BROWSER_SECRET": ""})
    assert len(default) == 64
    assert wb.history_secret({"BONSAI_BROWSER_SECRET": "mine"}) == "mine"


def test_every_label_has_english_and_japanese():
    ui = pytest.importorskip("bonsai_ui.ui")
    translations = ui.I18N.translations_dict
    assert set(translations) == {"en", "ja"} and set(translations["en"]) == set(translations["ja"])
    for key, (en, ja) in ui.TEXTS.items():
        assert en.strip() and ja.strip(), key
    for key in ("generate", "continue", "regenerate", "question", "reasoning", "tab_compare"):
        assert ui.TEXTS[key][0] != ui.TEXTS[key][1] and wb.has_japanese(ui.TEXTS[key][1])
    for item in interventions():
        assert translations["ja"][f"intervention.{item.id}"] == item.label_ja


def _fingerprinted(tokens: str, **changes):
    from bonsai_ui.workbench.attempts import Attempt

    base = dict(question="Q", input="", mode="special", prompt_format="alpaca", reasoning_sent="R",
                reasoning_generated="R", response="A", settings={"seed": 0, "temperature": 0.0},
                model="m", backend="b", timings={"tokens": tokens})
    return Attempt(**{**base, **changes})


@pytest.mark.parametrize("a, b, want", [
    (_fingerprinted("aaaa0001"), _fingerprinted("aaaa0001"), "Identical inputs, identical output"),
    (_fingerprinted("aaaa0001"), _fingerprinted("bbbb0002"), "Identical inputs but different output"),
    (_fingerprinted("aaaa0001"), _fingerprinted("bbbb0002", reasoning_sent="R2"), ""),  # an edit
    (_fingerprinted("aaaa0001"), _fingerprinted("bbbb0002", settings={"seed": 1, "temperature": 0.0}), ""),
    (_fingerprinted(""), _fingerprinted("aaaa0001"), ""),  # no fingerprint: say nothing
])
def test_compare_says_when_identical_inputs_gave_identical_or_different_tokens(a, b, want):
    from bonsai_ui.workbench.attempts import History

    history = History()
    history.add(a)
    history.add(b)
    line, _, _ = wb.compare(history, a.id, b.id)
    assert (want in line) if want else ("Identical inputs" not in line)
