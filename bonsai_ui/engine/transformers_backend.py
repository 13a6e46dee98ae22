"""Hugging Face transformers backend: CPU, or a GPU without Unsloth.

The Unsloth backend subclasses this one and only changes how the model is loaded, so streaming,
cancelling, seeding and stop handling are one piece of code for both.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import torch
from transformers import (AutoModelForCausalLM, AutoTokenizer, LogitsProcessor,
                          LogitsProcessorList, StoppingCriteria, StoppingCriteriaList)
from transformers.generation.streamers import BaseStreamer

from ..core.constraints import Constraint
from ..core.prompts import ChatTemplate
from ..core.settings import AppSettings, GenerationSettings
from .constrained import Grammars, TokenMask, TorchMask, hf_lltokenizer
from .zerogpu import on_zerogpu
from .protocol import Chunk, Emit, LoadError, worker_stream
from .source import ModelSource, Progress
from .reuse import reusable, starts_with_bos
from .static_decoder import PREFILL_CHUNK, StaticDecoder, decode, unsupported_reason


def deterministic_attention():
    """For ``generate``: attention kernels whose forward pass gives the same bits run after run.

    transformers' SDPA call may take cuDNN's fused attention on Hopper, which PyTorch itself leaves
    out when deterministic algorithms are asked for, and which parted identical runs inside the
    static decoder (see StaticDecoder._attention); flash, memory-efficient and math forwards are
    deterministic.
    """
    if not torch.cuda.is_available():
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


class _CancelCriteria(StoppingCriteria):
    """Checked after every token, so Stop ends generation within one token."""

    def __init__(self, cancel: threading.Event):
        self.cancel = cancel

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.cancel.is_set(), dtype=torch.bool,
                          device=input_ids.device)


class _GrammarProcessor(LogitsProcessor):
    """``generate``'s hook for a constraint: moves the matcher past the token written since the
    last call, then forbids what the grammar does not allow next."""

    def __init__(self, mask: TokenMask, vocab: int, device, prompt_length: int):
        self.mask, self.torch_mask = mask, TorchMask(mask, vocab, device)
        self.seen = prompt_length

    def __call__(self, input_ids, scores):
        if input_ids.shape[1] > self.seen:  # every call after the first: one new token
            self.mask.advance(int(input_ids[0, -1]))
            self.seen = input_ids.shape[1]
        return self.torch_mask.apply(scores)


class _IncrementalDetokenizer(BaseStreamer):
    """Emits the new text of each token, in O(1) per token.

    Decoding a token alone loses the leading space that SentencePiece tokenizers attach to it, and
    decoding everything so far costs O(n) per token; so, like TGI, decode a short window before the
    new tokens and emit the difference, holding back half of a multi-byte character.
    """

    def __init__(self, tokenizer, prompt_ids: list[int], emit: Emit):
        self.tokenizer = tokenizer
        self.emit = emit
        self.ids = list(prompt_ids[-5:])
        self.prefix = 0
        self.read = len(self.ids)
        self.count = 0
        self.prompt_seen = False

    def put(self, value):  # generate()'s streamer interface
        if not self.prompt_seen:  # generate() first hands over the prompt
            self.prompt_seen = True
            return
        self.push(value.reshape(-1).tolist())

    def push(self, new: list[int]) -> None:
        self.count += len(new)
        self.ids.extend(new)
        before = self.tokenizer.decode(self.ids[self.prefix:self.read], skip_special_tokens=True)
        after = self.tokenizer.decode(self.ids[self.prefix:], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            self.emit(after[len(before):], self.count, new)
        else:
            self.emit("", self.count, new)

    def end(self):
        pass


# Regenerating after an edit re-sends a prompt whose start is unchanged; keeping each session's last
# KV cache lets the model skip re-reading that start. A few sessions, least recently used dropped.
PREFIX_CACHE_SESSIONS = int(os.environ.get("BONSAI_PREFIX_CACHE_SESSIONS", "4"))


def cache_length(cache) -> int:
    # Unsloth's fast inference path hands back the legacy list of (key, value) tensors.
    return cache.get_seq_length() if hasattr(cache, "get_seq_length") else cache[0][0].shape[-2]


def crop_cache(cache, keep: int):
    """Drop everything after the first ``keep`` positions, whatever the cache's form."""
    surplus = cache_length(cache) - keep
    if surplus <= 0:
        return cache
    if hasattr(cache, "crop"):
        cache.crop(-surplus)
        return cache
    return [(k[:, :, :keep], v[:, :, :keep]) for k, v in cache]


