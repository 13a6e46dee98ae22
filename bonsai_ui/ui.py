"""The page: layout and event wiring only. What the buttons do lives in ``runs.py`` (runs) and
``workbench.py`` (attempts, interventions, compare, export).

Two events are public API endpoints (``generate``, ``regenerate``), documented in the README; every
other event is UI plumbing and is kept out of the API.

Labels are gr.I18n keys, shown in English or Japanese after the browser's language. Messages made
on the server (errors, notices, stats) stay bilingual, since the server does not know the language.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from .attempts import History
from .export import ImportFormatError
from .prompts import MODES, examples, format_names, interventions, load_format
from .runs import Runner, UserError
from .settings import GENERATION_BOUNDS, AppSettings, GenerationSettings, SettingsError
from .uploads import UploadRefused, read_upload
from . import hosting
from . import workbench as wb
from . import zerogpu

TITLE = "BONSAI Reasoning Editor"

# Every label of the page: key -> (English, Japanese).
TEXTS: dict[str, tuple[str, str]] = {
    "intro": (f"# 🌳 {TITLE}\nAsk a question, watch the model **reason** and then **respond**. Edit "
              "the reasoning and regenerate: the answer follows the reasoning.",
              "# 🌳 BONSAI 推論エディタ\n質問すると、モデルが**推論**してから**回答**します。推論を書き換えて"
              "回答を再生成すると、回答が推論に従って変わります。"),
    "question": ("Question", "質問"),
    "question_placeholder": ("Type a question, or click an example below", "質問を入力するか、下の例をクリック"),
    "input": ("Input (optional)", "入力（任意）"),
    "mode": ("Mode", "モード"),
    "mode_reasoning": ("reasoning: the model reasons, then answers", "推論: 推論してから回答"),
    "mode_special": ("special: answer from the reasoning below", "特別: 下の推論から回答"),
    "mode_vanilla": ("vanilla: answer directly, no reasoning", "通常: 推論なしで回答"),
    "format": ("Prompt format", "プロンプト形式"),
    "format_info": ("alpaca: the seed's fine-tuned models; think: chat models with <think> tags",
                    "alpaca: 元記事のファインチューニング済みモデル、think: <think>タグのチャットモデル"),
    "generate": ("Generate ▶", "生成 ▶"),
    "stop": ("Stop ■", "停止 ■"),
    "reasoning": ("Reasoning", "推論"),
    "reasoning_info": ("Edit it, then regenerate the response or continue the reasoning",
                       "編集してから、回答を再生成するか推論を続けます"),
    "regenerate": ("Regenerate response from this reasoning ↻", "この推論から回答を再生成 ↻"),
    "continue": ("Continue reasoning ⇢", "推論を続ける ⇢"),
    "response": ("**Response**", "**回答**"),
    "settings": ("Generation settings", "生成設定"),
    "prompt_preview": ("Prompt preview", "プロンプト"),
    "prompt": ("Exact text for the model: a preview as you type, what was sent after a run",
               "モデルに送るテキスト（入力中はプレビュー、実行後は送ったもの）"),
    "examples": ("Examples from the seed document (one click loads them)", "例題（クリックで読み込み）"),
    "tab_attempts": ("Attempts", "試行"),
    "tab_compare": ("Compare", "比較"),
    "tab_export": ("Export / import", "書き出し・読み込み"),
    "attempts_help": ("Every run is kept in this browser, newest first. Click **↩** to restore an "
                      "attempt into the editor, **★** to star it, **✗** to reject it, any other cell "
                      "to select it and write a note.",
                      "実行ごとにこのブラウザに保存されます（新しい順）。**↩** でエディタに戻す、**★** "
                      "でスター、**✗** で却下、その他のセルで選択してメモを書けます。"),
    "all_questions": ("All questions", "すべての質問"),
    "note": ("Note on the selected attempt", "選択した試行のメモ"),
    "note_placeholder": ("Click a cell of an attempt's row, then write here",
                         "試行の行のセルをクリックしてから、ここに書きます"),
    "save_note": ("Save note", "メモを保存"),
    "compare_a": ("A (before)", "A（前）"),
    "compare_b": ("B (after)", "B（後）"),
    "compare_help": ("Green: added in B. Red, struck through: removed from A.",
                     "緑: Bで追加、赤（取り消し線）: Aから削除"),
    "diff_reasoning": ("Reasoning: A → B", "推論: A → B"),
    "diff_response": ("Response: A → B", "回答: A → B"),
    "scope": ("Attempts for Alpaca and chat files", "Alpaca・チャット形式に含める試行"),
    "scope_starred": ("starred ★", "スター付き ★"),
    "scope_all": ("all but rejected ✗", "却下 ✗ 以外すべて"),
    "export": ("Export JSONL (Alpaca, chat messages, DPO)", "JSONLに書き出す（Alpaca・チャット・DPO）"),
    "import": ("Import JSONL", "JSONLを読み込む"),
    "downloads": ("Exported files", "書き出したファイル"),
    "clear": ("Clear history…", "履歴を消去…"),
    "really_clear": ("Really clear all attempts?", "本当にすべて消去しますか？"),
    "cancel": ("Cancel", "キャンセル"),
}
_JA_SETTING_INFO = {
    "max_new_tokens": "段階ごと: 推論と回答がそれぞれこのトークン数まで",
    "temperature": "0 = 貪欲法: 同じ入力なら同じ出力。回答の変化は偶然ではなく編集によるもの",
    "top_k": "0 = 無効",
    "seed": "-1 = 実行ごとに新しいランダムなシード",
}
for _name, _b in GENERATION_BOUNDS.items():
    _en, _, _ja = _b.label.partition(" / ")
    TEXTS[f"setting.{_name}"] = (_en, _ja or _en)
    if _b.info:
        TEXTS[f"setting_info.{_name}"] = (_b.info, _JA_SETTING_INFO.get(_name, _b.info))
for _item in interventions():
    TEXTS[f"intervention.{_item.id}"] = (_item.label_en, _item.label_ja)

I18N = gr.I18n(en={k: en for k, (en, _) in TEXTS.items()}, ja={k: ja for k, (_, ja) in TEXTS.items()})
t = I18N  # t("key"): a label the browser translates

MODE_CHOICES = [(t("mode_reasoning"), "reasoning"), (t("mode_special"), "special"),
                (t("mode_vanilla"), "vanilla")]
assert sorted(v for _, v in MODE_CHOICES) == sorted(MODES)

CSS = """
#stats { font-size: 0.9em; opacity: 0.85; }
.mono textarea { font-family: ui-monospace, monospace; font-size: 0.85em; }
#response-box { min-height: 6em; border: 1px solid var(--border-color-primary);
                border-radius: var(--radius-lg); padding: var(--spacing-lg); }
