"""Hugging Face ZeroGPU Spaces: a GPU is attached only inside functions decorated @spaces.GPU.

The model loads once at start-up (ZeroGPU lets the main process place it on "cuda"); each run
borrows the GPU for a duration that fits its max new tokens, because ZeroGPU refuses or cuts runs
that outlast their declared duration. Elsewhere nothing changes and ``spaces`` is never imported.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Callable

# Seconds a run may take: a fixed allowance plus a pessimistic decode speed, for two phases
# (reasoning, then the response when the model wrote no marker).
BASE_SECONDS = 15
TOKENS_PER_SECOND = float(os.environ.get("BONSAI_ZEROGPU_MIN_TOK_S", "15"))
MAX_SECONDS = 300


def on_zerogpu() -> bool:
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true") and \
        importlib.util.find_spec("spaces") is not None


def duration_for(max_new_tokens: float) -> int:
    return int(min(MAX_SECONDS, BASE_SECONDS + 2 * float(max_new_tokens) / TOKENS_PER_SECOND))


def gpu(fn: Callable, max_new_tokens_arg: str = "max_new_tokens") -> Callable:
    """Wrap a UI handler in @spaces.GPU on ZeroGPU; return it unchanged anywhere else."""
    if not on_zerogpu():
        return fn
    import inspect

    import spaces

    position = list(inspect.signature(fn).parameters).index(max_new_tokens_arg)

    def duration(*args, **kwargs):
        value = kwargs.get(max_new_tokens_arg, args[position] if len(args) > position else 512)
        return duration_for(value or 512)

    return spaces.GPU(duration=duration)(fn)
