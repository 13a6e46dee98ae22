"""BONSAI Reasoning Editor: ``python app.py [--model … --host … --share yes --auth user:password]``,
or ``python app.py --backend openai --endpoint URL`` to drive a served model (vLLM, SGLang, llama.cpp).

The page is served first and the model loads behind it, so a visitor sees loading progress instead
of a dead link; a model that fails to load ends the process with a plain message and exit code 2.
"""

from __future__ import annotations

import sys

from bonsai_ui.engine import LoadError, load_engine
from bonsai_ui.hosting import exposure_warning
from bonsai_ui.runs import Runner
from bonsai_ui.settings import AppSettings, parse_app_settings
from bonsai_ui.ui import LoadStatus, build_ui, gradio_max_size, launch_kwargs, settle


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


def main(argv: list[str] | None = None) -> int:
    settings = parse_app_settings(argv)
    runner = Runner()
    status = LoadStatus()
    if warning := exposure_warning(settings):
        print(warning, file=sys.stderr, flush=True)
    demo = build_ui(runner, status, default_format=lambda: default_format(settings, runner),
                    settings=settings, concurrency=runs_at_once(settings))
    # Beyond queue_size waiting runs, a visitor is told the app is busy instead of waiting forever
    # (the page's own message, ui.common.queue_guard; Gradio's cap is the backstop above it).
    demo.queue(default_concurrency_limit=1, max_size=gradio_max_size(settings.queue_size))
    demo.launch(server_name=settings.host, server_port=settings.port,
                share=settings.share == "yes", prevent_thread_lock=True, **launch_kwargs(settings))
    try:
        runner.engine = load_engine(settings, status.update)
    except LoadError as error:
        status.error = str(error)
        print(f"error: {error}", file=sys.stderr)
        demo.close()
        return 2
    status.ready = True
    settle()
    demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
