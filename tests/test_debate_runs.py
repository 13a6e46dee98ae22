"""Debate steps and rounds as flows: exact prompts on the scripted stand-in, then the real model."""

from __future__ import annotations

import threading
import time

import pytest

from bonsai_ui.debate.rounds import Debate, DebateError, Round
from bonsai_ui.debate.steps import DebateRunner
from bonsai_ui.engine import Engine
from bonsai_ui.core.prompts import load_format, render_prompt, render_task
from bonsai_ui.editor.runs import Runner
from bonsai_ui.core.settings import GenerationSettings
from bonsai_ui.debate.transcript import fbq_context
from conftest import ScriptedBackend

S = GenerationSettings(max_new_tokens=400)
ALPACA = load_format("alpaca")
ANSWER = ["Jobs ", "change.", "\n\n### Response:\n", "AI ", "helps."]
REBUTTAL = ["It ", "hides ", "costs.", "\n\n### Response:\n", "Who ", "pays?"]
QUESTIONS = ["PARAGRAPH: Costs hide. Who pays them?\n", "PARAGRAPH: Jobs change. Which ones go first?"]


def runner_with(*script, delay=0.0):
    backend = ScriptedBackend(script=[list(s) for s in script], delay=delay)
    return DebateRunner(Runner(Engine(backend))), backend


def new_debate(question="Should AI answer the phone?") -> Debate:
    return Debate(goals={"A": "A likes AI.", "B": "B doubts AI."}, rounds=[Round(question, "A")])


def run(runs: DebateRunner, debate: Debate, kind: str, reasoning=None, i=0):
    return list(runs.step(debate, i, kind, S, "s", reasoning=reasoning))


def test_a_round_sends_the_exact_prompts_and_keeps_every_text():
    runs, backend = runner_with(ANSWER, REBUTTAL, QUESTIONS)
    d = new_debate()
    run(runs, d, "answer")
    run(runs, d, "rebuttal")
    last = run(runs, d, "questions")[-1]
    rnd = d.rounds[0]
    instruction = render_task(ALPACA, "rebuttal", side="B", goal="B doubts AI.",
                              question="Should AI answer the phone?", answer="AI helps.")
    assert backend.prompts == [
        render_prompt(ALPACA, "reasoning", "Should AI answer the phone?", "A likes AI."),
        render_prompt(ALPACA, "reasoning", instruction, ""),
        render_prompt(ALPACA, "vanilla", render_task(ALPACA, "fbq", str_output_aff=fbq_context(rnd)), ""),
    ]
    assert (rnd.answer.reasoning, rnd.answer.text) == ("Jobs change.", "AI helps.")
    assert (rnd.rebuttal.reasoning_generated, rnd.rebuttal.text) == ("It hides costs.", "Who pays?")
    assert [q.question for q in rnd.questions] == ["Who pays them?", "Which ones go first?"]
    assert rnd.picked == 0 and last.done and "✅ done" in rnd.questions_step.stats
    assert fbq_context(rnd) == "AI helps.\n\nWho pays?"


def test_a_rebuttal_regenerated_from_edited_reasoning_uses_it_verbatim_and_marks_later_steps_stale():
    runs, backend = runner_with(ANSWER, REBUTTAL, QUESTIONS, ["Nobody ", "pays."])
    d = new_debate()
    for kind in ("answer", "rebuttal", "questions"):
        run(runs, d, kind)
    edited = "  It hides costs.\nAnd it breaks trust.\n"
    run(runs, d, "rebuttal", reasoning=edited)
    rnd = d.rounds[0]
    assert backend.prompts[-1].endswith(f"### Reasoning:\n{edited}\n\n### Response:\n")
    assert (rnd.rebuttal.reasoning_generated, rnd.rebuttal.reasoning_sent) == ("It hides costs.", edited)
    assert rnd.rebuttal.text == "Nobody pays." and not rnd.rebuttal.stale
    assert rnd.questions_step.stale and rnd.questions  # kept, marked


