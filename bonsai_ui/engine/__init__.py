"""Loading a model into an Engine: which backend, and progress while it loads.

Heavy libraries (torch, transformers, llama_cpp, unsloth) are imported only by the backend that is
chosen: the embedded model on llama.cpp starts without torch, and Unsloth is never imported on a
machine without CUDA, where importing it fails.
"""

from __future__ import annotations

import importlib.util
import time

from ..core.constraints import APP_FORMATS, ConstraintError
from ..core.settings import AppSettings
from .core import Engine, PromptTooLong, Timing, fingerprint
from .protocol import Backend, Chunk, EngineError, LoadError
from .source import ModelSource, Progress, resolve

__all__ = ["Engine", "PromptTooLong", "Timing", "fingerprint", "Backend", "Chunk", "EngineError", "LoadError", "load_engine",
           "choose_backend", "cuda_available"]


def cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def choose_backend(requested: str, source: ModelSource, *, cuda: bool, unsloth_installed: bool) -> str:
    """Route ``--backend auto``: GGUF → llama.cpp; CUDA with Unsloth → unsloth; else transformers."""
    if requested != "auto":
        return requested
    if source.gguf:
        return "llama.cpp"
    if cuda and unsloth_installed:
        return "unsloth"
    return "transformers"


def _backend_class(name: str):
    if name == "llama.cpp":
        from .llamacpp_backend import LlamaCppBackend

        return LlamaCppBackend
    if name == "transformers":
        from .transformers_backend import TransformersBackend

        return TransformersBackend
    if name == "unsloth":
        from .unsloth_backend import UnslothBackend

        return UnslothBackend
    raise LoadError(f"unknown backend {name!r}")


def load_engine(settings: AppSettings, progress: Progress = lambda stage, fraction: None) -> Engine:
    """Load the model named by the settings; any failure becomes a LoadError naming model and cause."""
    started = time.perf_counter()
    if settings.backend == "openai":  # a served model: nothing to resolve or load here
        from .openai_backend import connect

        engine = _check_formats(Engine(connect(settings, progress)), progress)
        progress(f"ready in {time.perf_counter() - started:.1f} s", 1.0)
        return engine
    try:
        progress(f"resolving model {settings.model}", 0.0)
        source = resolve(settings.model, read_gguf_eos=settings.backend == "transformers")
        needs_cuda_check = settings.backend == "auto" and not source.gguf
        cuda = cuda_available() if needs_cuda_check or settings.backend == "unsloth" else False
        name = choose_backend(settings.backend, source, cuda=cuda,
                              unsloth_installed=importlib.util.find_spec("unsloth") is not None)
        if name == "unsloth" and not cuda:
            raise LoadError("the unsloth backend needs a CUDA GPU, and none is visible "
                            "(use --backend transformers or llama.cpp)")
        backend = _backend_class(name).load(source, settings, progress)
    except LoadError as error:
        raise LoadError(f"could not load model {settings.model!r}: {error}") from None
    except Exception as error:  # noqa: BLE001 - every cause gets the same plain message
        cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise LoadError(f"could not load model {settings.model!r} "
                        f"(backend {settings.backend}): {type(error).__name__}: {cause}") from error
    engine = _check_formats(Engine(backend), progress)
    progress(f"ready in {time.perf_counter() - started:.1f} s", 1.0)
    return engine


def _check_formats(engine: Engine, progress: Progress) -> Engine:
    """Compile the formats the app constrains output to, or find that the engine cannot enforce
    them, before the first run: a bad grammar stops the start with its cause."""
    for constraint in APP_FORMATS:
        try:
            note = engine.check_format(constraint)
        except ConstraintError as error:
            raise LoadError(f"the format of {constraint.name} cannot be used: {error}") from None
        progress(f"format of {constraint.name}: " + (f"enforced while decoding" if not note
                                                     else f"⚠ not enforced: {note}"), 0.95)
    return engine
