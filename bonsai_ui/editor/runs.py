"""What Generate, Regenerate and Stop do, independent of Gradio.

A run renders the prompt, streams it through the engine, splits the text into reasoning and
response, and yields display states at a bounded rate. The UI maps these states onto components;
tests drive the same code without a browser.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from ..core.constraints import Constraint, ConstraintError
from ..engine import Engine, EngineError, PromptTooLong, Timing, fingerprint
from ..core.prompts import CONTINUE, MODES, load_format, render_prompt
from ..core.settings import GenerationSettings
from ..core.splitter import split_reasoning

# The page stays smooth when updates are batched: ~15 per second, whatever the token rate.
UPDATE_INTERVAL_S = 1 / 15
MAX_REMEMBERED = 256  # finished runs kept for sessions that have not collected theirs


class UserError(ValueError):
    """Bad input, shown to the user as is (the UI turns it into gr.Error)."""


@dataclass(frozen=True)
class RunRequest:
    """What a run was asked to do, with the seed it actually used: what an Attempt records."""

    mode: str  # vanilla, reasoning, special (also Regenerate) or continue
    question: str
    input: str
    prompt_format: str
    reasoning: str  # as given: used verbatim (special) or carried on (continue); "" otherwise
    settings: GenerationSettings  # seed resolved, so that the run can be repeated
    model: str
    backend: str


@dataclass(frozen=True)
class RunState:
    reasoning: str
    response: str
    stats: str
    prompt: str  # exactly what was sent to the model (both prompts when the run fell back)
    done: bool = False
    request: RunRequest | None = None
    timings: tuple[Timing, ...] = ()  # one per model call: two when the run fell back
    # The reasoning pane as this run produced it, before anyone edits it; "" when the model wrote
    # no reasoning (vanilla, special). The history diffs it against what the user later sends.
    reasoning_generated: str = ""

    @property
    def fingerprint(self) -> str:
        """Of every token the run's model calls wrote (both calls when it fell back)."""
        return run_fingerprint(self.timings)

    @property
    def stopped(self) -> bool:
        return bool(self.timings) and self.timings[-1].ended_by == "stopped"


def run_fingerprint(timings) -> str:
    """Of every token a run's model calls wrote (both calls when it fell back)."""
    return fingerprint([i for t in timings for i in t.token_ids])


def format_stats(timings: list[Timing], model: str, seed: int, *, done: bool,
                 note: str = "") -> str:
    """One line of figures for a run made of one or two model calls."""
    new = sum(t.new_tokens for t in timings)
    first = timings[0]
    parts = []
    ended = timings[-1].ended_by
    if not done:
        parts.append("⏳ generating")
    elif ended == "stopped":
        parts.append("⏹ stopped")
    else:
        parts.append("✅ done")
    if first.ttft is not None:
        parts.append(f"first token {first.ttft:.2f} s")
    end = max((t.last_token or t.started) for t in timings) if done else time.perf_counter()
    parts.append(f"total {end - first.started:.2f} s")
    parts.append(f"{new} new tokens")
    if done:
        tokens = run_fingerprint(timings)
        if tokens:
            parts.append(f"tokens #{tokens}")
    speeds = [t.decode_tps for t in timings if t.decode_tps]
    if speeds:
        weights = [t.new_tokens for t in timings if t.decode_tps]
        tps = sum(s * w for s, w in zip(speeds, weights)) / sum(weights)
        parts.append(f"{tps:.1f} tok/s")
    parts.append(f"prompt {timings[-1].prompt_tokens} tokens")
    reused = timings[-1].reused_tokens
    if reused:
        parts.append(f"{reused} reused from cache")
    parts.append(model)
    parts.append(f"seed {seed}")
    form = timings[-1].format_note
    if form is not None:
        parts.append("format enforced" if not form else f"⚠ format not enforced: {form}")
    if done and ended and ended != "stopped":
        parts.append(f"ended by {ended}")
    line = " · ".join(parts)
    return f"{line}\n\n{note}" if note else line


