"""The app as ``python app.py`` serves it: settings in, engine, runner, page and every default out.

``compose`` is the one place that turns the options into a running app. ``app.py`` calls it, and so
does every test that launches the page, with the options a user would pass; what a test may add is
an engine it already loaded (the same model, loaded once for the whole suite) or a stand-in model,
never a default of its own.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import gradio as gr

from .engine import Engine, LoadError, load_engine
from .hosting.public import exposure_warning
from .editor.runs import Runner
from .core.settings import AppSettings
from .ui import LoadStatus, build_ui, gradio_max_size, launch_kwargs, settle


def default_format(settings: AppSettings, runner: Runner) -> str:
    """``--format auto``: the seed's Alpaca format for Unsloth fine-tunes and models without a
    chat template; the think format for chat models."""
    if settings.prompt_format != "auto":
        return settings.prompt_format
    backend = runner.engine.backend
    return "alpaca" if backend.name == "unsloth" or not backend.chat.template else "think"


def runs_at_once(settings: AppSettings) -> int:
    """A served engine batches runs itself; an in-process model runs one at a time."""
    return settings.parallel if settings.backend == "openai" else 1


@dataclass
class App:
    settings: AppSettings
    runner: Runner
    status: LoadStatus
    demo: gr.Blocks

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}/"

    def launch(self, *, quiet: bool = False) -> None:
        """Serve the page now, before the model is loaded: a visitor sees the loading progress."""
        settings = self.settings
        self.demo.launch(server_name=settings.host, server_port=settings.port,
                         share=settings.share == "yes", prevent_thread_lock=True, quiet=quiet,
                         **launch_kwargs(settings))

    def load(self, engine: Engine | None = None) -> None:
        """Load the model the settings name (or take ``engine``, already loaded); LoadError leaves
        the page saying why."""
        try:
            self.runner.engine = engine or load_engine(self.settings, self.status.update)
        except LoadError as error:
            self.status.error = str(error)
            raise
        self.status.ready = True

    def close(self) -> None:
        self.demo.close()


def compose(settings: AppSettings) -> App:
    runner = Runner()
    status = LoadStatus()
    demo = build_ui(runner, status, default_format=lambda: default_format(settings, runner),
                    settings=settings, concurrency=runs_at_once(settings))
    # Beyond queue_size waiting runs, a visitor is told the app is busy instead of waiting forever
    # (the page's own message, ui.common.queue_guard; Gradio's cap is the backstop above it).
    demo.queue(default_concurrency_limit=1, max_size=gradio_max_size(settings.queue_size))
    return App(settings, runner, status, demo)


def serve(settings: AppSettings) -> int:
    """``python app.py``: serve the page, load the model behind it, serve until stopped; a model
    that fails to load ends the process with a plain message and exit code 2."""
    if warning := exposure_warning(settings):
        print(warning, file=sys.stderr, flush=True)
    app = compose(settings)
    app.launch()
    try:
        app.load()
    except LoadError as error:
        print(f"error: {error}", file=sys.stderr)
        app.close()
        return 2
    settle()
    app.demo.block_thread()
    return 0
