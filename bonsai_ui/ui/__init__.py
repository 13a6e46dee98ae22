"""The Gradio page, one module per part: ``editor`` (the editor and its runs, the public API),
``workbench_tabs`` (attempts, compare, export), ``debate_tab`` (the debate), composed and wired by ``page.build_ui``; labels in
``texts``, shared pieces in ``common``, updates sent as one JSON text in ``relay``."""

from .common import LoadStatus, gradio_max_size
from .page import CSS, build_ui, launch_kwargs, settle
from .texts import I18N, TEXTS, TITLE, t

__all__ = ["CSS", "I18N", "LoadStatus", "TEXTS", "TITLE", "build_ui", "gradio_max_size", "settle",
           "launch_kwargs", "t"]
