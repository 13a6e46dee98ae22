"""What every part of the page shares: the loading status, the settings check, the mapping of run
states onto outputs, and the range-checked settings components."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import gradio as gr

from ..editor.runs import Runner, UserError
from ..core.settings import GenerationSettings, SettingsError

# UI plumbing: kept out of the API, never queued behind the model, no spinner.
PRIVATE = dict(api_visibility="private", concurrency_limit=None, show_progress="hidden")


def quiet_progress(demo: gr.Blocks, sink: gr.Component) -> int:
    """Have every event whose progress is hidden (PRIVATE) report its loading status on ``sink``, a
    hidden component, rather than on its outputs; returns how many events that is.

    Gradio's page keeps the status of every component that was ever a progress target (by
    default: every output of every event run so far) and, on each status change of any event
    (about four an event), copies all props of each of them (``get_data``: Svelte's snapshot, one
    ``structuredClone`` per leaf). The two Compare lists (200 choices each), the Debate tab's
    table and lists (outputs of the page's load), and after a ↩ the editor's 14 fields were all
    copied that way on every ★: 3,400-7,300 clones a ★ and ~25,000 a Compare pick at 200
    Japanese attempts, ~400 ms of a pick's main thread under load (a CDP profile). These
    events show no progress, so nothing on the page changes."""
    quiet = [fn for fn in demo.fns.values() if fn.show_progress == "hidden" and fn.show_progress_on is None]
    for fn in quiet:
        fn.show_progress_on = [sink]
    return len(quiet)


# Every model run, on any tab, is in one queue group; Editor.model_run sets its one limit.
MODEL_RUN = dict(concurrency_id="model")


def busy_text(queue_size: int) -> str:
    return (f"The app is busy: {queue_size:,} runs are already waiting for the model, as many as "
            f"its queue holds. Nothing was lost; please try again in a minute. / 混雑しています: "
            f"モデルの順番待ちが上限の {queue_size:,} 件に達しました。入力はそのままです。"
            f"少し待ってからもう一度お試しください。")


def gradio_max_size(queue_size: int) -> int:
    """Gradio's own cap on waiting events, a backstop behind ``queue_guard``.

    Gradio refuses a full queue before any check of ours runs, with a fixed "This application is
    currently busy" in the browser and "Queue is full!" in gradio_client, neither saying how full or
    for how long. So its cap sits above ours: twice --queue-size leaves room for guards that pass at
    the same instant (each sees the queue one short of full), and PAGE_EVENTS more for the page's
    own events (a redraw, a preview: they never wait for the model and leave the queue at once,
    but count while they pass through it). With --queue-size 1 and no such room, a question typed
    while one run waited started a redraw and a preview together, and Gradio refused the second
    with its own toast (seen once in the full suite, under load)."""
    return 2 * queue_size + PAGE_EVENTS


PAGE_EVENTS = 32  # one page's events at one instant are a handful; 32 covers a few pages at once


def queue_guard(demo: gr.Blocks, queue_size: int):
    """The validator for the model runs, made for the input that shows its message:
    ``queue_guard(demo, n)(at)``. With ``queue_size`` runs already waiting for the model, the run is
    refused with ``busy_text`` (shown under input ``at``, a box the user sees: the question;
    gradio_client raises it as a ValidationError) instead of joining the queue. Gradio runs
    validators as an event joins, after preprocessing the inputs there: an input that Gradio
    itself refuses would fail the join (see ``_passing``)."""

    def at(where: int = 0):
        def guard(*inputs):
            # What waits in the "model" concurrency group (MODEL_RUN): Gradio's own queue, read where
            # its max_size check reads it (Queue.event_queue_per_concurrency_id; no public accessor).
            group = demo._queue.event_queue_per_concurrency_id.get(MODEL_RUN["concurrency_id"])  # noqa: SLF001
            full = group is not None and len(group.queue) >= queue_size
            # One verdict per input; input ``where`` alone is refused, and carries the message.
            refused = full and where < len(inputs)
            return [gr.validate(False, busy_text(queue_size)) if refused and i == where
                    else gr.validate(True, "") for i in range(len(inputs))]
        return guard

    return at


@dataclass
class LoadStatus:
    """How far model loading has come; the page polls it until the model is ready."""

    stage: str = "starting"
    fraction: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    ready: bool = False
    error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, stage: str, fraction: float | None) -> None:
        with self.lock:
            self.stage = stage
            if fraction is not None:
                self.fraction = fraction
        print(f"[load {time.perf_counter() - self.started:5.1f} s] {stage}", flush=True)

    def markdown(self, runner: Runner) -> str:
        if self.ready and runner.engine is not None:
            b = runner.engine.backend
            kernels = getattr(b, "kernels", "")  # llama.cpp: which CPU kernels, pinned or not
            return (f"🟢 **{b.model_name}** on **{b.name}** · context {b.context_length:,} tokens · "
                    + (f"{kernels} · " if kernels else "") + self.stage)
        if self.error:
            return f"🔴 {self.error}"
        bar = "█" * int(self.fraction * 20) + "░" * (20 - int(self.fraction * 20))
        return (f"⏳ Loading the model / モデルを読み込み中 `{bar}` {self.fraction:.0%} · {self.stage} · "
                f"{time.perf_counter() - self.started:.0f} s")


def checked_settings(max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed):
    try:
        return GenerationSettings.checked(
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
            repetition_penalty=repetition_penalty, seed=seed)
    except SettingsError as error:
        raise gr.Error(str(error), title="Setting out of range / 設定値が範囲外") from None


def shown(states, *fields):
    """The run's states as the outputs of one event; bad input becomes a plain gr.Error."""
    try:
        for state in states:
            yield tuple(getattr(state, name) for name in fields)
    except UserError as error:
        raise gr.Error(str(error)) from None


def confirming(asking: bool, message: str = "") -> tuple:
    """A "Clear…" that asks first: its three buttons (clear, really, cancel) and the message."""
    return gr.Button(visible=not asking), gr.Button(visible=asking), gr.Button(visible=asking), message


def import_refused(name: str, error: Exception) -> str:
    """The message (and a toast) for a file that was not imported."""
    text = f"Could not import {name}: {error}. Nothing was imported. / 読み込めませんでした。"
    gr.Warning(text)
    return text


def _passing(component: type) -> type:
    """A component whose value Gradio would refuse reaches the handler, which refuses it by name.

    Gradio preprocesses the inputs of a guarded run (``queue_guard``) as it joins the queue, and an
    error there fails the join itself: HTTP 400, no message in the page, and gradio_client waits on
    the job for ever. Gradio's own words would not say which box either ("Value 9 is greater than
    maximum value 2"; "Value: 3 is not in the list of choices: []", as a round list reads once the
    session's page state has been dropped, --session-capacity). So such a value is passed on as it
    came: the settings are refused by ``checked_settings`` in the same words as every other bound
    (``GenerationSettings.checked``), the debate's round and round count by the debate's handlers.
    """

    class Passing(component):
        is_template = True  # render with the parent's frontend component

        def preprocess(self, payload):
            try:
                return super().preprocess(payload)
            except gr.Error:
                return payload

    # Gradio tells component classes apart by name and module (component_class_id): two classes
    # both named Passing would share one frontend, and the seed box would render as a slider.
    Passing.__name__ = Passing.__qualname__ = f"Checked{component.__name__}"
    return Passing


CheckedSlider, CheckedNumber, CheckedDropdown = _passing(gr.Slider), _passing(gr.Number), _passing(gr.Dropdown)