def test_steps_refuse_what_they_cannot_run():
    runs, _ = runner_with()
    d = new_debate()
    with pytest.raises(DebateError, match="answer is empty"):
        run(runs, d, "rebuttal")
    with pytest.raises(DebateError, match="no round 3"):
        run(runs, d, "answer", i=2)
    with pytest.raises(DebateError, match="question is empty"):
        run(runs, new_debate(question=" "), "answer")


def test_run_two_rounds_swaps_sides_and_picks_automatically():
    again = ["PARAGRAPH: Costs hide. Who pays them?\n", "PARAGRAPH: Unions object. What do they want?"]
    runs, _ = runner_with(ANSWER, REBUTTAL, QUESTIONS, ANSWER, REBUTTAL, again)
    d = new_debate()
    progress = list(runs.run_rounds(d, 0, 2, S, "s"))
    assert [(r.answerer, r.rebutter) for r in d.rounds] == [("A", "B"), ("B", "A")]
    assert d.rounds[1].question == "Costs hide. Who pays them?"
    assert d.rounds[1].picked == 1  # the first question repeats round 1's: the new one is picked
    assert d.rounds[1].depth == pytest.approx(0.5)  # one question of two is all repeated pairs
    assert progress[-1].line.startswith("✅ 2 round(s) done")
    assert any("step 4 of 6" in p.line for p in progress)


def test_run_rounds_skips_done_steps_and_stops_where_no_question_was_written():
    runs, backend = runner_with(REBUTTAL, ["No questions, sorry."])
    d = new_debate()
    d.rounds[0].answer.text = "Given."
    progress = list(runs.run_rounds(d, 0, 2, S, "s"))
    assert len(backend.prompts) == 2  # the answer was done
    assert "wrote no fact-based question" in progress[-1].line
    assert d.rounds[0].questions_step.text == "No questions, sorry." and len(d.rounds) == 1


@pytest.mark.parametrize("raw", [["No questions, sorry."], []], ids=["unreadable", "nothing"])
def test_a_question_written_by_hand_lets_run_rounds_go_on(raw):
    """The model wrote no question (or no text at all); the user writes one, and the rounds go on
    from it: the questions step is not run again over the user's question."""
    runs, backend = runner_with(ANSWER, REBUTTAL, raw, ANSWER, REBUTTAL, QUESTIONS)
    d = new_debate()
    progress = list(runs.run_rounds(d, 0, 2, S, "s"))
    assert "Write one under “Your question”" in progress[-1].line and not d.rounds[0].questions
    assert d.rounds[0].questions_step.text == "".join(raw)  # the model's text, kept
    d.put_question(0, "Who answers the deaf customer?")
    progress = list(runs.run_rounds(d, 0, 2, S, "s"))
    assert progress[-1].line.startswith("✅ 2 round(s) done") and len(backend.prompts) == 6
    assert d.rounds[1].question == "Who answers the deaf customer?" and d.rounds[1].answerer == "B"
    assert [q.question for q in d.rounds[0].questions] == ["Who answers the deaf customer?"]


def test_the_questions_step_says_so_when_the_model_wrote_none():
    runs, _ = runner_with(["The answer is wrong."])
    d = new_debate()
    d.rounds[0].answer.text = "Given."
    assert "wrote no fact-based question that could be read" in run(runs, d, "questions")[-1].line


