"""Generate / Regenerate / Stop as flows, on a scripted stand-in where exact text is needed."""

import time

import pytest

from bonsai_ui.engine import Engine
from bonsai_ui.core.prompts import load_format, render_prompt
from bonsai_ui.editor.runs import Runner, UserError, format_stats
from bonsai_ui.engine import Timing
from bonsai_ui.core.settings import GenerationSettings
from conftest import ScriptedBackend

S = GenerationSettings(max_new_tokens=400)


def runner_with(*script, delay=0.0):
    backend = ScriptedBackend(script=[list(s) for s in script], delay=delay)
    return Runner(Engine(backend)), backend


def test_reasoning_then_response_stream_into_their_panes():
    runner, backend = runner_with(["Check ", "the ", "pears.", "\n\n###", " Resp", "onse:", "\n", "Impossible", "."])
    states = list(runner.generate("Q", "", "reasoning", "alpaca", "", S))
    assert states[-1].reasoning == "Check the pears." and states[-1].response == "Impossible."
    assert states[-1].done and "✅ done" in states[-1].stats
    assert all(not s.reasoning.endswith(("#", "### Resp")) for s in states)
    assert backend.prompts == [render_prompt(load_format("alpaca"), "reasoning", "Q", "")]


def test_missing_marker_falls_back_to_the_special_prompt():
    runner, backend = runner_with(["I ", "count ", "fruit."], ["Three", " apples."])
    states = list(runner.generate("Q", "in", "reasoning", "alpaca", "", S))
    final = states[-1]
    assert final.reasoning == "I count fruit." and final.response == "Three apples."
    assert "without writing `### Response:`" in final.stats and "special prompt" in final.stats
    assert backend.prompts[1] == render_prompt(load_format("alpaca"), "special", "Q", "in", "I count fruit.")
    assert backend.prompts[1] in final.prompt and backend.prompts[0] in final.prompt
    assert "5 new tokens" in final.stats


def test_vanilla_has_no_reasoning_and_special_uses_the_given_reasoning_verbatim():
    runner, backend = runner_with(["Hi", "."], ["Ok", "."])
    final = list(runner.generate("Q", "", "vanilla", "alpaca", "ignored", S))[-1]
    assert final.reasoning == "" and final.response == "Hi."
    edited = " my\nreasoning "
    final = list(runner.generate("Q", "", "special", "alpaca", edited, S))[-1]
    assert final.reasoning == edited and backend.prompts[-1].endswith(f"### Reasoning:\n{edited}\n\n### Response:\n")


def test_stop_ends_the_run_keeps_the_partial_text_and_frees_the_engine():
    runner, backend = runner_with(["tok "] * 500, ["next."], delay=0.01)
    states = []
    for state in runner.generate("Q", "", "vanilla", "alpaca", "", S, session="s1"):
        states.append(state)
        if len(states) == 3:
            assert runner.stop("s1")
    final = states[-1]
    assert "⏹ stopped" in final.stats and final.response.startswith("tok tok")
    assert final.response.count("tok") < 100
    started = time.perf_counter()
    assert list(runner.generate("Q", "", "vanilla", "alpaca", "", S, session="s1"))[-1].response == "next."
    assert time.perf_counter() - started < 2


def test_stop_of_one_session_does_not_stop_another():
    runner, _ = runner_with(["a"] * 20, delay=0.001)
    assert not runner.stop("nobody")
    states = list(runner.generate("Q", "", "vanilla", "alpaca", "", S, session="s2"))
    runner.stop("s3")
    assert states[-1].response == "a" * 20


def test_stop_strings_cut_the_response():
    runner, _ = runner_with(["Answer", ".\n\n###", " Instruction:", "\nmore"])
    final = list(runner.generate("Q", "", "vanilla", "alpaca", "", S))[-1]
    assert final.response == "Answer." and "ended by stop string" in final.stats


def test_updates_are_throttled_but_the_last_state_is_complete():
    runner, _ = runner_with([f"{i} " for i in range(300)], delay=0.001)
    states = list(runner.generate("Q", "", "vanilla", "alpaca", "", S))
    assert len(states) < 300 / 2, "not one UI update per token"
    assert states[-1].response.endswith("299")


