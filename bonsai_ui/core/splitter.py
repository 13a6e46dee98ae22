"""Pure functions over streamed model text: where the reasoning ends, where generation must stop.

Both work on text that is still arriving, so both hold back a tail that could be the beginning of a
marker: the user must never see ``### Resp`` flash in the Reasoning pane and then vanish.
"""

from __future__ import annotations

import re
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


@dataclass(frozen=True)
class Until:
    """A stop that counts only until ``marker`` has been written: a stray ``### Output:`` ends the
    reasoning, while the response after ``### Response:`` may open with the same header."""

    marker: str
    stop: str


class StopFilter:
    """Cuts a stream of text pieces at the first stop string.

    Backends differ in how (and whether) they honour stop strings, so the engine applies this one
    filter to every backend's output and cancels the backend when it fires.

    A stop may be a pair ``(marker, stop)``: ``stop`` counts only once ``marker`` has been
    written (``""``: the output's start) and some text has followed it. The Alpaca response ends
    at the next ``### `` header, but the reasoning before ``### Response:`` may hold headers of its
    own, and a response that opens with a header must not end empty. An ``Until`` is the converse:
    a stop that counts only before its marker.
    """

    def __init__(self, stops):
        self.stops = tuple(s for s in stops if isinstance(s, str) and s)
        self.after = tuple(s for s in stops if isinstance(s, tuple) and s[1])
        self.until = tuple(s for s in stops if isinstance(s, Until) and s.stop)
        self.stopped = False
        self._held = ""
        self._released = ""  # all text shown so far, to find the markers of ``after`` and ``until``

    def _active(self, text: str) -> list[tuple[str, int, int | None]]:
        """The stops that apply to ``text`` (which follows what was released), each with the span
        of ``text`` in which it may match (start, end; end None: to the end)."""
        active = [(s, 0, None) for s in self.stops]
        whole = self._released + text
        for marker, stop in self.after:
            at = whole.find(marker)
            begun = re.search(r"\S", whole[at + len(marker):]) if at >= 0 else None
            if begun:  # from just after the first character written after the marker
                start = at + len(marker) + begun.start() + 1
                active.append((stop, max(start - len(self._released), 0), None))
        for until in self.until:
            at = whole.find(until.marker)
            if at < 0:
                active.append((until.stop, 0, None))
            elif at > len(self._released):  # the marker is in ``text``: the stop only before it
                active.append((until.stop, 0, at - len(self._released)))
        return active

    def feed(self, piece: str) -> str:
        """Return the text that is safe to show now."""
        if self.stopped:
            return ""
        text = self._held + piece
        active = self._active(text)
        hits = [i for i in (text.find(s, start, end) for s, start, end in active) if i >= 0]
        if hits:
            self.stopped = True
            self._held = ""
            shown = text[: min(hits)]
        else:
            keep = _held_tail(text, [s for s, _, _ in active])
            self._held = text[len(text) - keep:] if keep else ""
            shown = text[: len(text) - keep]
        self._released += shown
        return shown

    def flush(self) -> str:
        """The stream ended: a held tail was not a stop string after all."""
        text, self._held = self._held, ""
        return "" if self.stopped else text
