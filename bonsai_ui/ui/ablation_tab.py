"""The ablation map under the editor: one button regenerates the response once per sentence of the
reasoning with that sentence removed (or replaced), and shows the reasoning with each sentence
shaded by how much the response moved; a click on a sentence shows its response as a diff against
the original. What it computes lives in ``ablation/sweep.py``; the named endpoint ``/ablate`` is here.

The map is kept with the attempt it records (``Attempt.ablation``), so restoring that attempt (↩)
shows the map again without a rerun, after a reload too.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ..hosting import public as hosting
from ..ablation.sweep import (Ablator, AblationRequest, Result, attempts_jsonl, export_rows, replacements,
                        result_attempt, rows_csv, rows_jsonl)
from ..workbench.attempts import Attempt
from ..workbench.diffing import Segment, diff_texts
from ..editor.runs import UserError
from ..core.settings import GenerationSettings
from ..workbench.actions import has_japanese, stored_json
from .common import PRIVATE, checked_settings
from .editor import Editor
from .texts import t
from .workbench_tabs import Workbench, held

# A click anywhere in the map: the sentence under it is sent as the event's data.
CLICK_JS = ("element.addEventListener('click', (e) => { const s = e.target.closest('[data-unit]'); "
            "if (s) trigger('click', {unit: Number(s.dataset.unit)}); });")
# Scoped to each component by gr.HTML's css_template.
MAP_CSS = """
.abl-map { white-space: pre-wrap; line-height: 1.9; font-size: var(--text-md); }
.abl-unit { cursor: pointer; border-radius: 3px; padding: 1px 0; }
.abl-unit:hover { outline: 2px solid var(--color-accent); }
.abl-unit.abl-picked { outline: 2px solid var(--body-text-color); }
.abl-pending { opacity: 0.55; }
.abl-changed { font-weight: 600; }
"""
DETAIL_CSS = """
.abl-diff { white-space: pre-wrap; line-height: 1.7; }
ins { background: #bbf7d0; text-decoration: none; }
del { background: #fecaca; }
"""


def shade(share: float) -> str:
    """Red in proportion to the share of the response that changed: none is white."""
    return f"rgba(239, 68, 68, {0.08 + 0.62 * share:.2f})" if share > 0 else "transparent"


def map_html(result: Result | None, picked: int | None = None) -> str:
    """The reasoning, each unit a clickable span shaded by its change share; units not ablated
    (yet, or beyond the cap) are dimmed, those whose removal changed the final answer are bold."""
    if result is None:
        return ""
    text = result.reasoning
    out, at = [], 0
    for i, unit in enumerate(result.units, start=1):
        out.append(html.escape(text[at:unit.start]))
        row = result.row(i)
        classes = ["abl-unit"] + (["abl-pending"] if row is None else []) + \
            (["abl-changed"] if row and row.answer_changed else []) + (["abl-picked"] if i == picked else [])
        title = "not ablated" if row is None else (
            f"{row.change_share:.0%} of the response changed"
            + ("; final answer changed" if row.answer_changed else "")
            + ("; identical response" if row.identical else ""))
        style = f' style="background: {shade(row.change_share)}"' if row else ""
        out.append(f'<span class="{" ".join(classes)}" data-unit="{i}" data-share="'
                   f'{row.change_share if row else ""}" title="{html.escape(title)}"{style}>'
                   f"{html.escape(unit.text)}</span>")
        at = unit.end
    out.append(html.escape(text[at:]))
    return f'<div class="abl-map">{"".join(out)}</div>'


def diff_html(segments: list[Segment]) -> str:
    """A word diff as HTML: <ins> added, <del> removed (the Compare view's colours); the page's
    own renderer, since Compare's is a component of its tab."""
    tags = {"+": "ins", "-": "del"}
    parts = [f"<{tags[tag]}>{html.escape(text)}</{tags[tag]}>" if tag else html.escape(text)
             for text, tag in segments]
    return f'<div class="abl-diff">{"".join(parts)}</div>'


def detail_html(result: Result | None, index: int | None) -> str:
    """The picked unit's measures, and its response as a diff against the original's."""
    row = result.row(index) if result and index else None
    base = result.baseline if result else None
    if row is None or base is None:
        return "<p>Click a sentence of the map to see its response. / 文をクリックすると回答を表示します。</p>"
    verb = "replaced by “" + html.escape(row.replacement) + "”" if row.replacement else "removed"
    facts = [f"{row.change_share:.0%} of the words changed",
             (f"final answer {html.escape(base.answer)} → {html.escape(row.answer)}"
              if row.answer_changed else f"final answer unchanged ({html.escape(row.answer)})"),
             f"{row.reused_tokens:,} of {row.prompt_tokens:,} prompt tokens reused"]
    if row.identical:
        facts.insert(0, f"<b>identical response</b> (tokens #{row.tokens})" if row.tokens
                     else "<b>identical response</b>")
    return (f"<p><b>{result.unit.capitalize()} {index}</b> {verb}: “{html.escape(row.sentence)}”</p>"
            f"<p>{' · '.join(facts)}</p>"
            f"<p>Response without it, against the original (green: added, red: removed):</p>"
            f"{diff_html(diff_texts(base.response, row.response))}")


@dataclass
class AblationMap:
    editor: Editor
    bench: Workbench
    ablator: Ablator
    cap: int  # AppSettings.ablation_max_sentences
    unit: gr.Radio
    action: gr.Radio
    preset: gr.Dropdown
    replacement: gr.Textbox
    run_btn: gr.Button
    stop_btn: gr.Button
    progress: gr.Markdown
    map: gr.HTML
    detail: gr.HTML
    export_btn: gr.Button
    files: gr.File
    held: gr.State  # {"request": AblationRequest, "result": Result, "recorded": bool} or None
    picked: gr.State  # the unit shown in the detail
    cache_dir: str = ""

    # -- runs ------------------------------------------------------------------------------------

    def request(self, question, input, reasoning, prompt_format, unit, action, replacement,
                settings: GenerationSettings) -> AblationRequest:
        if action == "replace" and not (replacement or "").strip():
            raise UserError("Write the text that replaces each sentence (or pick one), or choose "
                            "“remove”. / 置き換える文を入力してください。")
        return AblationRequest(question or "", input or "", reasoning or "", prompt_format, settings,
                               unit, replacement.strip() if action == "replace" else "", self.cap)

    def run(self, question, input, reasoning, prompt_format, unit, action, replacement,
            max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed, request: gr.Request):
        # a seed of -1 is resolved once, for every response of the sweep and for the attempt
        settings = checked_settings(max_new_tokens, temperature, top_p, top_k, repetition_penalty,
                                    seed).with_seed()
        try:
            req = self.request(question, input, reasoning, prompt_format, unit, action, replacement,
                               settings)
            for result in self.ablator.sweep(req, request.session_hash or ""):
                yield (result.status, map_html(result), {"request": req, "result": result},
                       detail_html(None, None), None)
        except UserError as error:
            raise gr.Error(str(error)) from None

    def stop(self, request: gr.Request):
        self.ablator.stop(request.session_hash or "")

    def record(self, history, holding, question, input, show_all, picked, shown, open_):
        """The finished (or stopped) sweep into the history, as its baseline attempt with the map."""
        if not holding or holding.get("recorded") or holding["result"].baseline is None:
            return gr.skip()
        backend = self.editor.runner.engine.backend
        attempt = result_attempt(holding["request"], holding["result"], backend.model_name, backend.name)
        with self.bench.lock:
            history = held(history)
            history.add(attempt)
            stored, warning = stored_json(history)  # the wire carries the JSON as it is
        if warning:
            gr.Warning(warning)
        return self.bench.routed({self.bench.history_store: stored, self.held: {**holding, "recorded": True},
                                  **self.bench.panel(history, question, input, show_all, picked, shown, open_,
                                                     newest=True)})

    def pick(self, holding, evt: gr.EventData):
        index = (evt._data or {}).get("unit")  # noqa: SLF001 - the data trigger() sent
        result = holding["result"] if holding else None
        if not isinstance(index, int) or result is None:
            return gr.skip()
        return map_html(result, picked=index), detail_html(result, index), index

    def reopen(self, attempt: Attempt) -> dict:
        """↩ on an attempt that carries a map: show it, without running anything (Workbench.on_restore)."""
        result = Result.from_data(attempt.ablation)
        if result is None:
            return {}
        req = AblationRequest(attempt.question, attempt.input, attempt.reasoning, attempt.prompt_format,
                              GenerationSettings(), result.unit, result.replacement, self.cap)
        return {self.progress: f"↩ the map kept with this attempt / 保存された結果\n\n{result.status}",
                self.map: map_html(result), self.held: {"request": req, "result": result, "recorded": True},
                self.detail: detail_html(None, None), self.picked: None}

    def export(self, holding):
        result = holding["result"] if holding else None
        if result is None or not result.rows:
            gr.Warning("Run the ablation map first. / 先にアブレーションを実行してください。")
            return None
        req = holding["request"]
        directory = hosting.export_directory(self.cache_dir)
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, text in (("ablation.csv", rows_csv(result, req.question, req.input)),
                           ("ablation.jsonl", rows_jsonl(result, req.question, req.input)),
                           ("ablation-attempts.jsonl", attempts_jsonl(result, req.question, req.input))):
            path = Path(directory) / name
            path.write_text(text, encoding="utf-8")
            paths.append(str(path))
        return paths

    @staticmethod
    def use_preset(preset, question):
        item = next((r for r in replacements() if r.id == preset), None)
        if item is None:
            return gr.skip()
        return (item.text_ja if has_japanese(question or "") else item.text_en), "replace"

    # -- the public API --------------------------------------------------------------------------

    def ablate(self, question: str, input: str = "", reasoning: str = "", prompt_format: str = "alpaca",
               unit: str = "sentence", replacement: str = "", max_new_tokens: int = 128,
               temperature: float = 0.0, top_p: float = 0.95, top_k: int = 50,
               repetition_penalty: float = 1.1, seed: int = 0,
               request: gr.Request = None) -> list[dict]:
        """Regenerate the response once as written and once per sentence (or paragraph) of
        ``reasoning`` with it removed (or replaced by ``replacement``); one row per response, the
        original first, with the change measures against it."""
        settings = checked_settings(max_new_tokens, temperature, top_p, top_k, repetition_penalty,
                                    seed).with_seed()
        try:
            req = AblationRequest(question or "", input or "", reasoning or "", prompt_format, settings,
                                  unit, (replacement or "").strip(), self.cap)
            result = None
            for result in self.ablator.sweep(req, request.session_hash if request else ""):
                pass
        except UserError as error:
            raise gr.Error(str(error)) from None
        return export_rows(result, req.question, req.input)

    # -- wiring ----------------------------------------------------------------------------------

    def wire(self) -> None:
        e, bench = self.editor, self.bench
        shown = [self.progress, self.map, self.held, self.detail, self.picked]
        event = self.run_btn.click(
            self.run, [e.question, e.input, e.reasoning, e.prompt_format, self.unit, self.action,
                       self.replacement, *e.settings], shown, api_visibility="private",
            **e.guarded_run)
        bench.applied(event.then(self.record, [bench.session, self.held, *bench.view_in[1:]],
                                 [self.held, *bench.view_out], **PRIVATE))
        self.stop_btn.click(self.stop, None, None, api_visibility="private", concurrency_limit=None,
                            queue=False)
        self.map.click(self.pick, self.held, [self.map, self.detail, self.picked], **PRIVATE)
        bench.on_restore(self.reopen, shown)
        self.preset.input(self.use_preset, [self.preset, e.question], [self.replacement, self.action],
                          **PRIVATE)
        self.export_btn.click(self.export, self.held, self.files, **PRIVATE)
        e.api(self.ablate, "ablate")


def build_ablation(editor: Editor, bench: Workbench, cap: int) -> AblationMap:
    """Lay the map out (an accordion under the workbench) and wire its events and ``/ablate``."""
    presets = [(f"{r.label_en} / {r.label_ja}", r.id) for r in replacements()]
    with gr.Accordion(t("ablation"), open=False, elem_id="ablation"):
        gr.Markdown(t("ablation_help"))
        with gr.Row(equal_height=True):
            unit = gr.Radio([(t("abl_sentence"), "sentence"), (t("abl_paragraph"), "paragraph")],
                            value="sentence", label=t("abl_unit"), elem_id="ablation-unit")
            action = gr.Radio([(t("abl_remove"), "remove"), (t("abl_replace"), "replace")],
                              value="remove", label=t("abl_action"), elem_id="ablation-action")
            preset = gr.Dropdown(presets, value=None, label=t("abl_preset"), elem_id="ablation-preset")
        replacement = gr.Textbox("", label=t("abl_replacement"), lines=1, elem_id="ablation-replacement",
                                 placeholder=t("abl_replacement_placeholder"))
        with gr.Row():
            run_btn = gr.Button(t("abl_run"), variant="primary", elem_id="ablation-run")
            stop_btn = gr.Button(t("stop"), variant="stop", elem_id="ablation-stop")
        progress = gr.Markdown(elem_id="ablation-progress")
        with gr.Row(equal_height=False):
            the_map = gr.HTML("", js_on_load=CLICK_JS, css_template=MAP_CSS, elem_id="ablation-map",
                              padding=True)
            detail = gr.HTML(detail_html(None, None), css_template=DETAIL_CSS, js_on_load=None,
                             elem_id="ablation-detail", padding=True)
        with gr.Row():
            export_btn = gr.Button(t("abl_export"), elem_id="ablation-export", scale=0, min_width=260)
            files = gr.File(label=t("downloads"), file_count="multiple", interactive=False,
                            elem_id="ablation-files")
    part = AblationMap(editor, bench, Ablator(editor.runner), cap, unit, action, preset, replacement,
                       run_btn, stop_btn, progress, the_map, detail, export_btn, files,
                       held=gr.State(None), picked=gr.State(None), cache_dir=bench.cache_dir)
    part.wire()
    return part