#interventions button { flex: 0 1 auto; }
.diff .textfield { display: block; font-size: 0; line-height: 1.7; word-break: normal; }
.diff .token-container, .diff .token, .diff .token.highlighted { display: inline; margin: 0; padding: 0; }
.diff .text { font-size: var(--text-md); white-space: pre-wrap; background-color: inherit; }
.diff .line-break { display: block; }
.diff .token[style*="254, 202, 202"] .text { text-decoration: line-through; }
"""
# Explicit colours: the CSS above strikes through the token whose background is the "-" colour
# (HighlightedText marks a category only by its inline style).
DIFF_COLORS = {"+": "#bbf7d0", "-": "#fecaca"}

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


def _settings(max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed):
    try:
        return GenerationSettings.checked(
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
            repetition_penalty=repetition_penalty, seed=seed)
    except SettingsError as error:
        raise gr.Error(str(error), title="Setting out of range / 設定値が範囲外") from None


def _shown(states, *fields):
    """The run's states as the outputs of one event; bad input becomes a plain gr.Error."""
    try:
        for state in states:
            yield tuple(getattr(state, name) for name in fields)
    except UserError as error:
        raise gr.Error(str(error)) from None


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


def build_ui(runner: Runner, status: LoadStatus, default_format: "str | callable" = "alpaca",
             settings: AppSettings = AppSettings()) -> gr.Blocks:
    """``default_format`` may be a function: it is called once the model is ready (auto format).
    ``settings``: the upload limit and the temporary files' lifetime (hosting.py)."""
    formats = [(load_format(name).label, name) for name in format_names()]

    # -- runs ------------------------------------------------------------------------------------

    def generate(question: str, input: str, mode: str, prompt_format: str, reasoning: str,
                 max_new_tokens: float, temperature: float, top_p: float, top_k: float,
                 repetition_penalty: float, seed: float, request: gr.Request):
        settings = _settings(max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        yield from _shown(runner.generate(question, input or "", mode, prompt_format, reasoning or "",
                                          settings, request.session_hash or ""),
                          "reasoning", "response", "stats", "prompt")

    def regenerate(question: str, input: str, reasoning: str, prompt_format: str,
                   max_new_tokens: float, temperature: float, top_p: float, top_k: float,
                   repetition_penalty: float, seed: float, request: gr.Request):
        settings = _settings(max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        yield from _shown(runner.regenerate(question, input or "", reasoning or "", prompt_format,
                                            settings, request.session_hash or ""),
                          "response", "stats", "prompt")

    def continue_reasoning(question: str, input: str, reasoning: str, prompt_format: str,
                           max_new_tokens: float, temperature: float, top_p: float, top_k: float,
                           repetition_penalty: float, seed: float, request: gr.Request):
        settings = _settings(max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        yield from _shown(runner.continue_reasoning(question, input or "", reasoning or "", prompt_format,
                                                    settings, request.session_hash or ""),
                          "reasoning", "response", "stats", "prompt")

    # On a ZeroGPU Space each run borrows the GPU for a duration that fits its max new tokens.
    generate, regenerate, continue_reasoning = (
        zerogpu.gpu(f) for f in (generate, regenerate, continue_reasoning))

    def stop(request: gr.Request):
        runner.stop(request.session_hash or "")

    def preview(question, input, mode, prompt_format, reasoning):
        try:
            text = runner.preview(question or "", input or "", mode, prompt_format, reasoning or "")
        except Exception as error:  # noqa: BLE001 - a preview must never break the page
            text = f"(no preview: {error})"
        return text

    def refresh(seen_ready: bool):
        ready = status.ready and runner.engine is not None
        fmt = gr.Dropdown()
        if ready and not seen_ready:
            fmt = gr.Dropdown(value=default_format() if callable(default_format) else default_format)
        return status.markdown(runner), gr.Timer(active=not ready and not status.error), fmt, ready

    # -- the attempts list: every handler that changes the history redraws it ------------------

    def panel(history: History, question, input, show_all, a, b, newest: bool = False):
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
        return {table: gr.Dataframe(value=wb.table_rows(shown), headers=wb.HEADERS),
                listed_ids: ids,
                pick_a: gr.Dropdown(choices=options, value=a),
                pick_b: gr.Dropdown(choices=options, value=b),
                compare_summary: summary, diff_reasoning: diff_r, diff_response: diff_a}

    def load_history(data, question, input, show_all, a, b):
        history, warning = History.from_data(data)
        warning = " ".join(w for w in (warning, wb.storage_warning(history.to_data())) if w)
        if warning:
            gr.Warning(warning)
        return {**panel(history, question, input, show_all, a, b), message: warning}

    def redraw(data, question, input, show_all, a, b):
        return panel(History.from_data(data)[0], question, input, show_all, a, b)

    def record(data, origin_value, question, input, show_all, a, b, request: gr.Request):
        state = runner.finished(request.session_hash or "")
        if state is None:  # nothing finished (the run failed before it started)
            return {}
        history, _ = History.from_data(data)
        history.add(wb.attempt_from_run(state, origin_value))
        stored = history.to_data()
        if warning := wb.storage_warning(stored):
            gr.Warning(warning)
        return {history_store: stored,
                origin: wb.origin_for(state) if state.reasoning_generated else origin_value,
                **panel(history, question, input, show_all, a, b, newest=True)}

    def on_table_select(data, ids, question, input, show_all, a, b, evt: gr.SelectData):
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
            return restore(attempt, len(ids) - ids.index(attempt_id))
        if col in (wb.STAR_COL, wb.REJECT_COL):
            if col == wb.STAR_COL:
                history.star(attempt_id, not attempt.starred)
            else:
                history.reject(attempt_id, not attempt.rejected)
            return {history_store: history.to_data(), **panel(history, question, input, show_all, a, b)}
        n = len(ids) - ids.index(attempt_id)
        return {selected: attempt_id,
                note: gr.Textbox(value=attempt.note, label=f"Note on attempt #{n} / 試行 #{n} のメモ")}

    def restore(attempt, number: int) -> dict:
        """The editor as it was for this attempt, settings (with the seed used) included, so that
        Regenerate repeats it; a continued run's reasoning is restored for special mode, which
        answers from it as it stands."""
        restored_mode = attempt.mode if attempt.mode in MODES else "special"
        updates = {question_box: attempt.question, input_box: attempt.input, mode: restored_mode,
                   prompt_format: attempt.prompt_format, reasoning: attempt.reasoning,
                   response: attempt.response,
                   stats: f"↩ attempt #{number} restored / 試行 #{number} を復元 · {attempt.model}",
                   prompt_code: preview(attempt.question, attempt.input, restored_mode,
                                        attempt.prompt_format, attempt.reasoning),
                   origin: wb.origin(attempt.question, attempt.input, attempt.reasoning_generated)}
        try:
            values = GenerationSettings.checked(**{k: v for k, v in attempt.settings.items()
                                                   if k in GENERATION_BOUNDS})
        except SettingsError:  # stored under other bounds: keep the current settings
            return updates
        return {**updates, **{slider: getattr(values, slider.elem_id) for slider in sliders}}

    def save_note(data, attempt_id, text, question, input, show_all, a, b):
        history, _ = History.from_data(data)
        try:
            history.set_note(attempt_id or "", (text or "").strip())
        except KeyError:
            gr.Warning("Select an attempt in the list first (click a cell of its row). / "
                       "先に一覧の試行を選択してください。")
            return {}
        return {history_store: history.to_data(), **panel(history, question, input, show_all, a, b)}

    def show_compare(data, a, b):
        return wb.compare(History.from_data(data)[0], a, b)

    # -- interventions ---------------------------------------------------------------------------

    def intervene(item):
        def apply(reasoning_text, question):
            return wb.apply_intervention(item, reasoning_text or "", question or "")
        return apply

    def remember_selection(evt: gr.SelectData):
        start, end = evt.index
        return {"index": [start, end], "value": evt.value} if end > start else None

    def cut(reasoning_text, selection_value):
        try:
            new = wb.cut_at_selection(reasoning_text or "", selection_value)
        except ValueError as error:
            gr.Warning(str(error))
            return gr.skip(), gr.skip()
        if new == (reasoning_text or "").rstrip():
            gr.Info("Nothing follows that sentence. / その文の後には何もありません。")
        return new, None

    # -- export, import, clear -------------------------------------------------------------------

    def export(data, scope):
        directory = hosting.export_directory(demo.GRADIO_CACHE)
        try:
            paths, summary = wb.export_files(History.from_data(data)[0], scope == "starred", directory)
        except ValueError as error:
            gr.Warning(str(error))
            return None, str(error)
        return [str(p) for p in paths], summary

    def import_file(path, data, question, input, show_all, a, b):
        name = Path(path).name if path else "?"
        history, _ = History.from_data(data)
        try:
            summary = wb.import_into(history, read_upload(path, settings.max_upload))
        except (ImportFormatError, UploadRefused, OSError) as error:
            text = f"Could not import {name}: {error}. Nothing was imported. / 読み込めませんでした。"
            gr.Warning(text)
            return {message: text}
        if not wb.listed(history, question, input, show_all):
            summary += " Tick “All questions” to see them. / 「すべての質問」で表示されます。"
        return {history_store: history.to_data(), message: summary,
                **panel(history, question, input, show_all, a, b)}

    def ask_clear(data):
        n = len(History.from_data(data)[0].attempts)
        return (gr.Button(visible=False), gr.Button(visible=True), gr.Button(visible=True),
                f"This deletes all {n} attempts of every question from this browser; export first to "
                f"keep them. / {n} 件の試行をすべて削除します。")

    def cancel_clear():
        return gr.Button(visible=True), gr.Button(visible=False), gr.Button(visible=False), ""

    def clear(question, input, show_all):
        history = History()
        return {history_store: history.to_data(), clear_btn: gr.Button(visible=True),
                really_btn: gr.Button(visible=False), cancel_btn: gr.Button(visible=False),
                message: "History cleared. / 履歴を消去しました。",
                **panel(history, question, input, show_all, None, None)}

    # -- layout ----------------------------------------------------------------------------------

    with gr.Blocks(title=TITLE, **hosting.blocks_kwargs(settings)) as demo:
        gr.Markdown(t("intro"))
        model_status = gr.Markdown(status.markdown(runner), elem_id="model-status")
        timer = gr.Timer(0.5)
        seen_ready = gr.State(False)
        history_store = gr.BrowserState(History().to_data(), storage_key=wb.HISTORY_KEY,
                                        secret=wb.history_secret())
        listed_ids = gr.State([])  # the ids of the attempts in the table, in its order
        selected = gr.State(None)  # the attempt whose note is being edited
        origin = gr.State(None)  # the reasoning the model wrote last (workbench.origin_for)
        selection = gr.State(None)  # the last text selected in the reasoning box
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                question_box = gr.Textbox(label=t("question"), lines=4, elem_id="question",
                                          placeholder=t("question_placeholder"))
                input_box = gr.Textbox(label=t("input"), lines=1, elem_id="input")
                mode = gr.Radio(MODE_CHOICES, value="reasoning", label=t("mode"), elem_id="mode")
                prompt_format = gr.Dropdown(
                    formats, value=default_format if isinstance(default_format, str) else "alpaca",
                    label=t("format"), elem_id="format", info=t("format_info"))
                with gr.Row():
                    generate_btn = gr.Button(t("generate"), variant="primary", elem_id="generate")
                    stop_btn = gr.Button(t("stop"), variant="stop", elem_id="stop")
                with gr.Accordion(t("settings"), open=False, elem_id="settings-accordion"):
                    sliders = []
                    for name, b in GENERATION_BOUNDS.items():
                        info = t(f"setting_info.{name}") if b.info else None
                        if name == "seed":
                            sliders.append(CheckedNumber(b.default, label=t(f"setting.{name}"), info=info,
                                                         precision=0, minimum=b.minimum,
                                                         maximum=b.maximum, elem_id=name))
                        else:
                            sliders.append(CheckedSlider(b.minimum, b.maximum, value=b.default, step=b.step,
                                                         label=t(f"setting.{name}"), info=info,
                                                         elem_id=name))
            with gr.Column(scale=3, min_width=360):
                reasoning = gr.Textbox(
                    label=t("reasoning"), info=t("reasoning_info"),
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
                    prompt_code = gr.Textbox(label=t("prompt"), lines=12, max_lines=40, interactive=False,
                                             elem_id="prompt", elem_classes="mono", buttons=["copy"])
        # Examples must know the reasoning box, which is laid out in the right column.
        with gr.Row():
            ex = examples()
            gr.Examples(
                [[e.question, e.input, e.mode, e.reasoning] for e in ex],
                inputs=[question_box, input_box, mode, reasoning], label=t("examples"),
                example_labels=[e.title for e in ex], api_visibility="private")

        message = gr.Markdown(elem_id="workbench-message")
        with gr.Tabs(elem_id="workbench"):
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

        # -- wiring ------------------------------------------------------------------------------
        private = dict(api_visibility="private", concurrency_limit=None, show_progress="hidden")
        view_in = [question_box, input_box, show_all, pick_a, pick_b]
        view_out = [table, listed_ids, pick_a, pick_b, compare_summary, diff_reasoning, diff_response]
        record_args = dict(fn=record, inputs=[history_store, origin, *view_in],
                           outputs=[history_store, origin, *view_out], **private)
        run_settings = sliders
        model_run = dict(concurrency_id="model", concurrency_limit=1)

        generate_btn.click(
            generate, [question_box, input_box, mode, prompt_format, reasoning, *run_settings],
            [reasoning, response, stats, prompt_code], api_name="generate", **model_run
        ).success(**record_args)
        regenerate_btn.click(
            regenerate, [question_box, input_box, reasoning, prompt_format, *run_settings],
            [response, stats, prompt_code], api_name="regenerate", **model_run
        ).success(**record_args)
        continue_btn.click(
            continue_reasoning, [question_box, input_box, reasoning, prompt_format, *run_settings],
            [reasoning, response, stats, prompt_code], api_visibility="private", **model_run
        ).success(**record_args)
        stop_btn.click(stop, None, None, api_visibility="private", concurrency_limit=None, queue=False)
        preview_args = dict(fn=preview, inputs=[question_box, input_box, mode, prompt_format, reasoning],
                            outputs=prompt_code, **private)
        # always_last: keystrokes typed while a preview is pending are previewed when it is done.
        gr.on([question_box.input, input_box.input, mode.input, prompt_format.input, reasoning.input],
              trigger_mode="always_last", **preview_args)

        for item in interventions():
            if item.where == "cut":
                event = intervention_btns[item.id].click(cut, [reasoning, selection], [reasoning, selection],
                                                         **private)
            else:
                event = intervention_btns[item.id].click(intervene(item), [reasoning, question_box],
                                                         reasoning, **private)
            event.then(**preview_args)
        # always_last: a drag fires many select events, and only the final selection counts.
        reasoning.select(remember_selection, None, selection, trigger_mode="always_last", **private)

        gr.on([question_box.change, input_box.change, show_all.change], redraw,
              [history_store, *view_in], view_out, trigger_mode="always_last", **private)
        table.select(on_table_select, [history_store, listed_ids, *view_in],
                     [history_store, *view_out, selected, note, origin, question_box, input_box, mode,
                      prompt_format, reasoning, response, stats, prompt_code, *sliders], **private)
        gr.on([save_note_btn.click, note.submit], save_note,
              [history_store, selected, note, *view_in], [history_store, *view_out], **private)
        gr.on([pick_a.input, pick_b.input], show_compare, [history_store, pick_a, pick_b],
              [compare_summary, diff_reasoning, diff_response], trigger_mode="always_last", **private)

        export_btn.click(export, [history_store, scope], [export_out, message], **private)
        import_btn.upload(import_file, [import_btn, history_store, *view_in],
                          [history_store, message, *view_out], **private)
        clear_btn.click(ask_clear, history_store, [clear_btn, really_btn, cancel_btn, message], **private)
        cancel_btn.click(cancel_clear, None, [clear_btn, really_btn, cancel_btn, message], **private)
        really_btn.click(clear, [question_box, input_box, show_all],
                         [history_store, clear_btn, really_btn, cancel_btn, message, *view_out], **private)

        refresh_args = dict(fn=refresh, inputs=seen_ready,
                            outputs=[model_status, timer, prompt_format, seen_ready], **private)
        timer.tick(**refresh_args)
        demo.load(**refresh_args)
        demo.load(load_history, [history_store, *view_in], [*view_out, message], **private)
    return demo


def launch_kwargs(settings: AppSettings = AppSettings()) -> dict:
    """Theme, CSS and translations go to launch() in Gradio 6, with the upload limit and password
    (hosting.py). System fonts: a Space may have no font CDN."""
    theme = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                           font_mono=["ui-monospace", "monospace"])
    return dict(theme=theme, css=CSS, i18n=I18N, **hosting.launch_kwargs(settings))
