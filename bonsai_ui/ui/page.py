"""The page: the model's status line; the Editor tab (the editor, the workbench tabs under it) and
the Debate tab, composed and wired together.

Each part is built by its own module and returned as a dataclass of its components; the events
that join two parts (a finished run enters the history) are wired here.
"""

from __future__ import annotations

import gc
import os
from typing import Callable

import gradio as gr

from ..hosting import public as hosting
from .ablation_tab import build_ablation
from ..editor.runs import Runner
from ..core.settings import AppSettings
from .common import PRIVATE, LoadStatus, queue_guard, quiet_progress
from .debate_tab import build_debate, debate_store
from .editor import build_editor
from . import gradio_sessions
from .guided_ui import build_examples, build_guide
from .texts import I18N, TITLE, t
from .workbench_tabs import build_workbench

CSS = """
#stats { font-size: 0.9em; opacity: 0.85; }
.mono textarea { font-family: ui-monospace, monospace; font-size: 0.85em; }
#response-box { min-height: 6em; border: 1px solid var(--border-color-primary);
                border-radius: var(--radius-lg); padding: var(--spacing-lg); }
#interventions button { flex: 0 1 auto; }
#demo-explanation { font-size: 1.05em; }
.diff .prose { white-space: pre-wrap; line-height: 1.7; overflow-wrap: anywhere; padding-top: 2.2em; }
.diff ins, .diff-legend ins { background: #bbf7d0; color: #14532d; text-decoration: none; }
.diff del, .diff-legend del { background: #fecaca; color: #7f1d1d; text-decoration: line-through; }
"""


def build_ui(runner: Runner, status: LoadStatus, default_format: Callable[[], str],
             settings: AppSettings, concurrency: int = 1) -> gr.Blocks:
    """Built by ``bonsai_ui.app.compose`` alone, from the options. ``default_format`` is called
    once the model is ready (``--format auto`` depends on the model); until then the format
    named by ``--format`` shows, or alpaca.
    ``settings``: the upload limit and the temporary files' lifetime (hosting/public.py).
    ``concurrency``: runs streaming at once (1 in-process; a served engine's --parallel)."""

    def refresh(seen_ready: bool):
        ready = status.ready and runner.engine is not None
        fmt = gr.Dropdown()
        if ready and not seen_ready:
            fmt = gr.Dropdown(value=default_format())
        return status.markdown(runner), gr.Timer(active=not ready and not status.error), fmt, ready

    # Gradio's queue recomputes a pandas summary of up to 10,000 past events (for its monitoring
    # page) after every event by default: ~20 ms of CPU per click on this 2-vCPU machine, growing
    # with the events served. Read when the queue is made (demo.queue, after this).
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
    gradio_sessions.lazy_deep_link_configs()  # a new visitor: 30 ms and 0.3 MB less (the module says)
    with gr.Blocks(title=TITLE, **hosting.blocks_kwargs(settings)) as demo:
        gr.Markdown(t("intro"))
        model_status = gr.Markdown(status.markdown(runner), elem_id="model-status")
        timer = gr.Timer(0.5)
        seen_ready = gr.State(False)
        store = debate_store()
        with gr.Tabs(elem_id="page-tabs"):
            with gr.Tab(t("tab_editor"), id="editor", elem_id="tab-editor"):
                guide = build_guide()
                first_format = "alpaca" if settings.prompt_format == "auto" else settings.prompt_format
                editor = build_editor(runner, first_format, concurrency,
                                      queue_guard(demo, settings.queue_size))
                build_examples(editor, settings.model)
                guide.explanation = gr.Markdown(elem_id="demo-explanation")
                bench = build_workbench(editor, settings.max_upload)
                build_ablation(editor, bench, settings.ablation_max_sentences)
                bench.wire_table()  # after every part that ↩ also reopens (on_restore)
            with gr.Tab(t("tab_debate"), id="debate", elem_id="tab-debate"):
                debate = build_debate(editor, runner, store, settings.max_upload)
        for event in editor.runs:
            bench.record_after(event)
        guide.wire(editor, bench)

        refresh_args = dict(fn=refresh, inputs=seen_ready,
                            outputs=[model_status, timer, editor.prompt_format, seen_ready], **PRIVATE)
        timer.tick(**refresh_args)
        demo.load(**refresh_args)
        bench.load_after(demo.load)
        debate.load_after(demo.load)
        guide.load_after(demo.load)
        quiet_progress(demo, gr.Textbox(visible=False))  # before the Blocks' config is made, on exit
    return demo


def settle() -> None:
    """Once the server has started and the model is loaded: what exists then (Gradio, the server,
    the libraries, the model) lives as long as the app, so it leaves the cyclic collector's full
    passes, which otherwise walk all of it. At 200 long attempts such a pass took 210-360 ms of a
    random click (0.79 s under load; ~370,000 objects, gc.callbacks in bench/workbench_latency.py's
    process); frozen, the clicks saw none. Frozen objects are never collected: call it at start-up."""
    gc.collect()
    gc.freeze()


def launch_kwargs(settings: AppSettings = AppSettings()) -> dict:
    """Theme, CSS and translations go to launch() in Gradio 6, with the upload limit and password
    (hosting/public.py) and the sessions whose state is kept (--session-capacity). System fonts: a Space may have no font CDN."""
    theme = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                           font_mono=["ui-monospace", "monospace"])
    return dict(theme=theme, css=CSS, i18n=I18N, state_session_capacity=settings.session_capacity,
                **hosting.launch_kwargs(settings))
