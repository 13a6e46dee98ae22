"""The workbench tabs under the editor: Attempts (the history kept in the browser, notes, stars,
restore), Compare (a diff of two attempts) and Export / import. What they do lives in
``workbench.py``; here are the components and the handlers that redraw them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from .. import hosting
from .. import workbench as wb
from ..attempts import History
from ..export import ImportFormatError
from ..prompts import MODES
from ..settings import GENERATION_BOUNDS, GenerationSettings, SettingsError
from ..uploads import UploadRefused, read_upload
from .common import PRIVATE, confirming, import_refused
from .editor import Editor
from .texts import t

# Explicit colours: the page's CSS strikes through the token whose background is the "-" colour
# (HighlightedText marks a category only by its inline style).
DIFF_COLORS = {"+": "#bbf7d0", "-": "#fecaca"}


@dataclass
class Workbench:
    editor: Editor  # read for the question shown, written by restore
    history_store: gr.BrowserState
    listed_ids: gr.State  # the ids of the attempts in the table, in its order
    selected: gr.State  # the attempt whose note is being edited
    origin: gr.State  # the reasoning the model wrote last (workbench.origin_for)
    message: gr.Markdown
    show_all: gr.Checkbox
    table: gr.Dataframe
    note: gr.Textbox
    save_note_btn: gr.Button
    pick_a: gr.Dropdown
    pick_b: gr.Dropdown
    compare_summary: gr.Markdown
    diff_reasoning: gr.HighlightedText
    diff_response: gr.HighlightedText
    scope: gr.Radio
    export_btn: gr.Button
    import_btn: gr.UploadButton
    export_out: gr.File
    clear_btn: gr.Button
    really_btn: gr.Button
    cancel_btn: gr.Button
    max_upload: int = 16_000_000  # bytes an import may have (settings.max_upload)

    @property
    def view_in(self) -> list:
        """What decides the attempts listed and compared."""
        return [self.editor.question, self.editor.input, self.show_all, self.pick_a, self.pick_b]

    @property
    def view_out(self) -> list:
        """Everything ``panel`` redraws."""
        return [self.table, self.listed_ids, self.pick_a, self.pick_b, self.compare_summary,
                self.diff_reasoning, self.diff_response]

    # -- the attempts list: every handler that changes the history redraws it ------------------

    def panel(self, history: History, question, input, show_all, a, b, newest: bool = False) -> dict:
        """Table, listed ids, the Compare picks and their diff; ``newest``: compare the two latest.

        The diff is computed here, from the history in hand, rather than by the picks' change
        events: those could run before the browser holds the new history.
        """
        shown = wb.listed(history, question, input, show_all)
        ids = [x.id for x in shown]
        if newest or b not in ids:
            b = ids[0] if ids else None
        if newest or a not in ids:
            a = ids[1] if len(ids) > 1 else None
        options = wb.choices(shown)
        summary, diff_r, diff_a = wb.compare(history, a, b)
        return {self.table: gr.Dataframe(value=wb.table_rows(shown), headers=wb.HEADERS),
                self.listed_ids: ids,
                self.pick_a: gr.Dropdown(choices=options, value=a),
                self.pick_b: gr.Dropdown(choices=options, value=b),
                self.compare_summary: summary, self.diff_reasoning: diff_r, self.diff_response: diff_a}

    def load_history(self, data, question, input, show_all, a, b):
        history, warning = History.from_data(data)
        warning = " ".join(w for w in (warning, wb.storage_warning(history.to_data())) if w)
        if warning:
            gr.Warning(warning)
        return {**self.panel(history, question, input, show_all, a, b), self.message: warning}

    def redraw(self, data, question, input, show_all, a, b):
        return self.panel(History.from_data(data)[0], question, input, show_all, a, b)

    def record(self, data, origin_value, question, input, show_all, a, b, request: gr.Request):
        state = self.editor.runner.finished(request.session_hash or "")
        if state is None:  # nothing finished (the run failed before it started)
            return {}
        history, _ = History.from_data(data)
        history.add(wb.attempt_from_run(state, origin_value))
        stored = history.to_data()
        if warning := wb.storage_warning(stored):
            gr.Warning(warning)
        return {self.history_store: stored,
                self.origin: wb.origin_for(state) if state.reasoning_generated else origin_value,
                **self.panel(history, question, input, show_all, a, b, newest=True)}

    def on_table_select(self, data, ids, question, input, show_all, a, b, evt: gr.SelectData):
        """One click: ↩ restores into the editor, ★/✗ toggle, any other cell selects for a note."""
        row, col = evt.index
        number = evt.row_value[wb.NUMBER_COL] if evt.row_value else None
        try:
            attempt_id = ids[len(ids) - int(number)] if number is not None else ids[row]
        except (IndexError, ValueError, TypeError):
            return {}
        history, _ = History.from_data(data)
        try:
            attempt = history.get(attempt_id)
        except KeyError:
            return {}
        if col == wb.RESTORE_COL:
            return self.restore(attempt, len(ids) - ids.index(attempt_id))
        if col in (wb.STAR_COL, wb.REJECT_COL):
            if col == wb.STAR_COL:
                history.star(attempt_id, not attempt.starred)
            else:
                history.reject(attempt_id, not attempt.rejected)
            return {self.history_store: history.to_data(),
                    **self.panel(history, question, input, show_all, a, b)}
        n = len(ids) - ids.index(attempt_id)
        return {self.selected: attempt_id,
                self.note: gr.Textbox(value=attempt.note, label=f"Note on attempt #{n} / 試行 #{n} のメモ")}

    def restore(self, attempt, number: int) -> dict:
        """The editor as it was for this attempt, settings (with the seed used) included, so that
        Regenerate repeats it; a continued run's reasoning is restored for special mode, which
        answers from it as it stands."""
        e = self.editor
        restored_mode = attempt.mode if attempt.mode in MODES else "special"
        updates = {e.question: attempt.question, e.input: attempt.input, e.mode: restored_mode,
                   e.prompt_format: attempt.prompt_format, e.reasoning: attempt.reasoning,
                   e.response: attempt.response,
                   e.stats: f"↩ attempt #{number} restored / 試行 #{number} を復元 · {attempt.model}",
                   e.prompt: e.preview(attempt.question, attempt.input, restored_mode,
                                       attempt.prompt_format, attempt.reasoning),
                   self.origin: wb.origin(attempt.question, attempt.input, attempt.reasoning_generated)}
        try:
            values = GenerationSettings.checked(**{k: v for k, v in attempt.settings.items()
                                                   if k in GENERATION_BOUNDS})
        except SettingsError:  # stored under other bounds: keep the current settings
            return updates
        return {**updates, **{slider: getattr(values, slider.elem_id) for slider in e.settings}}

    def save_note(self, data, attempt_id, text, question, input, show_all, a, b):
        history, _ = History.from_data(data)
        try:
            history.set_note(attempt_id or "", (text or "").strip())
        except KeyError:
            gr.Warning("Select an attempt in the list first (click a cell of its row). / "
                       "先に一覧の試行を選択してください。")
            return {}
        return {self.history_store: history.to_data(),
                **self.panel(history, question, input, show_all, a, b)}

    @staticmethod
    def show_compare(data, a, b):
        return wb.compare(History.from_data(data)[0], a, b)

    # -- export, import, clear -------------------------------------------------------------------

    @staticmethod
    def export(data, scope):
        directory = hosting.export_directory(get_upload_folder())  # the Blocks' GRADIO_CACHE
        try:
            paths, summary = wb.export_files(History.from_data(data)[0], scope == "starred", directory)
        except ValueError as error:
            gr.Warning(str(error))
            return None, str(error)
        return [str(p) for p in paths], summary

    def import_file(self, path, data, question, input, show_all, a, b):
        name = Path(path).name if path else "?"
        history, _ = History.from_data(data)
        try:
            summary = wb.import_into(history, read_upload(path, self.max_upload))
        except (ImportFormatError, UploadRefused, OSError) as error:
            return {self.message: import_refused(name, error)}
        if not wb.listed(history, question, input, show_all):
            summary += " Tick “All questions” to see them. / 「すべての質問」で表示されます。"
        return {self.history_store: history.to_data(), self.message: summary,
                **self.panel(history, question, input, show_all, a, b)}

    @staticmethod
    def ask_clear(data):
        n = len(History.from_data(data)[0].attempts)
        return confirming(True, f"This deletes all {n} attempts of every question from this browser; "
                                f"export first to keep them. / {n} 件の試行をすべて削除します。")

    def clear(self, question, input, show_all):
        history = History()
        done = confirming(False, "History cleared. / 履歴を消去しました。")
        return {self.history_store: history.to_data(),
                **dict(zip([self.clear_btn, self.really_btn, self.cancel_btn, self.message], done)),
                **self.panel(history, question, input, show_all, None, None)}

    # -- wiring ----------------------------------------------------------------------------------

    def record_after(self, event) -> None:
        """Add the run that ``event`` finished to the history, and redraw."""
        event.success(self.record, [self.history_store, self.origin, *self.view_in],
                      [self.history_store, self.origin, *self.view_out], **PRIVATE)

    def load_after(self, event_trigger) -> None:
        """Read the stored history when the page loads (``event_trigger``: demo.load)."""
        event_trigger(self.load_history, [self.history_store, *self.view_in],
                      [*self.view_out, self.message], **PRIVATE)

    def wire(self) -> None:
        e, view_in, view_out, store = self.editor, self.view_in, self.view_out, self.history_store
        gr.on([e.question.change, e.input.change, self.show_all.change], self.redraw,
              [store, *view_in], view_out, trigger_mode="always_last", **PRIVATE)
        self.table.select(
            self.on_table_select, [store, self.listed_ids, *view_in],
            [store, *view_out, self.selected, self.note, self.origin, e.question, e.input, e.mode,
             e.prompt_format, e.reasoning, e.response, e.stats, e.prompt, *e.settings], **PRIVATE)
        gr.on([self.save_note_btn.click, self.note.submit], self.save_note,
              [store, self.selected, self.note, *view_in], [store, *view_out], **PRIVATE)
        gr.on([self.pick_a.input, self.pick_b.input], self.show_compare, [store, self.pick_a, self.pick_b],
              [self.compare_summary, self.diff_reasoning, self.diff_response],
              trigger_mode="always_last", **PRIVATE)

        self.export_btn.click(self.export, [store, self.scope], [self.export_out, self.message], **PRIVATE)
        self.import_btn.upload(self.import_file, [self.import_btn, store, *view_in],
                               [store, self.message, *view_out], **PRIVATE)
        confirm = [self.clear_btn, self.really_btn, self.cancel_btn, self.message]
        self.clear_btn.click(self.ask_clear, store, confirm, **PRIVATE)
        self.cancel_btn.click(lambda: confirming(False), None, confirm, **PRIVATE)
        self.really_btn.click(self.clear, [e.question, e.input, self.show_all],
                              [store, *confirm, *view_out], **PRIVATE)


def _attempts_tab() -> tuple:
    with gr.Tab(t("tab_attempts"), id="attempts", elem_id="tab-attempts"):
        with gr.Row(equal_height=True):
            gr.Markdown(t("attempts_help"))
            show_all = gr.Checkbox(False, label=t("all_questions"), elem_id="all-questions",
                                   scale=0, min_width=180)
        table = gr.Dataframe(value=[], headers=wb.HEADERS, interactive=False, wrap=True,
                             max_height=420, elem_id="attempts",
                             column_widths=["40px", "40px", "40px", "44px", "120px", "120px",
                                            "27%", "27%", "12%"])
        with gr.Row(equal_height=False):
            note = gr.Textbox(label=t("note"), max_lines=1, elem_id="note", scale=4,
                              placeholder=t("note_placeholder"))
            save_note_btn = gr.Button(t("save_note"), elem_id="save-note", scale=1, min_width=120)
    return show_all, table, note, save_note_btn


def _compare_tab() -> tuple:
    with gr.Tab(t("tab_compare"), id="compare", elem_id="tab-compare"):
        with gr.Row():
            pick_a = gr.Dropdown([], label=t("compare_a"), elem_id="compare-a")
            pick_b = gr.Dropdown([], label=t("compare_b"), elem_id="compare-b")
        compare_summary = gr.Markdown(elem_id="compare-summary")
        gr.Markdown(t("compare_help"))
        with gr.Row(equal_height=False):
            diff_reasoning = gr.HighlightedText(
                label=t("diff_reasoning"), color_map=DIFF_COLORS, show_inline_category=False,
                elem_id="diff-reasoning", elem_classes="diff")
            diff_response = gr.HighlightedText(
                label=t("diff_response"), color_map=DIFF_COLORS, show_inline_category=False,
                elem_id="diff-response", elem_classes="diff")
    return pick_a, pick_b, compare_summary, diff_reasoning, diff_response


def _export_tab() -> tuple:
    with gr.Tab(t("tab_export"), id="export", elem_id="tab-export"):
        scope = gr.Radio([(t("scope_starred"), "starred"), (t("scope_all"), "all")],
                         value="starred", label=t("scope"), elem_id="export-scope")
        with gr.Row():
            export_btn = gr.Button(t("export"), variant="primary", elem_id="export")
            import_btn = gr.UploadButton(t("import"), file_types=[".jsonl"], file_count="single",
                                         elem_id="import")
        export_out = gr.File(label=t("downloads"), file_count="multiple", interactive=False,
                             elem_id="export-files")
        with gr.Row():
            clear_btn = gr.Button(t("clear"), variant="secondary", elem_id="clear-history")
            really_btn = gr.Button(t("really_clear"), variant="stop", visible=False,
                                   elem_id="really-clear")
            cancel_btn = gr.Button(t("cancel"), visible=False, elem_id="cancel-clear")
    return scope, export_btn, import_btn, export_out, clear_btn, really_btn, cancel_btn


def build_workbench(editor: Editor, max_upload: int) -> Workbench:
    """Lay the three tabs out under the editor and wire their own events."""
    history_store = gr.BrowserState(History().to_data(), storage_key=wb.HISTORY_KEY,
                                    secret=wb.history_secret())
    states = (gr.State([]), gr.State(None), gr.State(None))  # listed_ids, selected, origin
    message = gr.Markdown(elem_id="workbench-message")
    with gr.Tabs(elem_id="workbench"):
        parts = (*_attempts_tab(), *_compare_tab(), *_export_tab())
    bench = Workbench(editor, history_store, *states, message, *parts, max_upload=max_upload)
    bench.wire()
    return bench
