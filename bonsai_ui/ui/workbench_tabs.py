"""The workbench tabs under the editor: Attempts (the history kept in the browser, notes, stars,
restore), Compare (a diff of two attempts) and Export / import. What they do lives in
``workbench/actions.py``; here are the components and the handlers that redraw them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import gradio as gr
import orjson
from gradio.utils import get_upload_folder

from ..hosting import public as hosting
from ..workbench import actions as wb
from ..workbench.attempts import Attempt, History
from ..workbench.diffing import to_html
from ..workbench.export import ImportFormatError
from ..core.prompts import MODES
from ..core.settings import GENERATION_BOUNDS, GenerationSettings, SettingsError
from ..hosting.uploads import UploadRefused, read_upload
from .common import PRIVATE, import_refused
from .editor import Editor
from .relay import Relay
from .texts import t

RELOAD = ("The server restarted since this page was opened: reload the page to go on (the attempts "
          "stored in this browser are kept). / サーバーが再起動しました。ページを再読み込みしてください。")


# The browser-only step when the page loads: both stores as JSON text for load_history.
STORED = "(data, marks) => [data, marks].map((v) => v == null ? null : JSON.stringify(v))"

def held(history: History | None) -> History:
    if history is None:  # the session was lost: writing now would overwrite the stored history
        raise gr.Error(RELOAD)
    return history


@dataclass
class Workbench:
    """The history is read from the browser once, when the page loads, and kept in the page's
    server-side session (``session``): at 200 attempts of 3,000 tokens it is ~10 MB, which every
    click used to send up and back down. Marks (★ ✗ notes) are written to their own small store;
    the texts' store only when texts change (a run recorded, an import, a clear).

    Nothing large is a server event's input either: Gradio's page adds every input of a finished
    event to the components whose loading status it keeps (``stream_state`` "closed" marks them
    as inputs), and copies those on every later status change too. The Compare lists are read by
    a browser-only step into ``pick_wire`` (``picked``, a server-side State, is what the other
    events read), the marks store into ``marks_wire`` at load.

    Nothing large is a server event's output: Gradio's page copies every prop of every component
    that has ever been an output of a server event (``$state.snapshot``, leaf by leaf), about four
    times per event (each loading-status change), whichever event it is. A 10 MB history copied
    that way cost ~0.5 s a click; the 200-row table (~2,000 leaves) and the marks (~800) still
    made up most of a ★'s ~900 ms of Chromium main thread under load (CDP profile). So the history, the marks and the table go out through a relay
    (``relay.Relay``: one JSON text on ``sent``, a single string to copy, handed out by a
    browser-only step wired by ``applied``). The table's clicks have their own relay on
    ``clicked``, which also carries what ↩ writes into the editor (``wire_table``). The texts come
    in on ``history_wire``, read from ``history_store`` by a browser-only step when the page
    loads. JSON text, not a JSON component: that cost ~35 ms of server CPU for each run recorded
    at 200 long attempts.

    One server event per table click: ↩ also reopens what other parts keep with an attempt
    (``on_restore``: the ablation map), in the same event, rather than each part listening to the
    table's clicks with its own round trip.
    """

    editor: Editor  # read for the question shown, written by restore
    history_store: gr.BrowserState
    marks_store: gr.BrowserState
    history_wire: gr.Textbox  # the texts, as JSON text, read from history_store at load
    marks_wire: gr.Textbox  # the marks, as JSON text, read from marks_store at load
    sent: gr.Textbox  # the wire of ``relay``: the stores, the table, both lists, the diffs, pick_wire
    clicked: gr.Textbox  # the wire of ``click_relay`` (wire_table)
    compared_wire: gr.Textbox  # the wire of ``compare_relay``: the summary and the diffs
    pick_wire: gr.Textbox  # JSON text of the ids [A, B] the Compare lists show, after a pick; emptied by a redraw
    session: gr.State  # the History, read from history_store and marks_store at load
    shown_pair: gr.State  # the ids [A, B] whose diff the Compare tab shows
    picked: gr.State  # the ids [A, B] the Compare lists show (pick_a, pick_b)
    compare_open: gr.State  # whether the Compare tab is the one open
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
    diff_reasoning: gr.HTML  # diffing.to_html: one escaped string, painted by the page's CSS
    diff_response: gr.HTML
    scope: gr.Radio
    export_btn: gr.Button
    import_btn: gr.UploadButton
    export_out: gr.File
    clear_btn: gr.Button
    really_btn: gr.Button
    cancel_btn: gr.Button
    tabs: tuple  # attempts, compare, export
    lock: threading.Lock = field(default_factory=threading.Lock)  # a page's events may overlap
    diff_lock: threading.Lock = field(default_factory=threading.Lock)  # see compared
    max_upload: int = 16_000_000  # bytes an import may have (settings.max_upload)
    # Gradio's cache folder as the page was built (GRADIO_TEMP_DIR then, like Blocks.GRADIO_CACHE):
    # exports written there are the ones its delete_cache and our sweep remove
    cache_dir: str = field(default_factory=get_upload_folder)
    tabs_box: gr.Tabs | None = None  # the three tabs' container, for opening one (guided demo)
    # what ↩ also shows: (updates for an attempt, their components), added by other parts (on_restore)
    restore_hooks: list = field(default_factory=list)
    relay: Relay = field(init=False)
    compare_relay: Relay = field(init=False)
    click_relay: Relay | None = None  # made by wire_table, once every hook is in

    def __post_init__(self):
        # One wire per kind of event: a wire's browser step reads it some awaits after its event
        # ended, so an event of another kind that wrote the same wire meanwhile would have its
        # text applied by that step, and this one's lost (two events of one kind write the same
        # targets: the later text holds all of it).
        self.relay = Relay(self.sent, [self.history_store, self.marks_store, self.table, self.pick_a,
                                       self.pick_b, self.compare_summary, self.diff_reasoning,
                                       self.diff_response, self.pick_wire])
        self.compare_relay = Relay(self.compared_wire, [self.compare_summary, self.diff_reasoning,
                                                        self.diff_response])

    @property
    def list_in(self) -> list:
        """What decides the attempts listed."""
        return [self.editor.question, self.editor.input, self.show_all]

    @property
    def view_in(self) -> list:
        """What decides the attempts listed and compared."""
        return [self.session, *self.list_in, self.picked, self.shown_pair, self.compare_open]

    @property
    def list_out(self) -> list:
        """What ``listing`` writes: the table and the Compare lists go out on ``sent``."""
        return [self.sent, self.listed_ids, self.picked]

    @property
    def compare_out(self) -> list:
        """What ``compared`` writes for a Compare event (``compare_routed``): the summary and the
        diffs go out on ``compared_wire``."""
        return [self.compared_wire, self.shown_pair]

    @property
    def view_out(self) -> list:
        """Everything ``panel`` redraws (followed by ``applied``): the diffs go out on ``sent``
        with the list."""
        return [*self.list_out, self.shown_pair]

    def routed(self, updates: dict) -> dict:
        """``updates`` with the history (JSON bytes), the marks and the table rows moved onto
        ``sent`` (``relay``)."""
        if self.history_store in updates:
            updates[self.history_store] = orjson.Fragment(updates[self.history_store])
        return self.relay.routed(updates)

    def compare_routed(self, updates: dict) -> dict:
        """``updates`` of a Compare event (a pick, the tab opened) with the summary and the diffs
        moved onto ``compared_wire``; followed by ``compare_applied``."""
        return self.compare_relay.routed(updates)

    def compare_applied(self, event):
        return self.compare_relay.after(event)

    def on_restore(self, updates: Callable[[Attempt], dict], outputs: list) -> None:
        """Have ↩ on an attempt also apply ``updates(attempt)`` to ``outputs``; before wire_table."""
        self.restore_hooks.append((updates, outputs))

    # -- the attempts list -----------------------------------------------------------------------

    def listing(self, history, question, input, show_all, picked, newest: bool = False) -> tuple[dict, str, str]:
        """The table, the listed ids and the Compare picks, and the picks' ids; ``picked``: the
        ids [A, B] shown before; ``newest``: pick the two latest."""
        shown = wb.listed(history, question, input, show_all)
        ids = [x.id for x in shown]
        a, b = wb.picks(ids, *(picked or (None, None)), newest)
        options = wb.choices(shown)
        # pick_wire emptied: a pick of what it last held must change it again (wire, below)
        return {self.table: wb.table_rows(shown), self.listed_ids: ids, self.picked: [a, b],
                self.pick_a: gr.update(choices=options, value=a),
                self.pick_b: gr.update(choices=options, value=b), self.pick_wire: None}, a, b

    def compared(self, history, a, b, shown, open_: bool) -> dict:
        """The diff of the pair A → B, only while the Compare tab shows and when the pair is not
        the one on it already: a star or a note leaves it alone, and a run recorded while another
        tab is open diffs nothing until Compare is opened."""
        if not open_ or [a, b] == shown:
            return {}
        # One diff at a time: two events of one page (a pick and a redraw) could diff the same
        # pair at once, sharing the GIL (2 x 13-15 ms of CPU, up to 0.5 s of wall time an event
        # under load, when a pick started two); in turn, the second finds it in wb.compare's cache.
        with self.diff_lock:
            summary, diff_r, diff_a = wb.compare(history, a, b)
        return {self.compare_summary: summary, self.diff_reasoning: to_html(diff_r),
                self.diff_response: to_html(diff_a), self.shown_pair: [a, b]}

    def panel(self, history, question, input, show_all, picked, shown, open_, newest: bool = False) -> dict:
        """Listing and diff, where the diff is computed from the history in hand, rather than by the
        picks' change events: those could run before the browser holds the new picks."""
        updates, a, b = self.listing(history, question, input, show_all, picked, newest)
        return {**updates, **self.compared(history, a, b, shown, open_)}

    def rows(self, history, question, input, show_all) -> list[list]:
        """The table alone, for a change of marks: the list and its picks stay as they are. Rows,
        not a gr.Dataframe: an update object is built into a component twice more by Gradio
        (~20 ms at 200 rows), plain rows are only postprocessed (the headers never change)."""
        return wb.table_rows(wb.listed(history, question, input, show_all))

    def load_history(self, text, marks_text, question, input, show_all, picked):
        history, warning = History.from_data(wb.read_stored(text))
        history.apply_marks(wb.read_stored(marks_text))
        warning = " ".join(w for w in (warning, wb.storage_warning(history)) if w)
        if warning:
            gr.Warning(warning)
        return self.routed({self.session: history, self.history_wire: None, self.marks_wire: None,
                            self.message: warning, **self.listing(history, question, input, show_all, picked)[0]})

    def redraw(self, history, question, input, show_all, picked, shown, open_):
        if history is None:
            return gr.skip()  # nothing to change (an empty dict would be one value)
        return self.routed(self.panel(history, question, input, show_all, picked, shown, open_))

    def record(self, history, origin_value, question, input, show_all, picked, shown, open_,
               request: gr.Request):
        state = self.editor.runner.finished(request.session_hash or "")
        if state is None:  # nothing finished (the run failed before it started)
            return gr.skip()
        with self.lock:
            history = held(history)
            history.add(wb.attempt_from_run(state, origin_value))
            stored, warning = wb.stored_json(history)
        if warning:
            gr.Warning(warning)
        return self.routed({self.history_store: stored,
                            self.origin: wb.origin_for(state) if state.reasoning_generated else origin_value,
                            **self.panel(history, question, input, show_all, picked, shown, open_, newest=True)})

    def on_table_select(self, history, ids, question, input, show_all, evt: gr.SelectData):
        """One click: ↩ restores into the editor, ★/✗ toggle, any other cell selects for a note;
        what shows goes out through ``click_relay``."""
        row, col = evt.index
        number = evt.row_value[wb.NUMBER_COL] if evt.row_value else None
        try:
            attempt_id = ids[len(ids) - int(number)] if number is not None else ids[row]
        except (IndexError, ValueError, TypeError):
            return gr.skip()
        history = held(history)
        try:
            attempt = history.get(attempt_id)
        except KeyError:
            return gr.skip()
        if col == wb.RESTORE_COL:
            updates = self.restore(attempt, len(ids) - ids.index(attempt_id))
            for hook, _ in self.restore_hooks:
                updates.update(hook(attempt))
        elif col in (wb.STAR_COL, wb.REJECT_COL):
            with self.lock:
                if col == wb.STAR_COL:
                    history.star(attempt_id, not attempt.starred)
                else:
                    history.reject(attempt_id, not attempt.rejected)
                marks = history.marks_to_data()
            updates = {self.marks_store: marks, self.table: self.rows(history, question, input, show_all)}
        else:
            n = len(ids) - ids.index(attempt_id)
            updates = {self.selected: attempt_id,
                       self.note: gr.update(value=attempt.note, label=f"Note on attempt #{n} / 試行 #{n} のメモ")}
        return self.click_relay.routed(updates)

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

    def save_note(self, history, attempt_id, text, question, input, show_all):
        history = held(history)
        with self.lock:
            try:
                history.set_note(attempt_id or "", (text or "").strip())
            except KeyError:
                gr.Warning("Select an attempt in the list first (click a cell of its row). / "
                           "先に一覧の試行を選択してください。")
                return gr.skip()
            marks = history.marks_to_data()
        return self.routed({self.marks_store: marks, self.table: self.rows(history, question, input, show_all)})

    def show_compare(self, history, wire, shown):
        """A pick in a Compare list (``wire``: the JSON text of both lists' ids, which their browser
        step wrote; null once a redraw emptied it)."""
        try:
            a, b = orjson.loads(wire or "null")
        except (orjson.JSONDecodeError, TypeError, ValueError):
            return gr.skip()
        return self.compare_routed({self.picked: [a, b], **self.compared(held(history), a, b, shown, True)})

    def open_compare(self, history, picked, shown) -> dict:
        return {self.compare_open: True, **self.compared(held(history), *(picked or (None, None)), shown, True)}

    # -- export, import, clear -------------------------------------------------------------------

    def export(self, history, scope):
        directory = hosting.export_directory(self.cache_dir)
        try:
            paths, summary = wb.export_files(held(history), scope == "starred", directory)
        except ValueError as error:
            gr.Warning(str(error))
            return None, str(error)
        return [str(p) for p in paths], summary

    def import_file(self, path, history, question, input, show_all, picked, shown, open_):
        name = Path(path).name if path else "?"
        history = held(history)
        try:
            data = read_upload(path, self.max_upload)
            with self.lock:
                summary = wb.import_into(history, data)
                stored = wb.stored_json(history)[0]
        except (ImportFormatError, UploadRefused, OSError) as error:
            return {self.message: import_refused(name, error)}
        if not wb.listed(history, question, input, show_all):
            summary += " Tick “All questions” to see them. / 「すべての質問」で表示されます。"
        return self.routed({self.history_store: stored, self.message: summary,
                            **self.panel(history, question, input, show_all, picked, shown, open_)})

    @staticmethod
    def ask_clear(history):
        n = len(held(history).attempts)
        return (gr.Button(visible=False), gr.Button(visible=True), gr.Button(visible=True),
                f"This deletes all {n} attempts of every question from this browser; export first to "
                f"keep them. / {n} 件の試行をすべて削除します。")

    @staticmethod
    def cancel_clear():
        return gr.Button(visible=True), gr.Button(visible=False), gr.Button(visible=False), ""

    def clear(self, history, question, input, show_all, shown, open_):
        history = held(history)
        with self.lock:
            history.clear()
            stored, marks = wb.stored_json(history)[0], history.marks_to_data()
        return self.routed({self.history_store: stored, self.marks_store: marks,
                            self.clear_btn: gr.Button(visible=True), self.really_btn: gr.Button(visible=False),
                            self.cancel_btn: gr.Button(visible=False),
                            self.message: "History cleared. / 履歴を消去しました。",
                            **self.panel(history, question, input, show_all, None, shown, open_)})

    # -- wiring ----------------------------------------------------------------------------------

    def applied(self, event):
        """After an event that may have written ``sent``: its parts to their components in the
        browser (``relay``). Returns that step."""
        return self.relay.after(event)

    def record_after(self, event):
        """Add the run that ``event`` finished to the history, and redraw; returns the last step."""
        return self.applied(event.success(self.record, [self.session, self.origin, *self.view_in[1:]],
                                          [self.origin, *self.view_out], **PRIVATE))

    def load_after(self, event_trigger) -> None:
        """Read the stored history when the page loads (``event_trigger``: demo.load)."""
        self.applied(event_trigger(None, [self.history_store, self.marks_store], [self.history_wire, self.marks_wire],
                                   js=STORED, **PRIVATE).then(
            self.load_history, [self.history_wire, self.marks_wire, *self.list_in, self.picked],
            [self.session, self.history_wire, self.marks_wire, *self.list_out, self.message], **PRIVATE))

    def wire(self) -> None:
        e, view_in, view_out, list_in = self.editor, self.view_in, self.view_out, self.list_in
        self.applied(gr.on([e.question.change, e.input.change, self.show_all.change], self.redraw, view_in,
                           view_out, trigger_mode="always_last", **PRIVATE))
        self.applied(gr.on([self.save_note_btn.click, self.note.submit], self.save_note,
                           [self.session, self.selected, self.note, *list_in], self.sent, **PRIVATE))
        # A pick: a browser step writes both lists' ids on pick_wire, whose change starts the one
        # server event. The list fires its input event twice (on the pick, and again from its blur
        # handler as it closes): the second writes the same text, which changes nothing. Both ids,
        # not the one picked: a change that comes while the event runs is run once it ends
        # (always_last), reading the wire then, so the wire must hold the whole pair. No server
        # event reads the lists themselves (see the class docstring).
        for pick in (self.pick_a, self.pick_b):
            pick.input(None, [self.pick_a, self.pick_b], self.pick_wire, js="(a, b) => JSON.stringify([a, b])",
                       **PRIVATE)
        self.compare_applied(self.pick_wire.change(
            self.show_compare, [self.session, self.pick_wire, self.shown_pair], [self.picked, *self.compare_out],
            trigger_mode="always_last", **PRIVATE))
        attempts_tab, compare_tab, export_tab = self.tabs
        self.compare_applied(compare_tab.select(
            lambda history, picked, shown: self.compare_routed(self.open_compare(history, picked, shown)),
            [self.session, self.picked, self.shown_pair], [self.compare_open, *self.compare_out], **PRIVATE))
        gr.on([attempts_tab.select, export_tab.select], lambda: False, None, self.compare_open, **PRIVATE)

        self.export_btn.click(self.export, [self.session, self.scope], [self.export_out, self.message],
                              **PRIVATE)
        self.applied(self.import_btn.upload(self.import_file, [self.import_btn, *view_in],
                                            [self.message, *view_out], **PRIVATE))
        confirm = [self.clear_btn, self.really_btn, self.cancel_btn, self.message]
        self.clear_btn.click(self.ask_clear, self.session, confirm, **PRIVATE)
        self.cancel_btn.click(self.cancel_clear, None, confirm, **PRIVATE)
        self.applied(self.really_btn.click(
            self.clear, [self.session, *list_in, self.shown_pair, self.compare_open],
            [*confirm, *view_out], **PRIVATE))

    def wire_table(self) -> None:
        """The table's clicks, once every part has added what ↩ also shows (on_restore).

        ★, ✗ and a note change two or three components, ↩ a dozen in the editor: all of them go
        out through ``click_relay``, so that the event's outputs are that wire and States alone
        (relay.py: a ★ no longer has Gradio rebuild the 18 components it leaves alone)."""
        e = self.editor
        hooked = [c for _, outputs in self.restore_hooks for c in outputs]
        self.click_relay = Relay(self.clicked, [
            self.marks_store, self.table, self.note, e.question, e.input, e.mode, e.prompt_format,
            e.reasoning, e.response, e.stats, e.prompt, *e.settings, *(c for c in hooked if not c.stateful)])
        self.click_relay.after(self.table.select(
            self.on_table_select, [self.session, self.listed_ids, *self.list_in],
            [self.clicked, self.selected, self.origin, *(c for c in hooked if c.stateful)], **PRIVATE))


