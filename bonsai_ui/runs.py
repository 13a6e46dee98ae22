"""What Generate, Regenerate and Stop do, independent of Gradio.

A run renders the prompt, streams it through the engine, splits the text into reasoning and
response, and yields display states at a bounded rate. The UI maps these states onto components;
tests drive the same code without a browser.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Iterator

from .engine import Engine, PromptTooLong, Timing
from .prompts import load_format, render_prompt
from .settings import GenerationSettings
from .splitter import split_reasoning

# The page stays smooth when updates are batched: ~15 per second, whatever the token rate.
UPDATE_INTERVAL_S = 1 / 15


class UserError(ValueError):
    """Bad input, shown to the user as is (the UI turns it into gr.Error)."""


@dataclass(frozen=True)
class RunState:
    reasoning: str
    response: str
    stats: str
    prompt: str  # exactly what was sent to the model (both prompts when the run fell back)
    done: bool = False


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
    if done and ended and ended != "stopped":
        parts.append(f"ended by {ended}")
    line = " · ".join(parts)
    return f"{line}\n\n{note}" if note else line


class Runner:
    def __init__(self, engine: Engine | None = None):
        self.engine = engine
        self._cancels: dict[str, threading.Event] = {}

    # -- cancelling ----------------------------------------------------------------------------

    def _new_cancel(self, session: str) -> threading.Event:
        event = threading.Event()
        self._cancels[session] = event
        return event

    def stop(self, session: str) -> bool:
        """Stop the session's current run; the run ends within about a token."""
        event = self._cancels.get(session)
        if event is None:
            return False
        event.set()
        return True

    # -- runs ----------------------------------------------------------------------------------

    def _engine(self) -> Engine:
        if self.engine is None:
            raise UserError("The model is still loading; the page shows its progress. Try again "
                            "in a moment.")
        return self.engine

    def generate(self, question: str, input: str, mode: str, prompt_format: str,
                 reasoning: str, settings: GenerationSettings, session: str = "") -> Iterator[RunState]:
        """Generate in one of the three modes; special mode uses ``reasoning`` as written."""
        if mode == "special":
            yield from self.regenerate(question, input, reasoning, prompt_format, settings, session)
            return
        engine, fmt, question = self._check(question, prompt_format)
        settings = settings.with_seed()
        prompt = render_prompt(fmt, mode, question, input, chat=engine.backend.chat)
        cancel = self._new_cancel(session)
        timing = Timing()
        text = ""
        model = engine.description
        for text, timing in self._stream(engine, prompt, settings, cancel, fmt.stop, session):
            if mode == "vanilla":
                yield RunState("", text.strip(), format_stats([timing], model, settings.seed, done=False), prompt)
            else:
                split = split_reasoning(text, fmt.response_marker, fmt.reasoning_start)
                yield RunState(split.reasoning, split.response or "",
                               format_stats([timing], model, settings.seed, done=False), prompt)
        if mode == "vanilla":
            yield RunState("", text.strip(), format_stats([timing], model, settings.seed, done=True),
                           prompt, done=True)
            return
        split = split_reasoning(text, fmt.response_marker, fmt.reasoning_start, final=True)
        if split.response is not None or timing.ended_by == "stopped":
            yield RunState(split.reasoning, split.response or "",
                           format_stats([timing], model, settings.seed, done=True), prompt, done=True)
            return
        # The model never wrote the response marker: write the response from the reasoning it has.
        note = (f"The model ended its reasoning ({timing.ended_by}) without writing "
                f"`{fmt.response_marker}`, so the response was written from that reasoning "
                f"with the special prompt. / 応答マーカーが無かったため、推論から回答を生成しました。")
        follow = render_prompt(fmt, "special", question, input, split.reasoning, chat=engine.backend.chat)
        both = f"{prompt}{split.reasoning}\n\n──── fallback: special prompt ────\n\n{follow}"
        try:
            engine.check_fits(follow, settings.max_new_tokens)
        except PromptTooLong as error:
            raise UserError(f"The reasoning needs a response, but: {error}") from None
        second = Timing()
        response = ""
        for response, second in self._stream(engine, follow, settings, cancel, fmt.stop, session):
            yield RunState(split.reasoning, response.strip(),
                           format_stats([timing, second], model, settings.seed, done=False, note=note), both)
        yield RunState(split.reasoning, response.strip(),
                       format_stats([timing, second], model, settings.seed, done=True, note=note),
                       both, done=True)

    def regenerate(self, question: str, input: str, reasoning: str, prompt_format: str,
                   settings: GenerationSettings, session: str = "") -> Iterator[RunState]:
        """Write only the response, conditioned on the (edited) reasoning, verbatim."""
        engine, fmt, question = self._check(question, prompt_format)
        if not reasoning.strip():
            raise UserError("The reasoning is empty: generate some in reasoning mode, or write "
                            "your own, before regenerating the response.")
        settings = settings.with_seed()
        prompt = render_prompt(fmt, "special", question, input, reasoning, chat=engine.backend.chat)
        cancel = self._new_cancel(session)
        model = engine.description
        text, timing = "", Timing()
        for text, timing in self._stream(engine, prompt, settings, cancel, fmt.stop, session):
            yield RunState(reasoning, text.strip(), format_stats([timing], model, settings.seed, done=False), prompt)
        yield RunState(reasoning, text.strip(), format_stats([timing], model, settings.seed, done=True),
                       prompt, done=True)

    def preview(self, question: str, input: str, mode: str, prompt_format: str, reasoning: str) -> str:
        """The prompt a run would send now, for the Prompt preview."""
        fmt = load_format(prompt_format)
        chat = self.engine.backend.chat if self.engine else None
        return render_prompt(fmt, mode, question, input, reasoning, chat=chat)

    # -- helpers -------------------------------------------------------------------------------

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
                cancel: threading.Event, stops, session: str) -> Iterator[tuple[str, Timing]]:
        """Accumulated text, at most every UPDATE_INTERVAL_S, and always once at the end."""
        timing = Timing()
        text = ""
        last = 0.0
        try:
            for piece in engine.stream(prompt, settings, cancel, stops, timing, session):
                text += piece
                now = time.perf_counter()
                if now - last >= UPDATE_INTERVAL_S:
                    last = now
                    yield text, timing
        except PromptTooLong as error:
            raise UserError(str(error)) from None
        yield text, timing