def _pick_dtype(device: str):
    if device == "cpu":
        return torch.float32  # exact and fast enough for small models; CPUs lack fast bf16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class TransformersBackend:
    name = "transformers"

    def __init__(self, model, tokenizer, model_name: str, context_length: int,
                 eos_token_ids: list[int]):
        self.model = model
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.context_length = context_length
        self.eos_token_ids = eos_token_ids
        self.chat = ChatTemplate(getattr(tokenizer, "chat_template", None),
                                 tokenizer.bos_token or "", tokenizer.eos_token or "")
        self.ignore_eos = False  # benchmarks only: always generate max_new_tokens
        self.prefix_reuse = PREFIX_CACHE_SESSIONS > 0
        self._caches: OrderedDict[str, tuple[list[int], object, int]] = OrderedDict()
        self.last_reused_tokens = 0
        self._last_encoded: tuple[str | None, list[int]] = (None, [])
        self.decoder: StaticDecoder | None = None  # set by use_decoder()
        self.decoder_note = "generate"
        self._nf4_installed = False  # the NF4 batch-1 kernel is on the model's 4-bit layers
        self._saved: OrderedDict[str, tuple] = OrderedDict()  # session -> StaticDecoder.save()
        self._owner: str | None = None  # whose entries the decoder's cache holds
        self._decoding = threading.Lock()  # held while a run uses the decoder's cache
        self.grammars = Grammars(self._grammar_tokenizer)

    def _grammar_tokenizer(self):
        return hf_lltokenizer(self.tokenizer, self.vocab_size, self.eos_token_ids[0])

    @property
    def vocab_size(self) -> int:
        """The logits' width (the output layer can be wider than the tokenizer's vocabulary)."""
        return self.model.get_output_embeddings().weight.shape[0]

    def format_support(self, constraint: Constraint) -> str:
        """"" = enforced here (see Grammars.support)."""
        return self.grammars.support(constraint)

    def use_decoder(self, mode: str, nf4_kernel: str = "on", decode_kernels: str = "on") -> None:
        """Pick the decoding loop: ``auto`` takes the static decoder on CUDA where it applies.

        Asking for ``static`` on a model it can't run is a load error, not a silent fallback. With
        the static decoder on CUDA, bitsandbytes NF4 layers get the project's batch-1 kernel
        (``nf4_linear``) when ``nf4_kernel`` is ``on`` (or the re-laid-out one, ``relayout``); it
        is installed before the graphs are captured, so they record it.
        """
        self._fast_linears(False)
        if mode == "generate" or (mode == "auto" and self.model.device.type != "cuda"):
            self.decoder, self.decoder_note = None, "generate"
            return
        if mode == "auto" and on_zerogpu():
            # ZeroGPU lends the GPU to a forked worker per run: graphs captured at start-up, in a
            # process without the real device, would not exist there
            self.decoder, self.decoder_note = None, "generate (ZeroGPU)"
            return
        reason = unsupported_reason(self.model)
        if reason:
            if mode == "static":
                raise LoadError(f"--decoder static: {reason}")
            self.decoder, self.decoder_note = None, f"generate ({reason} needs it)"
            return
        kernel_note = self._fast_linears(nf4_kernel != "off" and self.model.device.type == "cuda",
                                         nf4_kernel)
        decoder = StaticDecoder(self.model, self.context_length,
                                fused=decode_kernels == "on" and self.model.device.type == "cuda")
        try:  # capture every graph now, and run once: a failure shows at load, not mid-demo
            with torch.inference_mode():
                decoder.capture_all(decoder.cache)
                # a short prompt (chunk graphs), then two long ones (eager prefill): compiled
                # kernels (Unsloth's) specialise on the first shape they see and recompile for the
                # second, which would otherwise land on the first real request (~1 s at 7B)
                for words in (1, 150, 300) if decoder.use_graphs else (1,):
                    ids = (self.encode("Hello, world. " * words) or [0])[: self.context_length - 4]
                    decode(decoder, decoder.cache, ids, 0,
                           GenerationSettings(max_new_tokens=2, temperature=0.0), set(),
                           lambda t: True)
        except Exception as error:  # noqa: BLE001 - fall back, and say why
            self._fast_linears(False)
            if mode == "static":
                raise LoadError(f"--decoder static failed: {type(error).__name__}: {error}") from error
            self.decoder_note = f"generate (static decoder failed: {type(error).__name__}: {error})"
            return
        decoder.cache.tokens = []
        self.decoder = decoder
        fused_note = "fused decode kernels" if decoder.fused else \
            (f"decode kernels off ({decoder.fused_off})" if decoder.fused_off else "")
        self.decoder_note = "static KV cache" + (" + CUDA graphs" if decoder.use_graphs else "") + \
            "".join(f"; {note}" for note in (fused_note, kernel_note) if note)

    def _fast_linears(self, on: bool, kernel: str = "on") -> str:
        """Put an NF4 batch-1 kernel (``kernel``: ``on``, nf4_gemv; ``relayout``, nf4_relayout)
        on the model's 4-bit layers (or take it off); the note says on how many, and why any stay
        on bitsandbytes. Imported only when asked for: it needs bitsandbytes and Triton."""
        if not on:
            if self._nf4_installed:
                from .nf4_linear import uninstall_fast_linears

                uninstall_fast_linears(self.model)
                self._nf4_installed = False
            return ""
        try:
            from .nf4_linear import install_fast_linears
        except ImportError as error:
            return f"NF4 kernel off ({error})"
        note = install_fast_linears(self.model, kernel)
        self._nf4_installed = bool(note)
        return note

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def load(cls, source: ModelSource, settings: AppSettings, progress: Progress):
        device = "cuda" if torch.cuda.is_available() else "cpu"
        progress(f"loading tokenizer of {source.display_name}", 0.1)
        model, tokenizer = cls._load_model_and_tokenizer(source, settings, device, progress)
        model.eval()
        eos = model.generation_config.eos_token_id
        eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
        if source.gguf_eos_token_id is not None:
            # transformers' GGUF conversion picks the wrong EOS for some models (SmolLM2 gets
            # <|im_start|>); the GGUF's own metadata is right.
            eos_ids = [source.gguf_eos_token_id]
        if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos_ids and \
                source.gguf_eos_token_id is None:
            eos_ids.append(tokenizer.eos_token_id)
        trained = getattr(model.config, "max_position_embeddings", None) or settings.context_length
        backend = cls(model, tokenizer, source.display_name, min(trained, settings.context_length),
                      eos_ids)
        backend.use_decoder(settings.decoder, settings.nf4_kernel, settings.decode_kernels)
        progress(f"decoding with {backend.decoder_note}", 0.95)
        return backend

    @classmethod
    def _load_model_and_tokenizer(cls, source: ModelSource, settings: AppSettings, device: str,
                                  progress: Progress):
        kwargs = {}
        where = source.path
        if source.gguf:
            where, kwargs["gguf_file"] = str(Path(source.path).parent), Path(source.path).name
        tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
        progress("loading weights", 0.3)
        if device == "cuda" and settings.load_in_4bit == "yes":
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=_pick_dtype(device))
        model = AutoModelForCausalLM.from_pretrained(where, dtype=_pick_dtype(device), **kwargs)
        if device == "cuda" and "quantization_config" not in kwargs:
            model.to(device)
        return model, tokenizer

    # -- generation ----------------------------------------------------------------------------

    def encode(self, prompt: str) -> list[int]:
        # The engine counts a prompt's tokens just before streaming it: remember the last one.
        last_prompt, last_ids = self._last_encoded  # one read: previews count tokens from other threads
        if last_prompt == prompt:
            return last_ids
        # A chat template may already have written the BOS token as text; don't add a second one.
        add_special = not starts_with_bos(prompt, self.tokenizer.bos_token or "")
        ids = self.tokenizer(prompt, add_special_tokens=add_special)["input_ids"]
        self._last_encoded = (prompt, ids)
        return ids

    def count_tokens(self, prompt: str) -> int:
        return len(self.encode(prompt))

    def generate_kwargs(self, settings: GenerationSettings) -> dict:
        kwargs = dict(max_new_tokens=settings.max_new_tokens, eos_token_id=self.eos_token_ids,
                      pad_token_id=self.tokenizer.pad_token_id or self.eos_token_ids[0],
                      repetition_penalty=settings.repetition_penalty, use_cache=True)
        if self.ignore_eos:
            kwargs["min_new_tokens"] = settings.max_new_tokens
        if settings.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p,
                          top_k=settings.top_k or None)
        return kwargs

    def _take_cache(self, session: str, ids: list[int]):
        """The session's last KV cache cropped to what it shares with ``ids``, or (None, 0)."""
        entry = self._caches.pop(session, None)
        if entry is None or not self.prefix_reuse:
            return None, 0
        cached_ids, cache, prefilled = entry
        keep = reusable(cached_ids, ids, prefilled, PREFILL_CHUNK)
        return (crop_cache(cache, keep), keep) if keep else (None, 0)

    def _keep_cache(self, session: str, sequence: list[int], cache, prefilled: int) -> None:
        if not self.prefix_reuse or cache is None:
            return
        self._caches[session] = (sequence[: cache_length(cache)], cache, prefilled)
        while len(self._caches) > PREFIX_CACHE_SESSIONS:
            self._caches.popitem(last=False)

    def forget_caches(self) -> None:
        self._caches.clear()
        self._saved.clear()
        if self.decoder is not None:
            self.decoder.cache.tokens = []  # keep the buffer and its CUDA graphs

    def _prepare_static(self, session: str, ids: list[int]) -> int:
        """Put the session's entries into the decoder's one cache; how many positions ``ids`` keep.

        The graphs are bound to one preallocated cache, so sessions take turns in it: the one
        leaving is saved as a copy of its valid entries (a few LRU sessions are kept), the one
        arriving is copied back in. Copying is a memory-bandwidth job, far cheaper than a prefill.
        """
        cache = self.decoder.cache
        if self._owner != session:
            saved = self._saved.pop(session, None)
            if self._owner is not None and self.prefix_reuse and cache.tokens:
                try:
                    self._saved[self._owner] = self.decoder.save(cache)
                except torch.OutOfMemoryError:  # reuse is an optimisation: drop it, keep serving
                    self._saved.clear()
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                while len(self._saved) > PREFIX_CACHE_SESSIONS:
                    self._saved.popitem(last=False)
            if saved is not None:
                self.decoder.restore(cache, saved)
            else:
                cache.tokens = []
            self._owner = session
        return self.decoder.reusable(cache, ids) if self.prefix_reuse else 0

    def stream(self, prompt: str, settings: GenerationSettings, cancel: threading.Event,
               session: str = "", constraint: Constraint | None = None) -> Iterator[Chunk]:
        ids = self.encode(prompt)
        mask = self.grammars.matcher(constraint) if constraint is not None else None
        if self.decoder is not None:
            return self._stream_static(ids, settings, cancel, session, mask)
        device = self.model.device
        input_ids = torch.tensor([ids], device=device)
        cache, keep = self._take_cache(session, ids)
        self.last_reused_tokens = keep
        processors = LogitsProcessorList(
            [_GrammarProcessor(mask, self.vocab_size, device, len(ids))] if mask else [])

        def work(emit: Emit):
            streamer = _IncrementalDetokenizer(self.tokenizer, ids, emit)
            with torch.inference_mode(), deterministic_attention():
                past = self._prefill_chunks(input_ids, cache, keep)
                extra = {"past_key_values": past} if past is not None else {}
                torch.manual_seed(settings.seed)
                out = self.model.generate(
                    input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                    streamer=streamer, stopping_criteria=StoppingCriteriaList([_CancelCriteria(cancel)]),
                    logits_processor=processors, return_dict_in_generate=True, **extra, **self.generate_kwargs(settings))
            self._keep_cache(session, out.sequences[0].tolist(), getattr(out, "past_key_values", None),
                             len(ids))

        return worker_stream(work, cancel)

    def _prefill_chunks(self, input_ids: torch.Tensor, cache, start: int):
        """Feed whole PREFILL_CHUNK-token chunks from ``start`` (a chunk boundary) up to the last
        boundary before the prompt's final token; ``generate`` then feeds the rest (1 to
        PREFILL_CHUNK tokens) itself. Same chunks whether the prompt is encoded whole or from a kept
        prefix, so reuse gives the same tokens as a full re-encode (see reuse.py)."""
        end = (input_ids.shape[1] - 1) // PREFILL_CHUNK * PREFILL_CHUNK
        for at in range(start, end, PREFILL_CHUNK):
            out = self.model(input_ids=input_ids[:, at:at + PREFILL_CHUNK], past_key_values=cache,
                             use_cache=True, logits_to_keep=1)
            cache = out.past_key_values
        return cache

    def _stream_static(self, ids: list[int], settings: GenerationSettings, cancel: threading.Event,
                       session: str, mask: TokenMask | None = None) -> Iterator[Chunk]:
        stop_ids = set() if self.ignore_eos else set(self.eos_token_ids)

        def work(emit: Emit):
            # the engine's lock is let go after a stall timeout even if a stuck run goes on: never
            # let a second run into the one cache and the graphs' inputs beside it
            if not self._decoding.acquire(blocking=False):
                raise RuntimeError("an earlier generation is still running on the GPU and does not "
                                   "stop; restart the app if this persists")
            try:
                keep = self.last_reused_tokens = self._prepare_static(session, ids)
                detok = _IncrementalDetokenizer(self.tokenizer, ids, emit)

                def on_token(token: int) -> bool:
                    detok.push([token])  # an EOS decodes to nothing but counts, as in generate()
                    if mask is not None and token not in stop_ids:
                        mask.advance(token)  # on the CPU, while the GPU runs the next step
                    return not cancel.is_set()

                torch_mask = (TorchMask(mask, self.vocab_size, self.decoder.device)
                              if mask is not None else None)
                with torch.inference_mode():
                    decode(self.decoder, self.decoder.cache, ids, keep, settings, stop_ids, on_token,
                           torch_mask)
            finally:
                self._decoding.release()

        return worker_stream(work, cancel)
