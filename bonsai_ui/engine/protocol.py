"""The one small protocol every backend speaks, and the worker-thread plumbing they share.

A backend only has to turn a prompt into pieces of text; locking, stop strings, timing and the
reasoning/response split live above it (``core.py``, ``core/splitter.py``) so that they behave the same
on llama.cpp, transformers and Unsloth.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

from ..core.prompts import ChatTemplate
from ..core.settings import GenerationSettings


@dataclass(frozen=True)
class Chunk:
    text: str
    tokens: int  # new tokens generated so far in this call, counting this chunk
    ids: tuple[int, ...] = ()  # the token ids this chunk adds, for the run's fingerprint


class Backend(Protocol):
    name: str  # "llama.cpp", "transformers", "unsloth", or the remote engine ("vLLM 0.11.0", ...)
    model_name: str  # what the stats line shows
    context_length: int  # prompt + new tokens must fit in this
    chat: ChatTemplate  # the model's own chat template, for the chat prompt format

    def count_tokens(self, prompt: str) -> int: ...

    def stream(self, prompt: str, settings: GenerationSettings, cancel: threading.Event,
               session: str = "") -> Iterator[Chunk]:
        """Yield text as it is generated; stop within a token once ``cancel`` is set.

        ``session`` names whose KV cache to reuse, for backends that keep one per session. A
        backend that can hold output to a format also has ``format_support(constraint) -> str``
        ("" when it enforces the constraint, else why not) and takes ``constraint=`` here; the
        Engine passes it only to a backend that said it enforces it.
        """
        ...


class LoadError(RuntimeError):
    """A model that cannot be loaded; the message names the model and the cause."""


class EngineError(RuntimeError):
    """An engine failed a run — a served one: unreachable, an error status, a broken or stalled
    stream; an in-process one: stalled —; the message is for the user and says what happened."""


Emit = Callable[..., None]  # emit(text, tokens_so_far, new_ids=())

# Seconds without a single token before a run is declared stuck. Generous: the first token of a
# 32B model on a busy GPU can take long, but a dead worker must never hang the UI forever.
STALL_TIMEOUT_S = 600.0


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


_DONE = object()


class _Workers:
    """Long-lived daemon threads that run generation jobs, reusing an idle one when there is one.

    Why not a new thread per request: CUDA libraries set up per-thread state (cuBLAS handles and
    workspaces) on a thread's first use, which cost ~45 ms before every first token on an H100.
    A job that hangs keeps its thread; the next job then gets a new one.
    """

    def __init__(self):
        self._idle: queue.SimpleQueue = queue.SimpleQueue()  # inboxes of idle threads

    def submit(self, job: Callable[[], None], then: Callable[[], None]) -> None:
        """Run ``job``, then ``then`` -- after the thread is idle again, so the next job reuses it."""
        try:
            inbox = self._idle.get_nowait()
        except queue.Empty:
            inbox = queue.SimpleQueue()
            threading.Thread(target=self._loop, args=(inbox,), name="bonsai-generate",
                             daemon=True).start()
        inbox.put((job, then))

    def _loop(self, inbox: queue.SimpleQueue) -> None:
        while True:
            job, then = inbox.get()
            try:
                job()
            finally:
                self._idle.put(inbox)
                then()


_WORKERS = _Workers()


def worker_stream(work: Callable[[Emit], None], cancel: threading.Event,
                  stall_timeout: float | None = None) -> Iterator[Chunk]:
    """Run ``work(emit)`` in a worker thread and yield what it emits.

    Generation blocks, so it runs in a worker while the caller (a Gradio generator) yields chunks.
    An exception in the worker is re-raised here instead of leaving the caller waiting; and when the
    caller stops early (Stop, a closed browser tab), the worker is cancelled and waited for before
    this returns, so no ghost generation keeps holding the model.
    """
    stall_timeout = stall_timeout or STALL_TIMEOUT_S  # read per run: tests shorten it
    q: queue.SimpleQueue = queue.SimpleQueue()
    ended = threading.Event()

    def job():
        try:
            work(lambda text, tokens, ids=(): q.put(Chunk(text, tokens, tuple(ids))))
        except BaseException as error:  # noqa: BLE001 - handed over to the consumer
            q.put(_Failure(error))

    def then():
        ended.set()
        q.put(_DONE)

    _WORKERS.submit(job, then)
    finished = False
    try:
        while True:
            try:
                item = q.get(timeout=stall_timeout)
            except queue.Empty:
                raise EngineError(f"the model produced nothing for {stall_timeout:.0f} s: it stalled "
                                  f"and was stopped. The partial text is kept.") from None
            if item is _DONE:
                finished = True
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        if not finished:  # the caller left early, or the worker failed: make sure it ends
            cancel.set()
        ended.wait(timeout=stall_timeout)
