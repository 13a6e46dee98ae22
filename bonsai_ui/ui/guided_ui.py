"""The first five minutes: the first-visit hint, the "Show me" guided demo and the examples as
listed for the model. What to run and how to explain it lives in ``editor/guided.py``; the runs are the
editor's own Regenerate, recorded by the workbench like any other."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import gradio as gr

from ..editor import guided
from ..workbench import actions as wb
from .common import PRIVATE
from .editor import Editor
from .texts import t
from .workbench_tabs import Workbench, held

HINT_KEY = "bonsai-hint-dismissed"  # localStorage key: the hint once dismissed stays dismissed


def build_examples(editor: Editor, model: str) -> None:
    """One row per ready reasoning; English first for the embedded English-only model, with a line
    saying why. A click sets the question, the mode, the reasoning, and the prompt format and
    generation settings the example was checked in (examples.toml), where the user sees them."""
    listed = [(e, row) for e in guided.ordered_examples(model) for row in e.rows()]
    with gr.Column():
        if guided.is_embedded(model):
            gr.Markdown(t("examples_embedded"), elem_id="examples-note")
        chosen = gr.Examples([[*row[1:], *e.context] for e, row in listed],
                             inputs=[editor.question, editor.input, editor.mode, editor.reasoning,
                                     editor.prompt_format, *editor.settings],
                             label=t("examples"), example_labels=[row[0] for _, row in listed],
                             examples_per_page=len(listed), api_visibility="private")
        loaded = gr.Markdown(elem_id="examples-loaded")
    # Which context the click set, said where the user looks (the settings sit in a closed panel).
    # Examples' dataset hands its handlers (index, sample) of the click.
    chosen.load_input_event.then(lambda clicked: guided.context_line(listed[clicked[0]][0]),
                                 chosen.dataset, loaded, **PRIVATE)


@dataclass
class Guide:
    hint_store: gr.BrowserState
    hint: gr.Group
    dismiss_btn: gr.Button
    show_btn: gr.Button
    explanation: gr.Markdown | None = None  # laid out later, between the editor and the workbench

    def load_after(self, event_trigger) -> None:
        """Show the hint when the page loads, unless this browser dismissed it."""
        event_trigger(lambda dismissed: gr.Group(visible=not dismissed), self.hint_store, self.hint,
                      **PRIVATE)

    @staticmethod
    def load_variant(index: int):
        """The demo example with its variant ``index`` into the editor, ready for Regenerate, in
        the format and settings it was checked in (shown in the page as they change)."""
        example = guided.demo_example()

        def load():
            return (example.question, example.input, "special", example.variants[index].reasoning,
                    *example.context, "" if index == 0 else gr.skip())
        return load

    def finish(self, bench: Workbench, history, picked, shown):
        """Compare opened on the pair just run (the two newest), with the one-sentence explanation."""
        history = held(history)
        a, b = picked or (None, None)
        try:
            first, second = history.get(a), history.get(b)
        except KeyError:
            return gr.skip()
        text = guided.explanation(first.reasoning_sent, second.reasoning_sent, first.response,
                                  second.response)
        return bench.compare_routed({self.explanation: text, **bench.open_compare(history, picked, shown)})

    def wire(self, editor: Editor, bench: Workbench) -> None:
        self.dismiss_btn.click(lambda: (True, gr.Group(visible=False)), None,
                               [self.hint_store, self.hint], **PRIVATE)
        loaded = [editor.question, editor.input, editor.mode, editor.reasoning, editor.prompt_format,
                  *editor.settings, self.explanation]
        run_in = [editor.question, editor.input, editor.reasoning, editor.prompt_format, *editor.settings]
        run_out = [editor.response, editor.stats, editor.prompt]
        event = self.show_btn
        for index in (0, 1):  # reasoning A, then reasoning B: two Regenerates, each recorded
            trigger = event.click if index == 0 else event.success
            run = trigger(self.load_variant(index), None, loaded, **PRIVATE).success(
                editor.regenerate_run, run_in, run_out, api_visibility="private",
                **editor.guarded_run)
            event = bench.record_after(run)
        picked = [bench.session, bench.picked, bench.shown_pair]
        # Compare is opened by a browser-only step once the explanation shows: a server event with
        # the tabs as an output would make Gradio's page copy every prop of everything in them (the
        # 200-row table, both Compare lists, the diffs) on every later event's status changes.
        bench.compare_applied(event.success(partial(self.finish, bench), picked,
                                    [self.explanation, bench.compare_open, *bench.compare_out], **PRIVATE)).then(
            None, self.explanation, bench.tabs_box,
            js="(text) => text ? {__type__: 'update', selected: 'compare'} : undefined", **PRIVATE)


def build_guide() -> Guide:
    """The hint (hidden until the page knows it was not dismissed) and the Show me button."""
    store = gr.BrowserState(False, storage_key=HINT_KEY, secret=wb.history_secret())
    with gr.Group(visible=False, elem_id="first-visit-hint") as hint:
        with gr.Row(equal_height=True):
            gr.Markdown(t("hint"), elem_id="hint-text")
            dismiss = gr.Button(t("hint_dismiss"), size="sm", scale=0, min_width=120,
                                elem_id="hint-dismiss")
    with gr.Row(equal_height=True):
        show = gr.Button(t("show_me"), variant="primary", scale=0, min_width=200, elem_id="show-me")
        gr.Markdown(t("show_me_info"))
    return Guide(store, hint, dismiss, show)