def _attempts_tab() -> tuple:
    with gr.Tab(t("tab_attempts"), id="attempts", elem_id="tab-attempts") as tab:
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
    return tab, (show_all, table, note, save_note_btn)


def _compare_tab() -> tuple:
    with gr.Tab(t("tab_compare"), id="compare", elem_id="tab-compare") as tab:
        with gr.Row():
            pick_a = gr.Dropdown([], label=t("compare_a"), elem_id="compare-a")
            pick_b = gr.Dropdown([], label=t("compare_b"), elem_id="compare-b")
        compare_summary = gr.Markdown(elem_id="compare-summary")
        gr.Markdown(t("compare_help"), elem_id="diff-legend", elem_classes="diff-legend")
        with gr.Row(equal_height=False):
            diff_reasoning, diff_response = (
                gr.HTML("", label=t(key), show_label=True, container=True, padding=True,
                        js_on_load=None, elem_id=key.replace("_", "-"), elem_classes="diff")
                for key in ("diff_reasoning", "diff_response"))
    return tab, (pick_a, pick_b, compare_summary, diff_reasoning, diff_response)


def _export_tab() -> tuple:
    with gr.Tab(t("tab_export"), id="export", elem_id="tab-export") as tab:
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
    return tab, (scope, export_btn, import_btn, export_out, clear_btn, really_btn, cancel_btn)


def build_workbench(editor: Editor, max_upload: int) -> Workbench:
    """Lay the three tabs out under the editor and wire their own events."""
    stores = (gr.BrowserState(History().to_data(), storage_key=wb.HISTORY_KEY, secret=wb.history_secret()),
              gr.BrowserState(History().marks_to_data(), storage_key=wb.MARKS_KEY, secret=wb.history_secret()),
              *(gr.Textbox(None, visible=False) for _ in range(6)))
    # history_store, marks_store, history_wire, marks_wire, sent, clicked, compared_wire, pick_wire
    session = (gr.State(None), gr.State(None), gr.State([None, None]), gr.State(False))
    # session, shown_pair, picked, compare_open
    states = (gr.State([]), gr.State(None), gr.State(None))  # listed_ids, selected, origin
    message = gr.Markdown(elem_id="workbench-message")
    with gr.Tabs(elem_id="workbench") as tabs_box:
        tabs, parts = zip(_attempts_tab(), _compare_tab(), _export_tab())
    bench = Workbench(editor, *stores, *session, *states, message, *(p for part in parts for p in part),
                      tabs=tabs, max_upload=max_upload, tabs_box=tabs_box)
    bench.wire()
    return bench
