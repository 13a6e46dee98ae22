"""The final answer of a response, as the ablation map and the guided demo compare it."""

from __future__ import annotations

import re
import unicodedata

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def final_answer(text: str) -> str:
    """A short answer that can be compared: the last number (full-width digits and 1,000-style
    separators read as plain numbers), else the first non-empty line; "" for an empty text."""
    plain = unicodedata.normalize("NFKC", text).replace("−", "-")
    numbers = _NUMBER.findall(plain)
    if numbers:
        return numbers[-1].replace(",", "").rstrip(".")
    return next((line.strip() for line in plain.splitlines() if line.strip()), "")
