"""llama.cpp backend (llama-cpp-python) for GGUF files: the fast path on a CPU.

It drives ``Llama.generate`` token by token rather than ``create_completion``: that gives exact token
counts, a cancel check after every token, and llama.cpp's own KV-cache prefix reuse between calls,
which makes regenerating after an edit late in the reasoning cheap. The reuse is cut back to whole
``n_batch`` batches of prompt tokens (``reuse.reusable``), so llama.cpp evaluates a kept prompt in
exactly the batches a full re-encode uses and writes the same tokens.

The same tokens on another machine need the same CPU kernels: llama.cpp compiles the instruction
sets it uses, and a build for its own machine's CPU (the default) runs AVX-512 kernels on one
machine and AVX2 on another, whose float sums differ in their last bits and so, sooner or later, in
a greedy token. requirements-cpu.txt builds it for a fixed set (``PINNED``); the backend reads what
its build uses and says so in the loading line.
"""

from __future__ import annotations

import codecs
import os
import threading
from typing import Iterator

from ..core.constraints import Constraint
from ..core.prompts import ChatTemplate
from ..core.settings import AppSettings, GenerationSettings
from .constrained import Grammars
from .protocol import Chunk, Emit, LoadError, worker_stream
from .reuse import reusable, starts_with_bos
from .source import ModelSource, Progress


# What requirements-cpu.txt builds on x86-64: every x86-64 CPU since 2013-2015 has these (Intel
# Haswell, AMD Excavator and Zen). Wider sets change the kernels' arithmetic, not just their speed.
PINNED = ("AVX", "AVX2", "F16C", "FMA")
WIDER = ("AVX512", "AVX_VNNI", "AMX")  # prefixes of instruction sets beyond the pinned ones


def cpu_features(system_info: str) -> tuple[str, ...]:
    """The instruction sets a llama.cpp build was compiled for, from ``llama_print_system_info``
    ("CPU : SSE3 = 1 | AVX = 1 | ... | OPENMP = 1 | REPACK = 1 |")."""
    found = []
    for part in system_info.replace(":", "|").split("|"):
        name, equals, value = part.partition("=")
        if equals and value.strip() == "1":
            found.append(name.strip())
    return tuple(found)


def is_pinned(features: tuple[str, ...]) -> bool:
    """Whether a build runs the pinned x86-64 kernels: every pinned set, none wider."""
    return all(f in features for f in PINNED) and not any(f.startswith(WIDER) for f in features)


def kernels_note(features: tuple[str, ...]) -> str:
    """One phrase for the loading line: which kernels run, and whether other machines get them."""
    wider = [f for f in features if f.startswith(WIDER)]
    if wider:
        return (f"CPU kernels {', '.join(wider)}: built for this machine's CPU, so its tokens can "
                f"differ from other machines' (requirements-cpu.txt builds the pinned set)")
    if is_pinned(features):
        return f"CPU kernels {'+'.join(PINNED)}, pinned: the same tokens on every x86-64 CPU"
    sets = [f for f in features if f not in ("OPENMP", "REPACK", "LLAMAFILE")]  # not instruction sets
    return (f"CPU kernels {', '.join(sets) or 'baseline'}: not the x86-64 pinned set, so its tokens "
            f"can differ from an x86-64 machine's")


