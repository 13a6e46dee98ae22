"""Attempts: every run kept with what produced it, so that edits can be compared, undone and exported.

The history lives in the browser (Gradio's BrowserState), not on the server: a Space is shared, and
one person's attempts are nobody else's business. So it is plain lists and dicts, it must survive
whatever the browser hands back (an old version, another app's value, a hand-edited blob), and it
is capped, because browser storage is small and a page left open for a day must not fill it.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

HISTORY_VERSION = 1
MARKS_VERSION = 1
MAX_ATTEMPTS = 200  # at ~5 kB an attempt, about 1 MB: well inside every browser's local storage
ATTEMPT_MODES = ("vanilla", "reasoning", "special", "continue")


def _new_id() -> str:
    return secrets.token_hex(4)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Attempt:
    question: str
    input: str = ""
    mode: str = "reasoning"
    prompt_format: str = "alpaca"
    reasoning_generated: str = ""  # as the model wrote it
    reasoning_sent: str = ""  # as the user edited it and sent it; equal to the above when unedited
    response: str = ""
    settings: dict = field(default_factory=dict)
    model: str = ""
    backend: str = ""
    timings: dict = field(default_factory=dict)
    ablation: dict = field(default_factory=dict)  # the ablation map of this reasoning (ablation.py)
    id: str = field(default_factory=_new_id)
    created: str = field(default_factory=_now)
    starred: bool = False
    rejected: bool = False
    note: str = ""

    @property
    def reasoning(self) -> str:
        """The reasoning the response was conditioned on: the user's version when there is one."""
        return self.reasoning_sent or self.reasoning_generated

    @property
    def key(self) -> tuple[str, str]:
        """Attempts answer the same question when question and input match, up to outer spaces."""
        return self.question.strip(), self.input.strip()

    @classmethod
    def from_dict(cls, data: Any) -> "Attempt":
        """Build from stored data, refusing wrong types; keys from a newer version are ignored."""
        if not isinstance(data, dict):
            raise ValueError(f"an attempt must be an object, got {type(data).__name__}")
        values = {}
        for f in fields(cls):
            if f.name not in data:
                if f.name in ("question", "id"):
                    raise ValueError(f"attempt without {f.name!r}")
                continue
            value = data[f.name]
            expected = {"dict": dict, "bool": bool}.get(f.type, str)
            if not isinstance(value, expected):
                raise ValueError(f"attempt field {f.name!r} must be {expected.__name__}, "
                                 f"got {type(value).__name__}")
            values[f.name] = value
        if values.get("mode", "reasoning") not in ATTEMPT_MODES:
            raise ValueError(f"unknown attempt mode {values['mode']!r}")
        return cls(**values)


def timings_dict(timings: list) -> dict:
    """The figures worth keeping from a run's engine Timings (one, or two when it fell back)."""
    if not timings:
        return {}
    first = timings[0]
    ends = [t.last_token or t.started for t in timings]
    new = sum(t.new_tokens for t in timings)
    speeds = [(t.decode_tps, t.new_tokens) for t in timings if t.decode_tps]
    weight = sum(w for _, w in speeds)
    return {
        "ttft_s": None if first.ttft is None else round(first.ttft, 3),
        "total_s": round(max(ends) - first.started, 3),
        "new_tokens": new,
        "tokens_per_s": round(sum(s * w for s, w in speeds) / weight, 2) if weight else None,
    }


