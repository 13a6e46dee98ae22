"""Counting prompt tokens here, for a served engine that cannot count them (no tokenize endpoint).

``--tokenizer`` names the served model's tokenizer as the app can load it: ``embedded``, a .gguf
file (its vocabulary only, through llama.cpp: no weights are read) or a Hugging Face tokenizer
folder or id in the local cache. It is used only where the engine has no tokenize endpoint, and
the loading line and every run's stats say that it counted. A tokenizer that cannot be loaded stops
the start with a plain message: counts never fall back silently to an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .protocol import LoadError
from .reuse import starts_with_bos
from .source import resolve


@dataclass(frozen=True)
class LocalTokenizer:
    name: str  # as the stats line names it
    encode: Callable[[str], list]

    def count(self, text: str) -> int:
        return len(self.encode(text))


def load_local_tokenizer(spec: str) -> LocalTokenizer:
    """The tokenizer ``spec`` names; a LoadError saying which and why when it cannot be loaded."""
    try:
        source = resolve(spec)
        if source.gguf:
            return _gguf(source.path, source.display_name)
        return _hf(source.path, source.display_name)
    except LoadError as error:
        raise LoadError(f"--tokenizer {spec!r}: {error}") from None
    except Exception as error:  # noqa: BLE001 - any cause gets the same plain message
        raise LoadError(f"--tokenizer {spec!r} could not be loaded: "
                        f"{type(error).__name__}: {str(error).strip()[:200]}") from None


def _gguf(path: str, name: str) -> LocalTokenizer:
    from llama_cpp import Llama

    from .llamacpp_backend import LlamaCppBackend

    # vocab_only: the vocabulary and metadata, no weights; counted as the llama.cpp backend counts.
    vocab = LlamaCppBackend(Llama(model_path=path, vocab_only=True, verbose=False), name)
    return LocalTokenizer(name, vocab.encode)


def _hf(path: str, name: str) -> LocalTokenizer:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    bos = tokenizer.bos_token or ""

    def encode(prompt: str) -> list:
        # As the transformers backend encodes: no second BOS after a template's written one.
        return tokenizer(prompt, add_special_tokens=not starts_with_bos(prompt, bos))["input_ids"]

    return LocalTokenizer(name, encode)