class LlamaCppBackend:
    name = "llama.cpp"

    def __init__(self, llm, model_name: str):
        import llama_cpp

        self.llm = llm
        self._lib = llama_cpp
        self.model_name = model_name
        self.context_length = llm.n_ctx()
        meta = llm.metadata
        vocab = llm._model  # noqa: SLF001 - token texts for the chat template
        self.bos_text = vocab.token_get_text(llm.token_bos()) if llm.token_bos() >= 0 else ""
        self.chat = ChatTemplate(meta.get("tokenizer.chat_template"), self.bos_text,
                                 vocab.token_get_text(llm.token_eos()) if llm.token_eos() >= 0 else "")
        self.last_reused_tokens = 0  # prompt tokens served from the KV cache on the last call
        self._prefilled = 0  # of the context's tokens, how many came from a prompt (not decoded)
        self.ignore_eos = False  # benchmarks only: always generate max_new_tokens
        self.cpu_features = cpu_features(llama_cpp.llama_print_system_info().decode(errors="replace"))
        self.kernels = kernels_note(self.cpu_features)
        self.grammars = Grammars(self._grammar_tokenizer)

    def _grammar_tokenizer(self):
        from llguidance.llamacpp import lltokenizer_from_vocab

        return lltokenizer_from_vocab(self.llm._model.vocab)  # noqa: SLF001

    def format_support(self, constraint: Constraint) -> str:
        """"" = enforced here (see Grammars.support)."""
        return self.grammars.support(constraint)

    @classmethod
    def load(cls, source: ModelSource, settings: AppSettings, progress: Progress):
        if not source.gguf:
            raise LoadError(f"llama.cpp loads .gguf files; {source.path} is not one "
                            "(use --backend transformers)")
        try:
            from llama_cpp import Llama
        except ImportError as error:
            raise LoadError(f"llama-cpp-python is not installed ({error})") from None
        progress(f"loading {source.display_name} with llama.cpp", 0.2)
        llm = Llama(model_path=source.path, n_ctx=settings.context_length,
                    n_threads=os.cpu_count(), n_gpu_layers=-1, verbose=False)
        backend = cls(llm, source.display_name)
        progress(backend.kernels, 0.9)
        return backend

    def encode(self, prompt: str) -> list[int]:
        add_bos = not starts_with_bos(prompt, self.bos_text)
        return self.llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)

    def count_tokens(self, prompt: str) -> int:
        return len(self.encode(prompt))

    def forget_caches(self) -> None:
        """Keep nothing of the context for the next prompt (benchmarks: a full re-encode)."""
        self._prefilled = 0

    def _is_end(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self.llm._model.vocab, token))  # noqa: SLF001

    def stream(self, prompt: str, settings: GenerationSettings, cancel: threading.Event,
               session: str = "", constraint: Constraint | None = None) -> Iterator[Chunk]:
        """llama.cpp keeps one context: it reuses whatever prefix it holds, whichever session.

        ``constraint``: llguidance's mask sets the logits of every token the grammar forbids to
        -inf, first in llama.cpp's sampler chain (before the penalties, top-k and the rest).
        """
        tokens = self.encode(prompt)
        mask = self.grammars.matcher(constraint) if constraint is not None else None
        processors = None
        if mask is not None:
            import numpy as np

            def forbid(input_ids, scores):
                return np.where(mask.allowed_numpy(scores.shape[0]), scores, -np.inf).astype(np.float32)

            processors = [forbid]

        def work(emit: Emit):
            cached = list(self.llm._input_ids[: self.llm.n_tokens])  # noqa: SLF001
            keep = reusable(cached, tokens, self._prefilled, self.llm.n_batch)
            # Llama.generate keeps the longest prefix of its first n_tokens: make that ``keep``
            self.llm.n_tokens = keep
            self._prefilled = len(tokens)
            self.last_reused_tokens = keep
            self.llm.set_seed(settings.seed)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            count = 0
            for token in self.llm.generate(
                    tokens, temp=settings.temperature, top_p=settings.top_p,
                    top_k=settings.top_k, min_p=0.0, repeat_penalty=settings.repetition_penalty,
                    logits_processor=processors):
                if self._is_end(token) and not self.ignore_eos:
                    break
                if mask is not None:
                    mask.advance(token)
                count += 1
                emit(decoder.decode(self.llm.detokenize([token])), count, (token,))
                if count >= settings.max_new_tokens or cancel.is_set():
                    break
            tail = decoder.decode(b"", final=True)
            if tail:
                emit(tail, count)

        return worker_stream(work, cancel)