@dataclass
class History:
    attempts: list[Attempt] = field(default_factory=list)  # oldest first
    limit: int = MAX_ATTEMPTS

    # -- storage -------------------------------------------------------------------------------

    def to_data(self) -> dict:
        return {"version": HISTORY_VERSION, "attempts": [asdict(a) for a in self.attempts]}

    @classmethod
    def from_data(cls, data: Any, limit: int = MAX_ATTEMPTS) -> tuple["History", str]:
        """The stored history and a warning ("" when all is well); never raises.

        Nothing stored yet (None, {}) is a fresh start, not a problem. A value that is not our
        history at all starts afresh with a warning; single unreadable attempts are skipped, since
        losing all attempts for one bad entry would be worse.
        """
        if data is None or data == {} or data == []:
            return cls(limit=limit), ""
        if not isinstance(data, dict) or not isinstance(data.get("attempts"), list):
            return cls(limit=limit), "The stored history was not readable, so it starts empty."
        version = data.get("version")
        if version != HISTORY_VERSION:
            return cls(limit=limit), (f"The stored history has version {version!r}, this app reads "
                                      f"version {HISTORY_VERSION}, so it starts empty.")
        history, bad, seen = cls(limit=limit), 0, set()
        for item in data["attempts"]:
            try:
                attempt = Attempt.from_dict(item)
            except ValueError:
                bad += 1
                continue
            if attempt.id in seen:
                bad += 1
                continue
            seen.add(attempt.id)
            history.attempts.append(attempt)
        history._cap(keep=None)
        warning = f"{bad} unreadable stored attempt(s) were skipped." if bad else ""
        return history, warning

    def marks_to_data(self) -> dict:
        """Stars, rejections and notes alone, stored apart from the texts: a click on ★ then
        writes a few bytes an attempt to the browser (~10 kB at 200 attempts) instead of the
        whole history (~10 MB at 200 attempts of 3,000-token reasoning and response)."""
        return {"version": MARKS_VERSION,
                "marks": {a.id: [a.starred, a.rejected, a.note] for a in self.attempts}}

    def apply_marks(self, data: Any) -> None:
        """Lay stored marks over the attempts; never raises. What is not readable, or names no
        attempt here, is ignored: the history's own marks then stand, since they were right when
        the history was last written."""
        if not isinstance(data, dict) or data.get("version") != MARKS_VERSION \
                or not isinstance(data.get("marks"), dict):
            return
        marks = data["marks"]
        for attempt in self.attempts:
            mark = marks.get(attempt.id)
            if isinstance(mark, list) and len(mark) == 3 and isinstance(mark[0], bool) \
                    and isinstance(mark[1], bool) and isinstance(mark[2], str):
                attempt.starred, attempt.rejected, attempt.note = mark

    # -- changes -------------------------------------------------------------------------------

    def add(self, attempt: Attempt) -> Attempt:
        while any(a.id == attempt.id for a in self.attempts):
            attempt.id = _new_id()
        self.attempts.append(attempt)
        self._cap(keep=attempt.id)
        return attempt

    def _cap(self, keep: str | None) -> None:
        """Drop the oldest plain attempts first, then rejected or annotated ones, starred ones last.

        Rejected attempts are worth keeping over plain ones: they are half of a DPO pair. The attempt
        just added is never dropped, whatever the rest is marked.
        """
        excess = len(self.attempts) - self.limit
        if excess <= 0:
            return
        order = sorted((a for a in self.attempts if a.id != keep),  # stable: oldest first in a rank
                       key=lambda a: 2 if a.starred else 1 if (a.rejected or a.note) else 0)
        drop = {a.id for a in order[:excess]}
        self.attempts = [a for a in self.attempts if a.id not in drop]

    def get(self, attempt_id: str) -> Attempt:
        for attempt in self.attempts:
            if attempt.id == attempt_id:
                return attempt
        raise KeyError(f"no attempt {attempt_id!r} in the history")

    def star(self, attempt_id: str, on: bool = True) -> Attempt:
        """A starred attempt is a good example; starring clears a rejection (both would be noise)."""
        attempt = self.get(attempt_id)
        attempt.starred = on
        attempt.rejected = attempt.rejected and not on
        return attempt

    def reject(self, attempt_id: str, on: bool = True) -> Attempt:
        attempt = self.get(attempt_id)
        attempt.rejected = on
        attempt.starred = attempt.starred and not on
        return attempt

    def set_note(self, attempt_id: str, note: str) -> Attempt:
        attempt = self.get(attempt_id)
        attempt.note = note
        return attempt

    def clear(self, keep_starred: bool = False) -> None:
        self.attempts = [a for a in self.attempts if keep_starred and a.starred]

    # -- reading -------------------------------------------------------------------------------

    def for_question(self, question: str, input: str = "") -> list[Attempt]:
        """The attempts at this question and input, newest first, as the history panel lists them."""
        key = (question.strip(), input.strip())
        return [a for a in reversed(self.attempts) if a.key == key]

    def restore(self, attempt_id: str) -> dict:
        """The editor's fields as they were when this attempt ran, to try again from there."""
        a = self.get(attempt_id)
        return {"question": a.question, "input": a.input, "mode": a.mode,
                "prompt_format": a.prompt_format, "reasoning": a.reasoning,
                "response": a.response, "settings": dict(a.settings)}