class Runner:
    def __init__(self, engine: Engine | None = None):
        self.engine = engine
        self._cancels: dict[str, threading.Event] = {}  # the session's model call running now
        self._halts: dict[str, threading.Event] = {}  # the session's series of calls (``series``)
        self._finished: dict[str, RunState] = {}

    # -- cancelling ----------------------------------------------------------------------------

    def _new_cancel(self, session: str) -> threading.Event:
        """The current run's flag (``_remember`` made it); a new one for callers outside a run."""
        return self._cancels.setdefault(session, threading.Event())

    @contextmanager
    def _flag(self, table: dict[str, threading.Event], session: str) -> Iterator[threading.Event]:
        # A flag lives only while its work runs: 10,000 sessions leave none behind.
        event = table[session] = threading.Event()
        try:
            yield event
        finally:
            if table.get(session) is event:  # not a newer run's flag
                del table[session]

    def stop(self, session: str) -> bool:
        """Stop the session's current run, and the rest of its series if one runs; the run ends
        within about a token."""
        events = [e for e in (self._halts.get(session), self._cancels.get(session)) if e is not None]
        for event in events:
            event.set()
        return bool(events)

    def series(self, session: str):
        """Context for several responses run as one job (the ablation sweep, ``respond``): Stop
        ends the response running now and every one after it. Yields the series' stop flag."""
        return self._flag(self._halts, session)

    # -- the last finished run, for the history ------------------------------------------------

    def finished(self, session: str) -> RunState | None:
        """The session's last finished run (stopped runs included), handed out once.

        The public ``generate``/``regenerate`` endpoints must keep their outputs, so the page asks
        for the finished run in a follow-up event instead of receiving it as an extra output.
        """
        return self._finished.pop(session, None)

    def _remember(self, session: str, states: Iterator[RunState]) -> Iterator[RunState]:
        with self._flag(self._cancels, session):  # the run's cancel flag (``_new_cancel``)
            self._finished.pop(session, None)  # a failed run must not record the one before it
            for state in states:
                if state.done:
                    self._finished[session] = state
                    while len(self._finished) > MAX_REMEMBERED:  # API callers never collect theirs
                        self._finished.pop(next(iter(self._finished)))
                yield state

    # -- runs ----------------------------------------------------------------------------------

    def _engine(self) -> Engine:
        if self.engine is None:
            raise UserError("The model is still loading; the page shows its progress. Try again "
                            "in a moment.")
        return self.engine

    def generate(self, question: str, input: str, mode: str, prompt_format: str,
                 reasoning: str, settings: GenerationSettings, session: str = "",
                 constraint: Constraint | None = None) -> Iterator[RunState]:
        """Generate in one of the three modes; special mode uses ``reasoning`` as written.
        ``constraint`` (vanilla mode: the whole output is the response): the format it must match."""
        if constraint is not None and mode != "vanilla":
            raise UserError(f"a format constraint applies to vanilla mode only, not {mode!r}")
        if mode == "special":
            return self.regenerate(question, input, reasoning, prompt_format, settings, session)
        return self._remember(session, self._generate(question, input, mode, prompt_format,
                                                      settings, session, constraint))

    def regenerate(self, question: str, input: str, reasoning: str, prompt_format: str,
                   settings: GenerationSettings, session: str = "") -> Iterator[RunState]:
        """Write only the response, conditioned on the (edited) reasoning, verbatim."""
        return self._remember(session, self._regenerate(question, input, reasoning, prompt_format,
                                                        settings, session))

    def continue_reasoning(self, question: str, input: str, reasoning: str, prompt_format: str,
                           settings: GenerationSettings, session: str = "") -> Iterator[RunState]:
        """Let the model carry on from the (edited or cut) reasoning, then write the response.

        The reasoning pane shows the given reasoning, untouched, followed by what the model adds;
        the response is written as in Generate, with the same fallback to the special prompt.
        """
        return self._remember(session, self._continue(question, input, reasoning, prompt_format,
                                                      settings, session))

    def prepare(self, mode: str, question: str, input: str, prompt_format: str, reasoning: str,
                settings: GenerationSettings) -> RunRequest:
        """The request a run of ``mode`` would make, with its seed resolved; UserError when the
        model is not loaded, the question is empty or the format unknown."""
        engine, _, question = self._check(question, prompt_format)
        return self._request(engine, mode, question, input, prompt_format, reasoning, settings)

    def respond(self, request: RunRequest, reasoning: str, session: str = "", *,
                forget_caches: bool = False) -> tuple[str, Timing] | None:
        """One whole response of the special prompt on ``reasoning`` (with ``request``'s question,
        format and settings), inside a ``series``: (response, Timing), or None when the series was
        stopped before or during it. Each response has its own cancel flag, because the engine
        also sets it when a stop string ends the response. ``forget_caches``: re-encode the whole
        prompt (the benchmark's naive baseline)."""
        halt = self._halts.get(session)
        engine, fmt, _ = self._check(request.question, request.prompt_format)
        prompt = render_prompt(fmt, "special", request.question, request.input, reasoning,
                               chat=engine.backend.chat)
        with self._flag(self._cancels, session) as cancel:
            if halt is not None and halt.is_set():
                return None
            if forget_caches:
                engine.backend.forget_caches()
            text, timing = "", Timing()
            for text, timing in self._stream(engine, prompt, request.settings, cancel,
                                             fmt.response_stops, session):
                pass
        if halt is not None and halt.is_set():
            return None
        return text.strip(), timing

    def _generate(self, question, input, mode, prompt_format, settings, session, constraint=None):
        engine, fmt, question = self._check(question, prompt_format)
        if mode not in MODES:  # "continue" has a template but is not a mode of Generate
            raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        request = self._request(engine, mode, question, input, prompt_format, "", settings)
        prompt = render_prompt(fmt, mode, question, input, chat=engine.backend.chat)
        cancel = self._new_cancel(session)
        if mode != "vanilla":
            yield from self._reason(engine, fmt, request, prompt, cancel, session)
            return
        text, timing = "", Timing()
        for text, timing in self._stream(engine, prompt, request.settings, cancel,
                                         fmt.response_stops, session, constraint):
            yield self._state(request, "", text.strip(), [timing], prompt, done=False)
        yield self._state(request, "", text.strip(), [timing], prompt, done=True)

    def _regenerate(self, question, input, reasoning, prompt_format, settings, session):
        engine, fmt, question = self._check(question, prompt_format)
        if not reasoning.strip():
            raise UserError("The reasoning is empty: generate some in reasoning mode, or write "
                            "your own, before regenerating the response.")
        request = self._request(engine, "special", question, input, prompt_format, reasoning, settings)
        prompt = render_prompt(fmt, "special", question, input, reasoning, chat=engine.backend.chat)
        cancel = self._new_cancel(session)
        text, timing = "", Timing()
        for text, timing in self._stream(engine, prompt, request.settings, cancel,
                                         fmt.response_stops, session):
            yield self._state(request, reasoning, text.strip(), [timing], prompt, done=False)
        yield self._state(request, reasoning, text.strip(), [timing], prompt, done=True)

    def _continue(self, question, input, reasoning, prompt_format, settings, session):
        engine, fmt, question = self._check(question, prompt_format)
        if not reasoning.strip():
            raise UserError("The reasoning is empty, so there is nothing to continue: use Generate "
                            "in reasoning mode. / 推論が空です。")
        request = self._request(engine, CONTINUE, question, input, prompt_format, reasoning, settings)
        prompt = render_prompt(fmt, CONTINUE, question, input, reasoning, chat=engine.backend.chat)
        cancel = self._new_cancel(session)
        yield from self._reason(engine, fmt, request, prompt, cancel, session, given=reasoning)

    def _reason(self, engine: Engine, fmt, request: RunRequest, prompt: str,
                cancel: threading.Event, session: str, given: str = "") -> Iterator[RunState]:
        """Stream reasoning then response; without a response marker, answer from the reasoning.

        ``given`` is reasoning the prompt already ends with (Continue): the model's text carries
        it on, so it is joined as written, keeping the whitespace the model put between the two.
        """
        settings = request.settings

        def reasoning_of(text: str, split) -> str:
            if not given or not split.reasoning:
                return split.reasoning or given
            return given + text[: len(text) - len(text.lstrip())] + split.reasoning

        text, timing = "", Timing()
        for text, timing in self._stream(engine, prompt, settings, cancel, fmt.reasoning_stops, session):
            split = split_reasoning(text, fmt.response_marker, fmt.reasoning_start)
            yield self._state(request, reasoning_of(text, split), split.response or "", [timing],
                              prompt, done=False)
        split = split_reasoning(text, fmt.response_marker, fmt.reasoning_start, final=True)
        reasoning = reasoning_of(text, split)
        if split.response is not None or timing.ended_by == "stopped":
            yield self._state(request, reasoning, split.response or "", [timing], prompt, done=True)
            return
        # The model never wrote the response marker: write the response from the reasoning it has.
        note = (f"The model ended its reasoning ({timing.ended_by}) without writing "
                f"`{fmt.response_marker}`, so the response was written from that reasoning "
                f"with the special prompt. / 応答マーカーが無かったため、推論から回答を生成しました。")
        follow = render_prompt(fmt, "special", request.question, request.input, reasoning,
                               chat=engine.backend.chat)
        both = f"{prompt}{text}\n\n──── fallback: special prompt ────\n\n{follow}"
        try:
            engine.check_fits(follow, settings.max_new_tokens)
        except PromptTooLong as error:
            raise UserError(f"The reasoning needs a response, but: {error}") from None
        if timing.ended_by == "stop string":
            # The engine sets the run's flag to end a call at a stop string; left set, it would
            # stop the fallback before its first token, an empty response that looked like one.
            cancel.clear()
        second, response = Timing(), ""
        for response, second in self._stream(engine, follow, settings, cancel,
                                             fmt.response_stops, session):
            yield self._state(request, reasoning, response.strip(), [timing, second], both,
                              done=False, note=note)
        if not response.strip() and second.ended_by != "stopped":
            # An empty response is no answer: say so rather than present it as one.
            note = (f"The model ended its reasoning ({timing.ended_by}) without writing "
                    f"`{fmt.response_marker}`, and asked again with the special prompt it wrote "
                    f"no response either ({second.ended_by}): there is no answer. The reasoning is "
                    f"kept: edit it and press Regenerate. / 応答マーカーが無く、推論から回答を生成し"
                    f"ようとしましたが、モデルは回答を書きませんでした。推論を編集して再生成してください。")
        yield self._state(request, reasoning, response.strip(), [timing, second], both,
                          done=True, note=note)

    def preview(self, question: str, input: str, mode: str, prompt_format: str, reasoning: str) -> str:
        """The prompt a run would send now, for the Prompt preview."""
        fmt = load_format(prompt_format)
        chat = self.engine.backend.chat if self.engine else None
        return render_prompt(fmt, mode, question, input, reasoning, chat=chat)

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _request(engine: Engine, mode: str, question: str, input: str, prompt_format: str,
                 reasoning: str, settings: GenerationSettings) -> RunRequest:
        return RunRequest(mode, question, input, prompt_format, reasoning, settings.with_seed(),
                          engine.backend.model_name, engine.backend.name)

    def _state(self, request: RunRequest, reasoning: str, response: str, timings: list[Timing],
               prompt: str, *, done: bool, note: str = "") -> RunState:
        model = f"{request.model} on {request.backend}"
        notes = getattr(self.engine.backend, "notes", None) if self.engine else None
        if notes and notes(request.settings):  # a served engine: ignored settings, estimates
            model += f" ({'; '.join(notes(request.settings))})"
        generated = reasoning if request.mode in ("reasoning", CONTINUE) else ""
        return RunState(reasoning, response,
                        format_stats(timings, model, request.settings.seed, done=done, note=note),
                        prompt, done=done, request=request, timings=tuple(timings),
                        reasoning_generated=generated)

    def _check(self, question: str, prompt_format: str):
        engine = self._engine()
        if not (question or "").strip():
            raise UserError("Type a question first. / 質問を入力してください。")
        try:
            fmt = load_format(prompt_format)
        except ValueError as error:
            raise UserError(str(error)) from None
        return engine, fmt, question

    def _stream(self, engine: Engine, prompt: str, settings: GenerationSettings,
                cancel: threading.Event, stops, session: str,
                constraint: Constraint | None = None) -> Iterator[tuple[str, Timing]]:
        """Accumulated text, at most every UPDATE_INTERVAL_S, and always once at the end."""
        timing = Timing()
        text = ""
        last = 0.0
        try:
            for piece in engine.stream(prompt, settings, cancel, stops, timing, session,
                                       constraint=constraint):
                text += piece
                now = time.perf_counter()
                if now - last >= UPDATE_INTERVAL_S:
                    last = now
                    yield text, timing
        except PromptTooLong as error:
            raise UserError(str(error)) from None
        except (EngineError, ConstraintError) as error:  # the panes keep what streamed before it
            raise UserError(str(error)) from None
        yield text, timing
