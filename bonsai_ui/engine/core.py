"""The engine: one loaded backend, used by one generation at a time (a served engine: several).

One model lives in the process; two generations interleaving on it would corrupt each other's KV
cache, so runs take a lock. Stop strings and timing are applied here, identically for every backend.
"""

from __future__ import annotations

import hashlib
import threading
import time
from array import array
from dataclasses import dataclass, field
from typing import Iterator

from ..core.constraints import Constraint
from ..core.settings import GenerationSettings
from ..core.splitter import StopFilter
from .constrained import compile_grammar
from .protocol import Backend


def fingerprint(ids: list[int]) -> str:
    """8 hex digits naming exact output tokens: two runs with the same fingerprint wrote the same
    tokens (a chance collision is 1 in 4 billion); "" when there are none."""
    if not ids:
        return ""
    return hashlib.blake2b(array("q", ids).tobytes(), digest_size=4).hexdigest()


class PromptTooLong(ValueError):
    """The prompt plus the tokens to generate do not fit the model's context."""


@dataclass
class Timing:
    """Timings of one model call, filled in as it streams (so the UI can show them live)."""

    prompt_tokens: int = 0
    new_tokens: int = 0
    started: float = field(default_factory=time.perf_counter)
    first_token: float | None = None
    last_token: float | None = None
    ended_by: str = ""  # "end of text", "stop string", "max new tokens", "stopped"
    reused_tokens: int | None = None  # prompt tokens served from the KV cache, where known
    token_ids: list[int] = field(default_factory=list)  # the new tokens, for the fingerprint
    # a run under a constraint: "" when the engine enforced its format, else why it did not
    format_note: str | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.token_ids)

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.started

    @property
    def decode_tps(self) -> float | None:
        """Tokens per second after the first token: the decode speed, free of prompt processing."""
        if self.first_token is None or self.last_token is None or self.new_tokens < 2:
            return None
        span = self.last_token - self.first_token
        return (self.new_tokens - 1) / span if span > 0 else None


class Engine:
    def __init__(self, backend: Backend):
        self.backend = backend
        # In-process backends hold one model and one KV cache: one run at a time. A served engine
        # batches runs itself, so up to its ``parallel`` runs stream at once.
        self._parallel = getattr(backend, "parallel", 1)
        self._lock = threading.BoundedSemaphore(self._parallel)
        self._formats: dict[str, str] = {}  # a constraint's grammar -> "" enforced, or why not

    def check_format(self, constraint: Constraint) -> str:
        """Whether this engine enforces ``constraint`` ("" when it does, else why not), asked of
        the backend once: the app asks at start, so that a bad grammar stops the start
        (ConstraintError) and a served engine that ignores the request field is found before the
        first run relies on it."""
        note = self._formats.get(constraint.gbnf)
        if note is None:
            compile_grammar(constraint)  # the grammar itself, whichever engine is to apply it
            support = getattr(self.backend, "format_support", None)
            note = support(constraint) if support else (
                f"{self.backend.name} cannot enforce a format while decoding")
            self._formats[constraint.gbnf] = note
        return note

    @property
    def idle(self) -> bool:
        """No run holds the engine (tests: a closed or failed stream must let go of it)."""
        return self._lock._value == self._parallel  # noqa: SLF001 - BoundedSemaphore's count

    def check_fits(self, prompt: str, max_new_tokens: int) -> int:
        """Refuse a prompt that cannot fit, before any work; return its token count."""
        n = self.backend.count_tokens(prompt)
        limit = self.backend.context_length
        if n + max_new_tokens > limit:
            raise PromptTooLong(
                f"The prompt is {n:,} tokens; with max new tokens {max_new_tokens:,} that is "
                f"{n + max_new_tokens:,}, over the model's context of {limit:,} tokens. "
                f"Shorten the question or reasoning, or lower max new tokens "
                f"(at most {max(limit - n, 0):,} would fit).")
        return n

    def stream(self, prompt: str, settings: GenerationSettings, cancel: threading.Event,
               stops: tuple[str, ...], timing: Timing, session: str = "",
               constraint: Constraint | None = None) -> Iterator[str]:
        """Yield visible text; ``timing`` is updated in place as tokens arrive. ``constraint``:
        the output must match it, where the engine can enforce it (``timing.format_note`` says)."""
        timing.prompt_tokens = self.check_fits(prompt, settings.max_new_tokens)
        extra = {}
        if constraint is not None:
            timing.format_note = self.check_format(constraint)
            if not timing.format_note:
                extra["constraint"] = constraint
        stop_filter = StopFilter(stops)
        with self._lock:
            timing.started = time.perf_counter()
            for chunk in self.backend.stream(prompt, settings, cancel, session, **extra):
                now = time.perf_counter()
                timing.token_ids.extend(chunk.ids)
                if chunk.tokens > timing.new_tokens:
                    timing.first_token = timing.first_token or now
                    timing.last_token = now
                    timing.new_tokens = chunk.tokens
                text = stop_filter.feed(chunk.text)
                if text:
                    yield text
                if stop_filter.stopped:
                    timing.ended_by = "stop string"
                    cancel.set()
                    break
            else:
                tail = stop_filter.flush()
                if tail:
                    yield tail
            reused = getattr(self.backend, "last_reused_tokens", None)
            timing.reused_tokens = reused
        if not timing.ended_by:
            if cancel.is_set():
                timing.ended_by = "stopped"
            elif timing.new_tokens >= settings.max_new_tokens:
                timing.ended_by = "max new tokens"
            else:
                timing.ended_by = "end of text"
