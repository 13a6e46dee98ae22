"""Which cached positions a new prompt may keep, so that reuse never changes a single token.

Why this is more than "the common prefix": a key/value entry computed in a batch of 256 tokens is
not bit-identical to the same entry computed in a batch of 2,000, or one token at a time, because
matrix kernels pick their tiling (and so their order of additions) by shape. Reusing entries that a
full re-encode would have computed differently makes a regenerate after an edit write other tokens
than the same prompt sent fresh -- measured on an H200 before this rule: 0 words alike from the
start between "reuse" and "full" on a 7B shape.

So every backend prefills in fixed-size chunks aligned to absolute positions (0, C, 2C, ...), and
a new prompt keeps only whole chunks that were computed by a prefill of the same tokens: then each
position it keeps was computed by exactly the computation a full re-encode does for it.
"""

from __future__ import annotations


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def reusable(cached: list[int], ids: list[int], prefilled: int, chunk: int) -> int:
    """How many cached positions a prompt ``ids`` keeps: its common prefix with ``cached``, only
    within the first ``prefilled`` positions (those a prefill wrote; decoded tokens were computed
    one at a time), short of its last token (fed again to get logits), cut back to whole chunks."""
    keep = min(common_prefix(cached, ids), prefilled, len(ids) - 1)
    return max(keep, 0) // chunk * chunk


def starts_with_bos(prompt: str, bos_text: str) -> bool:
    """Whether a rendered prompt already begins with the BOS token written as text (chat templates
    do), in which case a tokenizer must not add a second one."""
    return bool(bos_text) and prompt.startswith(bos_text)
