"""What the Debate tab's buttons do, independent of Gradio: each step of a round is a run of the
editor's ``Runner`` (same streaming, Stop, stats, prefix reuse and fallback), so the debate adds
prompts and bookkeeping, not another way to call the model.

* Answer: the round's question as the instruction, the answering side's goal as the input, in
  reasoning mode; with an edited reasoning, special mode (the response is written from it).
* Rebuttal: the format's ``rebuttal.j2`` as the instruction, likewise reasoning or special mode.
* Questions: the seed's ``fbq.j2`` on answer and rebuttal, vanilla mode (the template asks for the
  questions directly), parsed by ``debate.parse_fact_questions``. Under the format's grammar
  (``Debate.enforce_format``, on by default) the engine writes exactly five ``PARAGRAPH:`` lines,
  with a token budget of its own that the longest five lines fit; off, the model writes freely
  within the user's max new tokens, as in the seed.

A finished step marks every later step stale (``Debate.mark_after``). Runs yield ``Progress``
values; the debate passed in is updated in place when each step ends (stopped steps keep what was
written).
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Iterator

from .rounds import MAX_QUESTIONS, Debate, DebateError, check_text, parse_fact_questions
from ..editor.runs import Runner, RunState, UserError
from ..core.constraints import FBQ, Constraint, ConstraintError
from ..core.settings import GenerationSettings
from .transcript import fbq_instruction, rebuttal_instruction

ROUND_STEPS = ("answer", "rebuttal", "questions")


@dataclass(frozen=True)
class Progress:
    round_index: int
    kind: str  # "answer", "rebuttal" or "questions"
    state: RunState | None  # the run's latest display state; None between steps
    line: str  # the progress line shown above the round
    done: bool = False  # the step has ended and the debate holds its result


class DebateRunner:
    def __init__(self, runner: Runner):
        self.runner = runner

    def stop(self, session: str) -> None:
        """Stop the running step at once and any "Run N rounds" after it (the Runner's series
        flag: it lives only while the rounds run, so sessions leave nothing behind)."""
        self.runner.stop(session)

    # -- one step ----------------------------------------------------------------------------------

    def step(self, debate: Debate, round_index: int, kind: str, settings: GenerationSettings,
             session: str = "", reasoning: str | None = None, line: str = "") -> Iterator[Progress]:
        """Run one step of a round; ``reasoning`` (answer, rebuttal): write the text from it."""
        if not 0 <= round_index < len(debate.rounds):
            raise DebateError(f"There is no round {round_index + 1}. / ラウンド {round_index + 1} はありません。")
        rnd = debate.rounds[round_index]
        step = rnd.step(kind)
        who = {"answer": f"group {rnd.answerer} answers", "rebuttal": f"group {rnd.rebutter} rebuts",
               "questions": "fact-based questions"}[kind] if kind in ROUND_STEPS else kind
        states = self._states(debate, round_index, kind, settings, session, reasoning)
        state = None
        try:
            for state in states:
                yield Progress(round_index, kind, state, line or f"⏳ round {round_index + 1} · {who}")
        except UserError as error:  # raised as the run starts (a prompt too long for the model)
            raise DebateError(str(error)) from None
        if state is None:
            return
        if kind == "questions":
            step.reasoning_generated = step.reasoning_sent = ""
            debate.set_questions(round_index, parse_fact_questions(state.response))
            enforced = bool(state.timings) and state.timings[-1].format_note == ""
            if enforced and not state.stopped and 0 < len(rnd.questions) < MAX_QUESTIONS:
                line = cut_short(round_index, len(rnd.questions), state)
        else:
            step.reasoning_sent = state.reasoning
            step.reasoning_generated = state.reasoning_generated or (step.reasoning_generated
                                                                     if reasoning is not None else "")
        step.text, step.prompt, step.stats = state.response, state.prompt, state.stats
        debate.mark_after(round_index, kind)
        step.stale = False
        ended = "⏹ stopped" if state.stopped else "✅ done"
        if kind == "questions" and not rnd.questions and not state.stopped:
            line = no_question(round_index)
        yield Progress(round_index, kind, state, line or f"{ended}: round {round_index + 1} · {who}",
                       done=True)

    def _states(self, debate, i, kind, settings, session, reasoning) -> Iterator[RunState]:
        """The Runner's run for a step; ``reasoning``: special mode, from that reasoning."""
        rnd, fmt = debate.rounds[i], debate.prompt_format
        if kind == "answer":
            check_text("question", rnd.question)
            instruction, input = rnd.question, debate.goals[rnd.answerer]
        elif kind in ("rebuttal", "questions"):
            check_text("answer", rnd.answer.text)
            instruction, input = (rebuttal_instruction(debate, rnd) if kind == "rebuttal"
                                  else fbq_instruction(debate, rnd)), ""
        else:
            raise DebateError(f"unknown step {kind!r}; one of {', '.join(ROUND_STEPS)}")
        if kind == "questions":  # the template asks for the questions directly: no reasoning
            constraint, settings = self._questions_format(debate, instruction, settings)
            return self.runner.generate(instruction, input, "vanilla", fmt, "", settings, session,
                                        constraint=constraint)
        if reasoning is not None:
            return self.runner.regenerate(instruction, input, reasoning, fmt, settings, session)
        return self.runner.generate(instruction, input, "reasoning", fmt, "", settings, session)

    def _questions_format(self, debate: Debate, instruction: str, settings: GenerationSettings
                          ) -> tuple[Constraint | None, GenerationSettings]:
        """The questions step's constraint and settings. Under an enforced grammar the step's budget
        is the longest text the grammar allows (capped by what the model's context leaves), so five
        lines always fit, whatever the user's max new tokens; where the engine cannot enforce it,
        the run says so and keeps the user's settings."""
        engine = self.runner.engine
        if not debate.enforce_format or engine is None:
            return None, settings
        try:
            if engine.check_format(FBQ):
                return FBQ, settings
        except ConstraintError as error:
            raise DebateError(str(error)) from None
        prompt = self.runner.preview(instruction, "", "vanilla", debate.prompt_format, "")
        room = engine.backend.context_length - engine.backend.count_tokens(prompt)
        return FBQ, dataclasses.replace(settings, max_new_tokens=max(1, min(FBQ.max_tokens, room)))

    # -- rounds --------------------------------------------------------------------------------------

    def run_rounds(self, debate: Debate, start: int, rounds: int, settings: GenerationSettings,
                   session: str = "") -> Iterator[Progress]:
        """Complete ``rounds`` rounds from round ``start``: every step not yet done (or stale) is
        run, the question is picked automatically where none is picked, and the next round is
        started with the sides swapped. Stop ends it at once."""
        with self.runner.series(session) as halt:
            yield from self._rounds(debate, start, rounds, settings, session, halt)

    def _rounds(self, debate: Debate, start: int, rounds: int, settings: GenerationSettings,
                session: str, halt: threading.Event) -> Iterator[Progress]:
        total = rounds * len(ROUND_STEPS)
        i = start
        for r in range(rounds):
            for s, kind in enumerate(ROUND_STEPS):
                step = debate.rounds[i].step(kind)
                by_hand = kind == "questions" and debate.rounds[i].questions  # never overwritten
                if (step.done or by_hand) and not step.stale:
                    continue
                line = (f"⏳ round {r + 1} of {rounds} (debate round {i + 1}) · {kind} · step "
                        f"{r * len(ROUND_STEPS) + s + 1} of {total}")
                last = None
                if not halt.is_set():
                    for last in self.step(debate, i, kind, settings, session, line=line):
                        if halt.is_set():  # Stop came between two runs: stop this one too
                            self.runner.stop(session)
                        yield last  # a stopped run still ends with its partial text, kept
                if halt.is_set() or (last and last.state and last.state.stopped):
                    yield Progress(i, kind, None, f"⏹ stopped in round {i + 1} ({kind}) / 停止しました")
                    return
            if not debate.rounds[i].questions:
                yield Progress(i, "questions", None, no_question(i))
                return
            if r + 1 < rounds:
                i = debate.next_round(i)
        yield Progress(i, "questions", None, f"✅ {rounds} round(s) done / {rounds} ラウンド完了")


def cut_short(round_index: int, found: int, state: RunState) -> str:
    """The line for an enforced questions step that ended before its fifth line."""
    ended = state.timings[-1].ended_by
    why = (": the model's context leaves too few tokens for five; raise --context-length"
           if ended == "max new tokens" else "")
    return (f"⚠ round {round_index + 1}: cut short after {found} of {MAX_QUESTIONS} questions "
            f"(ended by {ended}{why}). Pick one of them, or write your own. / "
            f"{MAX_QUESTIONS}個の質問がそろう前に生成が終わりました（{found}個）。")


def no_question(round_index: int) -> str:
    """The plain message for a model that wrote no question the parser can read."""
    return (f"⚠ round {round_index + 1}: the model wrote no fact-based question that could be read "
            "(its raw text is shown below). Write one under “Your question” and press Add, then go "
            "on. / モデルの出力から質問を読み取れませんでした（出力はそのまま下に表示）。"
            "「自分の質問」に書いて追加してください。")