def test_stop_ends_run_rounds_at_once_and_keeps_the_partial_text():
    pieces = [f"w{i} " for i in range(200)]
    runs, backend = runner_with(ANSWER, pieces, delay=0.01)
    d = new_debate()
    seen = []

    def stop_when_rebutting():
        while not (seen and seen[-1].kind == "rebuttal" and seen[-1].state and seen[-1].state.reasoning):
            time.sleep(0.005)
        runs.stop("s")

    stopper = threading.Thread(target=stop_when_rebutting)
    stopper.start()
    for p in runs.run_rounds(d, 0, 2, S, "s"):
        seen.append(p)
    stopper.join()
    assert seen[-1].line.startswith("⏹ stopped in round 1 (rebuttal)")
    rebuttal = d.rounds[0].rebuttal
    assert rebuttal.reasoning.startswith("w0 w1") and len(rebuttal.reasoning.split()) < 200
    assert "⏹ stopped" in rebuttal.stats
    assert len(backend.prompts) == 2 and not d.rounds[0].questions_step.done


def test_a_round_on_the_real_model(llama_engine):
    """Answer, rebut, edit the rebuttal's reasoning, regenerate it (its prompt's start reused from
    the cache), ask the seed's questions: every step writes text."""
    runs = DebateRunner(Runner(llama_engine))
    d = new_debate()
    settings = GenerationSettings(max_new_tokens=96)
    for kind in ("answer", "rebuttal"):
        list(runs.step(d, 0, kind, settings, "real"))
    rnd = d.rounds[0]
    assert rnd.answer.text.strip() and rnd.rebuttal.text.strip() and rnd.rebuttal.reasoning.strip()
    edited = "The answer ignores who is liable when the AI gives wrong advice."
    list(runs.step(d, 0, "rebuttal", settings, "real", reasoning=edited))
    assert rnd.rebuttal.reasoning_sent == edited and rnd.rebuttal.text.strip()
    # the rebuttal's prompt (~220 tokens) is shorter than one 512-token batch, the unit llama.cpp
    # reuses (engine/reuse.py): its stats carry the output's fingerprint, no reuse
    assert "tokens #" in rnd.rebuttal.stats and "reused from cache" not in rnd.rebuttal.stats
    assert "### " not in rnd.rebuttal.text  # the response ends at the next section header
    list(runs.step(d, 0, "questions", GenerationSettings(max_new_tokens=256), "real"))
    assert rnd.questions_step.text.strip()


@pytest.mark.parametrize("stopped_before", [False, True])
def test_debate_sessions_leave_no_flag_behind(stopped_before):
    """Per-session state stays bounded: "Run N rounds" holds its stop flag only while it
    runs, and a Stop pressed with nothing running leaves nothing either, over 50 sessions."""
    runs, _ = runner_with(*([ANSWER, REBUTTAL, QUESTIONS] * 50))
    for n in range(50):
        session = f"visitor-{n}"
        if stopped_before:
            runs.stop(session)  # a Stop with nothing running: no effect on the next rounds
        progress = list(runs.run_rounds(new_debate(), 0, 1, S, session))
        assert progress[-1].line.startswith("✅ 1 round(s) done"), progress[-1].line
    assert runs.runner._halts == {} and runs.runner._cancels == {}


def test_stopping_rounds_stops_only_that_session():
    pieces = [f"w{i} " for i in range(300)]
    runs, _ = runner_with(pieces, ANSWER, REBUTTAL, QUESTIONS, delay=0.005)
    mine, theirs = new_debate(), new_debate()
    got: dict[str, list] = {"mine": [], "theirs": []}

    def rounds(name, debate):
        for p in runs.run_rounds(debate, 0, 1, S, name):
            got[name].append(p)

    first = threading.Thread(target=rounds, args=("mine", mine))
    first.start()
    while not (got["mine"] and got["mine"][-1].state and got["mine"][-1].state.reasoning):
        time.sleep(0.005)
    runs.stop("theirs")  # another visitor's Stop, with nothing of theirs running
    runs.stop("mine")
    first.join()
    assert got["mine"][-1].line.startswith("⏹ stopped in round 1 (answer)")
    rounds("theirs", theirs)  # their rounds run to the end afterwards
    assert got["theirs"][-1].line.startswith("✅ 1 round(s) done")
    assert runs.runner._halts == {} and runs.runner._cancels == {}
