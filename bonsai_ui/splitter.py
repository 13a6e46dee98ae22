"""Pure functions over streamed model text: where the reasoning ends, where generation must stop.

Both work on text that is still arriving, so both hold back a tail that could be the beginning of a
marker: the user must never see ``### Resp`` flash in the Reasoning pane and then vanish.
"""

from __future__ import annotations

from dataclasses import dataclass


def _held_tail(text: str, markers) -> int:
    """Length of the longest end of ``text`` that is a proper beginning of one of ``markers``."""
    best = 0
    for marker in markers:
        for k in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:k]):
                best = k
                break
    return best


@dataclass(frozen=True)
class Split:
    reasoning: str
    response: str | None  # None until the response marker has arrived


def split_reasoning(text: str, response_marker: str, reasoning_start: str = "",
                    final: bool = False) -> Split:
    """Split the text generated so far into reasoning and response, for display.

    ``final`` says the stream has ended: nothing can still be a marker, so nothing is held back.
    """
    if reasoning_start:
        lead = text.lstrip()
        if lead.startswith(reasoning_start):
            text = lead[len(reasoning_start):]
        elif lead and reasoning_start.startswith(lead) and not final:
            return Split("", None)
    at = text.find(response_marker)
    if at >= 0:
        return Split(text[:at].strip(), text[at + len(response_marker):].strip())
    if not final:
        text = text[: len(text) - _held_tail(text, (response_marker,))]
    return Split(text.strip(), None)


class StopFilter:
    """Cuts a stream of text pieces at the first stop string.

    Backends differ in how (and whether) they honour stop strings, so the engine applies this one
    filter to every backend's output and cancels the backend when it fires.
    """

    def __init__(self, stops):
        self.stops = tuple(s for s in stops if s)
        self.stopped = False
        self._held = ""

    def feed(self, piece: str) -> str:
        """Return the text that is safe to show now."""
        if self.stopped:
            return ""
        text = self._held + piece
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            self._held = ""
            return text[: min(hits)]
        keep = _held_tail(text, self.stops)
        self._held = text[len(text) - keep:] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """The stream ended: a held tail was not a stop string after all."""
        text, self._held = self._held, ""
        return "" if self.stopped else text
