"""Unsloth backend (CUDA): the seed document's own loading path.

``FastLanguageModel.from_pretrained(..., load_in_4bit=True)`` then ``for_inference``; a folder with
a LoRA adapter (what an Unsloth SFT run saves) loads the same way. Generation is inherited from the
transformers backend. This module is imported only when CUDA is present: ``import unsloth`` fails
without a GPU.
"""

from __future__ import annotations

from ..core.settings import AppSettings
from .source import ModelSource, Progress
from .transformers_backend import TransformersBackend


class UnslothBackend(TransformersBackend):
    name = "unsloth"

    @classmethod
    def _load_model_and_tokenizer(cls, source: ModelSource, settings: AppSettings, device: str,
                                  progress: Progress):
        progress("importing unsloth (about half a minute)", 0.1)
        from unsloth import FastLanguageModel  # noqa: PLC0415 - CUDA-only import

        progress(f"loading {source.display_name} with unsloth", 0.3)
        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=source.path,
            max_seq_length=settings.context_length,
            dtype=None,  # auto: bf16 on Ampere and newer
            load_in_4bit=settings.load_in_4bit != "no",
        )
        FastLanguageModel.for_inference(model)
        return model, tokenizer
