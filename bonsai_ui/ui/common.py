"""What every part of the page shares: the loading status, the settings check, the mapping of run
states onto outputs, and the range-checked settings components."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import gradio as gr

from ..runs import Runner, UserError
from ..settings import GenerationSettings, SettingsError

# UI plumbing: kept out of the API, never queued behind the model, no spinner.
PRIVATE = dict(api_visibility="private", concurrency_limit=None, show_progress="hidden")
# Every model run, on any tab, is in one queue group; Editor.model_run sets its one limit.
MODEL_RUN = dict(concurrency_id="model")


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
            return (f"🟢 **{b.model_name}** on **{b.name}** · context {b.context_length:,} tokens · "
                    f"{self.stage}")
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


def _checked(component: type) -> type:
    """A slider/number whose server-side range check names the setting.

    Gradio refuses an out-of-range API value before our function runs, but its message ("Value 9
    is greater than maximum value 2") does not say which setting; this one does, in the same words
    as every other bound (``GenerationSettings.checked``).
    """

    class Checked(component):
        is_template = True  # render with the parent's frontend component

        def preprocess(self, payload):
            try:
                GenerationSettings.checked(**{self.elem_id: payload})
            except SettingsError as error:
                raise gr.Error(str(error), title="Setting out of range / 設定値が範囲外") from None
            return super().preprocess(payload)

    # Gradio tells component classes apart by name and module (component_class_id): two classes
    # both named Checked would share one frontend, and the seed box would render as a slider.
    Checked.__name__ = Checked.__qualname__ = f"Checked{component.__name__}"
    return Checked


CheckedSlider, CheckedNumber = _checked(gr.Slider), _checked(gr.Number)
