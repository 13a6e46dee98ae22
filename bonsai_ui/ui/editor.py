"""The editor: question, mode and format, the streamed reasoning and response, Stop, the
interventions on the reasoning, the prompt preview and the generation settings.

Its three runs are the page's public API: ``generate`` and ``regenerate`` (named endpoints,
documented in the README) and Continue (UI only). ``build_ui`` chains the history onto ``runs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from ..workbench import actions as wb
from ..engine import zerogpu
from ..core.prompts import format_names, interventions, load_format
from ..editor.runs import Runner
from ..core.settings import GENERATION_BOUNDS
from .common import MODEL_RUN, PRIVATE, CheckedNumber, CheckedSlider, checked_settings, shown
from .texts import MODE_CHOICES, t


@dataclass
class Editor:
    runner: Runner
    question: gr.Textbox
    input: gr.Textbox
    mode: gr.Radio
    prompt_format: gr.Dropdown
    generate_btn: gr.Button
    stop_btn: gr.Button
    settings: list  # one CheckedSlider/CheckedNumber per GENERATION_BOUNDS entry, elem_id = name
    reasoning: gr.Textbox
    intervention_btns: dict[str, gr.Button]
    regenerate_btn: gr.Button
    continue_btn: gr.Button
    response: gr.Markdown
    stats: gr.Markdown
    prompt: gr.Textbox
    selection: gr.State  # the last text selected in the reasoning box
    runs: list = field(default_factory=list)  # the events of Generate, Regenerate and Continue
    concurrency: int = 1  # runs streaming at once: 1 in-process, --parallel with a served engine
    regenerate_run: object = None  # Regenerate's function as wired (on ZeroGPU: borrowing the GPU)
    guard: object = None  # common.queue_guard(demo, size): guard(at) refuses a run when the queue is full

    @property
    def model_run(self) -> dict:
        """The queue arguments of every event that runs the model, on any tab: one concurrency
        group, ``concurrency`` runs at once. Gradio gives a group the lowest limit any of its
        events names, so one event left at 1 would serialise a served engine's --parallel."""
        return dict(MODEL_RUN, concurrency_limit=self.concurrency)

    def guarded(self, message_at: int = 0) -> dict:
        """``model_run`` plus the queue guard, its busy message under input ``message_at`` (the
        question box of the run's tab). Every model run the page starts has it: a run that joined
        unguarded could fill the queue past --queue-size up to Gradio's own cap."""
        return dict(self.model_run, validator=self.guard(message_at) if self.guard else None)

    @property
    def guarded_run(self) -> dict:
        """``guarded`` for runs whose first input is the question box: the editor's runs, the
        guided demo's and the ablation map's."""
        return self.guarded(0)

    def api(self, fn, name: str) -> None:
        """A public endpoint that runs the model (``gr.api``): in the model group, with the queue
        guard. gr.api takes no validator, so the guard goes on the function as Gradio keeps it
        (its Blocks.fns, by the id in the event's config), where the queue's join looks for it;
        an endpoint's inputs are its parameters, not preprocessed, so nothing can fail the join."""
        event = gr.api(fn, api_name=name, **self.model_run)
        if self.guard:
            gr.context.get_blocks_context().fns[event["id"]].validator = self.guard(0)

    # -- runs ------------------------------------------------------------------------------------

    def generate(self, question: str, input: str, mode: str, prompt_format: str, reasoning: str,
                 max_new_tokens: float, temperature: float, top_p: float, top_k: float,
                 repetition_penalty: float, seed: float, request: gr.Request):
        settings = checked_settings(max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        yield from shown(self.runner.generate(question, input or "", mode, prompt_format, reasoning or "",
                                              settings, request.session_hash or ""),
                         "reasoning", "response", "stats", "prompt")

    def regenerate(self, question: str, input: str, reasoning: str, prompt_format: str,
                   max_new_tokens: float, temperature: float, top_p: float, top_k: float,
                   repetition_penalty: float, seed: float, request: gr.Request):
        settings = checked_settings(max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        yield from shown(self.runner.regenerate(question, input or "", reasoning or "", prompt_format,
                                                settings, request.session_hash or ""),
                         "response", "stats", "prompt")

    def continue_reasoning(self, question: str, input: str, reasoning: str, prompt_format: str,
                           max_new_tokens: float, temperature: float, top_p: float, top_k: float,
                           repetition_penalty: float, seed: float, request: gr.Request):
        settings = checked_settings(max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        yield from shown(self.runner.continue_reasoning(question, input or "", reasoning or "",
                                                        prompt_format, settings,
                                                        request.session_hash or ""),
                         "reasoning", "response", "stats", "prompt")

    def stop(self, request: gr.Request):
        self.runner.stop(request.session_hash or "")

    def preview(self, question, input, mode, prompt_format, reasoning):
        try:
            text = self.runner.preview(question or "", input or "", mode, prompt_format, reasoning or "")
        except Exception as error:  # noqa: BLE001 - a preview must never break the page
            text = f"(no preview: {error})"
        return text

    # -- interventions ---------------------------------------------------------------------------

    @staticmethod
    def intervene(item):
        def apply(reasoning_text, question):
            return wb.apply_intervention(item, reasoning_text or "", question or "")
        return apply

    @staticmethod
    def remember_selection(evt: gr.SelectData):
        start, end = evt.index
        return {"index": [start, end], "value": evt.value} if end > start else None

    @staticmethod
    def cut(reasoning_text, selection_value):
        try:
            new = wb.cut_at_selection(reasoning_text or "", selection_value)
        except ValueError as error:
            gr.Warning(str(error))
            return gr.skip(), gr.skip()
        if new == (reasoning_text or "").rstrip():
            gr.Info("Nothing follows that sentence. / その文の後には何もありません。")
        return new, None

    # -- wiring ----------------------------------------------------------------------------------

    @property
    def preview_args(self) -> dict:
        """The prompt preview's event arguments, for any event that changes what it shows."""
        return dict(fn=self.preview, inputs=[self.question, self.input, self.mode, self.prompt_format,
                                             self.reasoning], outputs=self.prompt, **PRIVATE)

    def wire(self) -> None:
        # On a ZeroGPU Space each run borrows the GPU for a duration that fits its max new tokens.
        generate, regenerate, continue_reasoning = (
            zerogpu.gpu(f) for f in (self.generate, self.regenerate, self.continue_reasoning))
        self.regenerate_run = regenerate
        texts = [self.question, self.input]
        model_run = self.guarded_run
        self.runs = [
            self.generate_btn.click(
                generate, [*texts, self.mode, self.prompt_format, self.reasoning, *self.settings],
                [self.reasoning, self.response, self.stats, self.prompt], api_name="generate",
                **model_run),
            self.regenerate_btn.click(
                regenerate, [*texts, self.reasoning, self.prompt_format, *self.settings],
                [self.response, self.stats, self.prompt], api_name="regenerate", **model_run),
            self.continue_btn.click(
                continue_reasoning, [*texts, self.reasoning, self.prompt_format, *self.settings],
                [self.reasoning, self.response, self.stats, self.prompt], api_visibility="private",
                **model_run),
        ]
        self.stop_btn.click(self.stop, None, None, api_visibility="private", concurrency_limit=None,
                            queue=False)
        # always_last: keystrokes typed while a preview is pending are previewed when it is done.
        gr.on([self.question.input, self.input.input, self.mode.input, self.prompt_format.input,
               self.reasoning.input], trigger_mode="always_last", **self.preview_args)

        for item in interventions():
            button = self.intervention_btns[item.id]
            if item.where == "cut":
                event = button.click(self.cut, [self.reasoning, self.selection],
                                     [self.reasoning, self.selection], **PRIVATE)
            else:
                event = button.click(self.intervene(item), [self.reasoning, self.question],
                                     self.reasoning, **PRIVATE)
            event.then(**self.preview_args)
        # always_last: a drag fires many select events, and only the final selection counts.
        self.reasoning.select(self.remember_selection, None, self.selection,
                              trigger_mode="always_last", **PRIVATE)


def _settings_accordion() -> list:
    with gr.Accordion(t("settings"), open=False, elem_id="settings-accordion"):
        sliders = []
        for name, b in GENERATION_BOUNDS.items():
            info = t(f"setting_info.{name}") if b.info else None
            if name == "seed":
                sliders.append(CheckedNumber(b.default, label=t(f"setting.{name}"), info=info,
                                             precision=0, minimum=b.minimum, maximum=b.maximum,
                                             elem_id=name))
            else:
                sliders.append(CheckedSlider(b.minimum, b.maximum, value=b.default, step=b.step,
                                             label=t(f"setting.{name}"), info=info, elem_id=name))
    return sliders


def build_editor(runner: Runner, default_format: str, concurrency: int = 1,
                 guard=None) -> Editor:
    """Lay the editor out and wire its own events; ``default_format`` is the format shown first.
    The examples under it are laid out by the page (guided_ui.build_examples)."""
    formats = [(load_format(name).label, name) for name in format_names()]
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            question = gr.Textbox(label=t("question"), lines=4, elem_id="question",
                                  placeholder=t("question_placeholder"))
            # value "": API clients may leave the optional input out (a component without a value
            # would make it a required argument of /generate and /regenerate).
            input_box = gr.Textbox("", label=t("input"), lines=1, elem_id="input")
            mode = gr.Radio(MODE_CHOICES, value="reasoning", label=t("mode"), elem_id="mode")
            prompt_format = gr.Dropdown(formats, value=default_format, label=t("format"),
                                        elem_id="format", info=t("format_info"))
            with gr.Row():
                generate_btn = gr.Button(t("generate"), variant="primary", elem_id="generate")
                stop_btn = gr.Button(t("stop"), variant="stop", elem_id="stop")
            settings = _settings_accordion()
        with gr.Column(scale=3, min_width=360):
            reasoning = gr.Textbox(
                "", label=t("reasoning"), info=t("reasoning_info"),
                lines=10, max_lines=30, interactive=True, elem_id="reasoning", buttons=["copy"])
            with gr.Row(elem_id="interventions"):
                intervention_btns = {item.id: gr.Button(t(f"intervention.{item.id}"), size="sm",
                                                        elem_id=f"intervention-{item.id}")
                                     for item in interventions()}
            with gr.Row():
                regenerate_btn = gr.Button(t("regenerate"), elem_id="regenerate")
                continue_btn = gr.Button(t("continue"), elem_id="continue")
            gr.Markdown(t("response"))
            response = gr.Markdown(label="response", elem_id="response-box", buttons=["copy"],
                                   sanitize_html=True)
            stats = gr.Markdown(label="stats", elem_id="stats")
            with gr.Accordion(t("prompt_preview"), open=False, elem_id="prompt-accordion"):
                prompt = gr.Textbox(label=t("prompt"), lines=12, max_lines=40, interactive=False,
                                    elem_id="prompt", elem_classes="mono", buttons=["copy"])
    editor = Editor(runner, question, input_box, mode, prompt_format, generate_btn, stop_btn, settings,
                    reasoning, intervention_btns, regenerate_btn, continue_btn, response, stats, prompt,
                    selection=gr.State(None))
    editor.concurrency = concurrency
    editor.guard = guard
    editor.wire()
    return editor
