"""The page: layout and event wiring only. What the buttons do lives in ``runs.py``.

Two events are public API endpoints (``generate``, ``regenerate``), documented in the README; every
other event is UI plumbing and is kept out of the API.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import gradio as gr

from .prompts import MODES, examples, format_names, load_format
from .runs import Runner, UserError
from .settings import GENERATION_BOUNDS, GenerationSettings, SettingsError

TITLE = "BONSAI Reasoning Editor"

MODE_CHOICES = [
    ("reasoning: the model reasons, then answers / 推論してから回答", "reasoning"),
    ("special: answer from the reasoning below / 下の推論から回答", "special"),
    ("vanilla: answer directly, no reasoning / 推論なし", "vanilla"),
]
assert sorted(v for _, v in MODE_CHOICES) == sorted(MODES)

CSS = """
#stats { font-size: 0.9em; opacity: 0.85; }
#response-box { min-height: 6em; border: 1px solid var(--border-color-primary);
                border-radius: var(--radius-lg); padding: var(--spacing-lg); }
"""


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


def _checked(component: type) -> type:
    """A slider/number whose server-side range check names the setting.

    Gradio refuses an out-of-range API value before our function runs, but its message ("Value 9
    is greater than maximum value 2") does not say which setting; this one does, in the same words
    as every other bound (``GenerationSettings.checked``).
    """
from gradio.events import Dependency

    class Checked(component):
        is_template = True  # render with the parent's frontend component

        def preprocess(self, payload):
            try:
                GenerationSettings.checked(**{self.elem_id: payload})
            except SettingsError as error:
                raise gr.Error(str(error), title="Setting out of range / 設定値が範囲外") from None
            return super().preprocess(payload)

    return Checked


CheckedSlider, CheckedNumber = _checked(gr.Slider), _checked(gr.Number)


def build_ui(runner: Runner, status: LoadStatus, default_format: "str | callable" = "alpaca") -> gr.Blocks:
    """``default_format`` may be a function: it is called once the model is ready (auto format)."""
    formats = [(load_format(name).label, name) for name in format_names()]

    def generate(question: str, input: str, mode: str, prompt_format: str, reasoning: str,
                 max_new_tokens: float, temperature: float, top_p: float, top_k: float,
                 repetition_penalty: float, seed: float, request: gr.Request):
        settings = _settings(max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        try:
            for state in runner.generate(question, input or "", mode, prompt_format, reasoning or "",
                                         settings, request.session_hash or ""):
                yield state.reasoning, state.response, state.stats, state.prompt
        except UserError as error:
            raise gr.Error(str(error)) from None

    def regenerate(question: str, input: str, reasoning: str, prompt_format: str,
                   max_new_tokens: float, temperature: float, top_p: float, top_k: float,
                   repetition_penalty: float, seed: float, request: gr.Request):
        settings = _settings(max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        try:
            for state in runner.regenerate(question, input or "", reasoning or "", prompt_format,
                                           settings, request.session_hash or ""):
                yield state.response, state.stats, state.prompt
        except UserError as error:
            raise gr.Error(str(error)) from None

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

    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# 🌳 {TITLE} / 推論エディタ\nAsk a question, watch the model **reason** and then "
                    "**respond**. Edit the reasoning and regenerate: the answer follows the reasoning. "
                    "/ 推論を書き換えて回答を再生成すると、回答が推論に従って変わります。")
        model_status = gr.Markdown(status.markdown(runner), elem_id="model-status")
        timer = gr.Timer(0.5)
        seen_ready = gr.State(False)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                question = gr.Textbox(label="Question / 質問", lines=4, elem_id="question",
                                      placeholder="Type a question, or click an example below / "
                                                  "質問を入力するか、下の例をクリック")
                input_box = gr.Textbox(label="Input (optional) / 入力（任意）", lines=1, elem_id="input")
                mode = gr.Radio(MODE_CHOICES, value="reasoning", label="Mode / モード", elem_id="mode")
                prompt_format = gr.Dropdown(
                    formats, value=default_format if isinstance(default_format, str) else "alpaca",
                    label="Prompt format / プロンプト形式", elem_id="format",
                    info="alpaca: the seed's fine-tuned models; think: chat models with <think> tags")
                with gr.Row():
                    generate_btn = gr.Button("Generate / 生成 ▶", variant="primary", elem_id="generate")
                    stop_btn = gr.Button("Stop / 停止 ■", variant="stop", elem_id="stop")
                with gr.Accordion("Generation settings / 生成設定", open=False):
                    sliders = []
                    for name, b in GENERATION_BOUNDS.items():
                        if name == "seed":
                            sliders.append(CheckedNumber(b.default, label=b.label, info=b.info, precision=0,
                                                     minimum=b.minimum, maximum=b.maximum, elem_id=name))
                        else:
                            sliders.append(CheckedSlider(b.minimum, b.maximum, value=b.default, step=b.step,
                                                     label=b.label, info=b.info or None, elem_id=name))
            with gr.Column(scale=3, min_width=360):
                reasoning = gr.Textbox(
                    label="Reasoning / 推論",
                    info="Edit it, then Regenerate response / 編集して「回答を再生成」",
                    lines=10, max_lines=30, interactive=True, elem_id="reasoning", buttons=["copy"])
                regenerate_btn = gr.Button("Regenerate response from this reasoning / この推論から回答を再生成 ↻",
                                           elem_id="regenerate")
                gr.Markdown("**Response / 回答**")
                response = gr.Markdown(label="response", elem_id="response-box", buttons=["copy"],
                                       sanitize_html=True)
                stats = gr.Markdown(label="stats", elem_id="stats")
                with gr.Accordion("Prompt preview / プロンプト", open=False):
                    prompt_code = gr.Code(label="Exact text for the model: a preview as you type, what was sent after a run / モデルに送るテキスト", language=None,
                                          lines=12, max_lines=40, wrap_lines=True, interactive=False,
                                          elem_id="prompt", buttons=["copy"])
        # Examples must know the reasoning box, which is laid out in the right column.
        with gr.Row():
            ex = examples()
            gr.Examples(
                [[e.question, e.input, e.mode, e.reasoning] for e in ex],
                inputs=[question, input_box, mode, reasoning],
                label="Examples from the seed document (one click loads them) / 例題（クリックで読み込み）",
                example_labels=[e.title for e in ex], api_visibility="private")

        settings_inputs = sliders
        generate_btn.click(
            generate, [question, input_box, mode, prompt_format, reasoning, *settings_inputs],
            [reasoning, response, stats, prompt_code], api_name="generate",
            concurrency_id="model", concurrency_limit=1)
        regenerate_btn.click(
            regenerate, [question, input_box, reasoning, prompt_format, *settings_inputs],
            [response, stats, prompt_code], api_name="regenerate",
            concurrency_id="model", concurrency_limit=1)
        stop_btn.click(stop, None, None, api_visibility="private", concurrency_limit=None, queue=False)
        gr.on([question.input, input_box.input, mode.input, prompt_format.input, reasoning.input],
              preview, [question, input_box, mode, prompt_format, reasoning], prompt_code,
              api_visibility="private", concurrency_limit=None, show_progress="hidden")
        refresh_args = dict(fn=refresh, inputs=seen_ready,
                            outputs=[model_status, timer, prompt_format, seen_ready],
                            api_visibility="private", concurrency_limit=None, show_progress="hidden")
        timer.tick(**refresh_args)
        demo.load(**refresh_args)
    return demo


def launch_kwargs() -> dict:
    """Theme and CSS go to launch() in Gradio 6. System fonts: a Space may have no font CDN."""
    theme = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                           font_mono=["ui-monospace", "monospace"])
    return dict(theme=theme, css=CSS)