@pytest.mark.parametrize("call,message", [
    (lambda r: r.generate("  ", "", "reasoning", "alpaca", "", S), "Type a question first"),
    (lambda r: r.regenerate("Q", "", " \n", "alpaca", S), "The reasoning is empty"),
    (lambda r: r.generate("Q", "", "reasoning", "nope", "", S), "unknown prompt format"),
    (lambda r: r.generate("word " * 3000, "", "vanilla", "alpaca", "", S), "over the model's context of 2,048"),
])
def test_bad_input_is_a_user_error_before_any_work(call, message):
    runner, backend = runner_with(["x"])
    with pytest.raises(UserError, match=message):
        list(call(runner))
    assert backend.prompts == []


def test_a_worker_failure_reaches_the_caller():
    backend = ScriptedBackend(pieces=["a", "b", "c"], fail_at=2)
    with pytest.raises(RuntimeError, match="scripted failure at token 2"):
        list(Runner(Engine(backend)).generate("Q", "", "vanilla", "alpaca", "", S))


def test_no_engine_yet_says_the_model_is_loading():
    with pytest.raises(UserError, match="still loading"):
        list(Runner().generate("Q", "", "vanilla", "alpaca", "", S))


def _timing(new, ttft, span, ended="end of text", prompt=10):
    t = Timing(prompt_tokens=prompt, new_tokens=new, started=100.0, ended_by=ended)
    t.first_token, t.last_token = 100.0 + ttft, 100.0 + ttft + span
    return t


@pytest.mark.parametrize("timings,done,expected", [
    ([_timing(11, 0.5, 1.0)], True, ["✅ done", "first token 0.50 s", "total 1.50 s", "11 new tokens",
                                     "10.0 tok/s", "prompt 10 tokens", "seed 3", "ended by end of text"]),
    ([_timing(5, 0.2, 1.0, "stopped")], True, ["⏹ stopped", "5 new tokens"]),
    ([_timing(11, 0.5, 1.0), _timing(21, 0.1, 2.0)], True, ["32 new tokens", "10.0 tok/s"]),
    ([_timing(1, 0.5, 0.0)], True, ["1 new tokens"]),
])
def test_format_stats(timings, done, expected):
    line = format_stats(timings, "m on b", 3, done=done)
    for part in expected:
        assert part in line
    assert "m on b" in line


@pytest.mark.parametrize("mode,script,response", [
    ("reasoning", [["### Step 1\nCount.", "\n### Response:\n", "Four.", "\n\n### Question:", " more?"]], "Four."),
    ("vanilla", [["Four.\n", "### Question: more?"]], "Four."),
    ("special", [["Four.\n\n## ", "not a section\n### Note: x"]], "Four.\n\n## not a section"),
])
def test_the_alpaca_response_ends_at_the_next_section_header(mode, script, response):
    """The seed's fine-tunes never write one; the embedded model goes on with "### Question:"."""
    runner, _ = runner_with(*script)
    final = list(runner.generate("Q", "", mode, "alpaca", "R", S))[-1]
    assert final.response == response and "ended by stop string" in final.stats
    if mode == "reasoning":
        assert final.reasoning == "### Step 1\nCount."  # headers in the reasoning are kept


@pytest.mark.parametrize("header", ["### Output:", "### Answer:"])
def test_a_stray_response_header_ends_the_reasoning_and_is_not_kept_in_it(header):
    runner, backend = runner_with(["I count ", "fruit.", f"\n{header}", " 7"], ["Seven", "."])
    final = list(runner.generate("Q", "", "reasoning", "alpaca", "", S))[-1]
    assert final.reasoning == "I count fruit." and final.response == "Seven."
    assert backend.prompts[1] == render_prompt(load_format("alpaca"), "special", "Q", "", "I count fruit.")


def test_a_fallback_that_writes_nothing_says_there_is_no_answer():
    runner, _ = runner_with(["I count ", "fruit.", "\n### Output:"], [])
    final = list(runner.generate("Q", "", "reasoning", "alpaca", "", S))[-1]
    assert final.done and final.reasoning == "I count fruit." and final.response == ""
    assert "wrote no response either" in final.stats and "there is no answer" in final.stats
    assert "the response was written from that reasoning" not in final.stats


def test_a_reasoning_ended_by_a_stop_string_still_gets_its_fallback_response():
    runner, _ = runner_with(["I count ", "fruit.", "\n### Instruction:", " more"], ["Seven", "."])
    final = list(runner.generate("Q", "", "reasoning", "alpaca", "", S))[-1]
    assert final.reasoning == "I count fruit." and final.response == "Seven."
    assert final.timings[0].ended_by == "stop string" and final.timings[1].ended_by != "stopped"
    assert "⏹ stopped" not in final.stats
