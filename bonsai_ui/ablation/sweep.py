"""The reasoning ablation map: which sentence of the reasoning does the answer depend on?

For the reasoning in the editor, the response is regenerated with the special prompt once as
written (the baseline) and once per sentence (or paragraph) with that unit removed, or replaced by
another text. Each variant's response is measured against the baseline's: the share of words that
changed (the Compare view's word diff, ``diffing.py``), whether the final answer changed (the last
number, else the first line), and whether the response is identical, character for character.

Cost: the variants run from the last unit to the first. A variant's prompt shares everything up to
its removed unit with the previous variant (which removed the unit after it), so the engine keeps
that prefix in its cache -- in whole prefill chunks (256 tokens on the transformers backends,
llama.cpp's 512-token batches: ``engine/reuse.py``). Going from first to last would share only up
to the unit *before*. The tokens each variant reused are reported, from the engine's Timing.

Pure logic, no Gradio: the UI (``ui/ablation_tab.py``) maps the states onto components, the API and
tests drive the same generator.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from typing import Iterator

from ..core.answers import final_answer
from ..core.cells import csv_cell
from ..workbench.attempts import Attempt
from ..workbench.diffing import align, count_changes, tokenize
from ..workbench.export import alpaca_jsonl
from ..core.prompts import PROMPTS_DIR
from ..editor.runs import Runner, UserError
from ..core.settings import GenerationSettings

UNITS = ("sentence", "paragraph")
RESULT_VERSION = 1

# -- splitting -----------------------------------------------------------------------------------

# A sentence ends at 。！？!? or a run of full stops, with the closing quotes or brackets after them;
# a full stop only where a space or the line's end follows ("3.5", "file.txt" go on).
_END = re.compile(r"[。！？!?]+[」』）)\"'”’]*|\.+[」』）)\"'”’]*(?=\s|$)")
# A list item's marker is no sentence: "1. Jack has 4 pears." is one sentence, not "1." and a rest.
_LIST_MARKER = re.compile(r"\s*(?:[-*+•・]|\(?\d{1,3}[.)）]|（\d{1,3}）|[a-zA-Z][.)])\s+")
# Words whose full stop ends no sentence. Not "etc." or "No.", which end sentences as often as not.
ABBREVIATIONS = frozenset({"e.g", "i.e", "cf", "vs", "dr", "mr", "mrs", "ms", "prof", "st", "jr", "sr",
                           "fig", "approx", "eq", "ca"})
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")


@dataclass(frozen=True)
class Span:
    """One unit of the reasoning: ``text[start:end]``, without the whitespace around it."""

    start: int
    end: int
    text: str


def _abbreviation(line: str, at: int) -> bool:
    word = _WORD_BEFORE.search(line[:at])
    return bool(word) and word.group(1).lower().rstrip(".") in ABBREVIATIONS


def _line_sentences(line: str, offset: int) -> list[Span]:
    marker = _LIST_MARKER.match(line)
    spans, begin = [], len(line) - len(line.lstrip())
    for match in _END.finditer(line, marker.end() if marker else 0):
        if match.group().startswith(".") and _abbreviation(line, match.start()):
            continue
        if line[begin:match.end()].strip():
            spans.append(Span(offset + begin, offset + match.end(), line[begin:match.end()]))
        begin = match.end() + len(line[match.end():]) - len(line[match.end():].lstrip())
    rest = line[begin:].rstrip()
    if rest:
        spans.append(Span(offset + begin, offset + begin + len(rest), rest))
    return spans


def split_units(text: str, unit: str = "sentence") -> list[Span]:
    """The reasoning's sentences (every line break ends one: list items, headings) or paragraphs
    (separated by blank lines), in order."""
    if unit not in UNITS:
        raise UserError(f"unknown unit {unit!r}; choose one of {', '.join(UNITS)}")
    if unit == "paragraph":
        out = []
        for m in re.finditer(r"[^\n]*\S[^\n]*(?:\n[^\n]*\S[^\n]*)*", text):
            lead = len(m.group()) - len(m.group().lstrip())
            body = m.group().strip()
            out.append(Span(m.start() + lead, m.start() + lead + len(body), body))
        return out
    return [s for m in re.finditer(r"[^\n]+", text) for s in _line_sentences(m.group(), m.start())]


def variant(text: str, units: list[Span], i: int, replacement: str = "") -> tuple[str, str]:
    """The reasoning without unit ``i`` (or with ``replacement`` in its place) and the exact text
    taken out. A removed unit takes one of the two gaps around it along and leaves the other: the
    one with more line breaks stays (the text's start and end count as the most), so that removing
    a list item or the sentence that ends a line keeps the lines apart."""
    u = units[i]
    if replacement:
        return text[:u.start] + replacement + text[u.end:], u.text
    before = units[i - 1].end if i else None
    after = units[i + 1].start if i + 1 < len(units) else None
    keep_before = before is None or (after is not None and text.count("\n", before, u.start)
                                     >= text.count("\n", u.end, after))
    start, end = (u.start, after if after is not None else len(text)) if keep_before else (before, u.end)
    return text[:start] + text[end:], text[start:end]


# -- replacements --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Replacement:
    """A text put in place of each unit instead of removing it (``[[replacement]]`` in
    ``prompts/interventions.toml``)."""

    id: str
    label_en: str
    label_ja: str
    text_en: str
    text_ja: str


@lru_cache(maxsize=None)
def replacements() -> tuple[Replacement, ...]:
    """Checked when loaded, so that a typo in the data file fails at start, not at a click."""
    data = tomllib.loads((PROMPTS_DIR / "interventions.toml").read_text(encoding="utf-8"))
    items = tuple(Replacement(**item) for item in data.get("replacement", ()))
    for item in items:
        if not (item.text_en.strip() and item.text_ja.strip()):
            raise ValueError(f"replacement {item.id!r} needs text_en and text_ja")
    if len({item.id for item in items}) != len(items):
        raise ValueError("replacement ids must be unique")
    return items


# -- change measures -----------------------------------------------------------------------------

def words(text: str) -> int:
    """Words as the diff counts them: a CJK character is a word, whitespace is none."""
    return sum(1 for t in tokenize(text) if not t.isspace())


def change_share(old: str, new: str) -> float:
    """The share of words that differ: (added + removed) / (words of old + words of new), from the
    Compare view's word alignment (``align``: no equal word folded into a change); 0.0 for
    identical texts, 1.0 for texts with no word in common."""
    total = words(old) + words(new)
    if not total:
        return 0.0
    added, removed = count_changes(align(old, new))
    return (added + removed) / total


# -- the sweep -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One regenerated response: the baseline (index 0) or the variant without unit ``index``."""

    index: int  # unit number from 1 in reading order; 0: the reasoning as written
    sentence: str  # the unit as it stands in the reasoning ("" for the baseline)
    removed: str  # exactly what was taken out of the reasoning, whitespace included
    replacement: str  # what went in its place ("" when removed)
    reasoning: str  # the reasoning sent
    response: str
    change_share: float  # of words, against the baseline's response
    answer: str  # final_answer(response)
    answer_changed: bool
    identical: bool  # the response is the baseline's, character for character
    tokens: str  # fingerprint of the output tokens ("" when the engine reports none)
    prompt_tokens: int
    reused_tokens: int  # prompt tokens served from the engine's cache
    new_tokens: int
    seconds: float
    first_token_s: float  # prompt processing, mostly: what prefix reuse saves


@dataclass(frozen=True)
class AblationRequest:
    question: str
    input: str
    reasoning: str
    prompt_format: str
    settings: GenerationSettings
    unit: str = "sentence"
    replacement: str = ""  # "" removes each unit
    cap: int = 40  # units at most (AppSettings.ablation_max_sentences)


@dataclass(frozen=True)
class Result:
    """What a sweep has so far: the baseline first, then the variants by unit number."""

    units: tuple[Span, ...]  # all units, including any beyond the cap
    rows: tuple[Row, ...] = ()
    total: int = 0  # responses the sweep makes: the baseline and one per unit within the cap
    finished: bool = False
    stopped: bool = False
    unit: str = "sentence"
    replacement: str = ""
    note: str = ""  # the cap, when it left units out
    reasoning: str = ""  # the reasoning the units are spans of

    @property
    def done(self) -> int:
        return len(self.rows)

    @property
    def baseline(self) -> Row | None:
        return self.rows[0] if self.rows and self.rows[0].index == 0 else None

    def row(self, index: int) -> Row | None:
        return next((r for r in self.rows if r.index == index), None)

    @property
    def status(self) -> str:
        state = "⏹ stopped" if self.stopped else "✅ done" if self.finished else "⏳ running"
        reused = sum(r.reused_tokens for r in self.rows)
        prompt = sum(r.prompt_tokens for r in self.rows)
        seconds = sum(r.seconds for r in self.rows)
        line = (f"{state} · {self.done} of {self.total} responses · {seconds:.1f} s · "
                f"{reused:,} of {prompt:,} prompt tokens reused from cache")
        changed = sum(r.answer_changed for r in self.rows[1:])
        same = sum(r.identical for r in self.rows[1:])
        if self.done > 1:
            line += f" · final answer changed by {changed}, identical response for {same}"
        return f"{line}\n\n{self.note}" if self.note else line

    # -- storage with the attempt ----------------------------------------------------------------

    def to_data(self) -> dict:
        return {"version": RESULT_VERSION, "unit": self.unit, "replacement": self.replacement,
                "total": self.total, "finished": self.finished, "stopped": self.stopped,
                "note": self.note, "reasoning": self.reasoning, "units": [[u.start, u.end, u.text] for u in self.units],
                "rows": [asdict(r) for r in self.rows]}

    @classmethod
    def from_data(cls, data) -> "Result | None":
        """A stored result, or None when there is none or it is not readable (then the map is
        simply not shown: the sweep can be run again)."""
        if not isinstance(data, dict) or data.get("version") != RESULT_VERSION:
            return None
        try:
            # JSON (and the browser's storage) writes 0.0 as 0: numbers are read back by type
            kinds = {f.name: {"float": float, "int": int, "bool": bool, "str": str}[f.type]
                     for f in fields(Row)}
            rows = tuple(Row(**{k: kinds[k](r[k]) for k in kinds}) for r in data["rows"])
            units = tuple(Span(int(a), int(b), str(t)) for a, b, t in data["units"])
            return cls(units, rows, int(data["total"]), bool(data["finished"]), bool(data["stopped"]),
                       str(data["unit"]), str(data["replacement"]), str(data.get("note", "")),
                       str(data["reasoning"]))
        except (KeyError, TypeError, ValueError):
            return None


class Ablator:
    """Runs sweeps through the runner: each response is one ``Runner.respond`` of a ``series``,
    so the runner's Stop ends the sweep and the finished rows stay."""

    def __init__(self, runner: Runner):
        self.runner = runner

    def stop(self, session: str) -> bool:
        return self.runner.stop(session)

    def sweep(self, request: AblationRequest, session: str = "", *,
              forget_caches: bool = False) -> Iterator[Result]:
        """Yield the Result after the baseline and after each variant; a Stop ends it with the
        finished rows kept. ``forget_caches``: re-encode every prompt in full (the benchmark's
        naive baseline). Raises UserError for input that cannot be ablated."""
        run = self.runner.prepare("special", request.question, request.input, request.prompt_format,
                                  request.reasoning, request.settings)
        if not request.reasoning.strip():
            raise UserError("The reasoning is empty: there is nothing to ablate. Generate a "
                            "reasoning (reasoning mode) or write one first. / 推論が空です。")
        units = split_units(request.reasoning, request.unit)
        kept = units[: max(request.cap, 1)]
        note = "" if len(kept) == len(units) else (
            f"Only the first {len(kept)} of {len(units)} {request.unit}s were ablated: the cap is "
            f"{request.cap} (--ablation-max-sentences). / 上限のため最初の{len(kept)}件のみ。")
        result = Result(tuple(units), (), len(kept) + 1, unit=request.unit,
                        replacement=request.replacement, note=note, reasoning=request.reasoning)
        with self.runner.series(session):
            base = self.runner.respond(run, request.reasoning, session, forget_caches=forget_caches)
            if base is None:
                yield replace(result, stopped=True)
                return
            rows = [self._row(0, None, "", "", request.reasoning, *base, None)]
            result = replace(result, rows=tuple(rows))
            yield result
            for i in reversed(range(len(kept))):  # last first: each variant keeps the next's prefix
                text, removed = variant(request.reasoning, units, i, request.replacement)
                out = self.runner.respond(run, text, session, forget_caches=forget_caches)
                if out is None:
                    yield replace(result, stopped=True)
                    return
                rows.append(self._row(i + 1, units[i], removed, request.replacement, text, *out, rows[0]))
                result = replace(result, rows=(rows[0], *sorted(rows[1:], key=lambda r: r.index)))
                yield result
            yield replace(result, finished=True)

    @staticmethod
    def _row(index: int, unit: Span | None, removed: str, replacement: str, reasoning: str,
             response: str, timing, base: Row | None) -> Row:
        answer = final_answer(response)
        end = timing.last_token or time.perf_counter()
        return Row(index, unit.text if unit else "", removed, replacement, reasoning, response,
                   change_share(base.response, response) if base else 0.0, answer,
                   bool(base) and answer != base.answer, bool(base) and response == base.response,
                   timing.fingerprint, timing.prompt_tokens, timing.reused_tokens or 0,
                   timing.new_tokens, round(end - timing.started, 3),
                   round(timing.ttft, 3) if timing.ttft is not None else 0.0)


def result_attempt(request: AblationRequest, result: Result, model: str, backend: str) -> Attempt | None:
    """The baseline as an attempt of the history, carrying the whole map: restoring the attempt
    shows the map again without a rerun. None before the baseline has finished."""
    base = result.baseline
    if base is None:
        return None
    timings = {"new_tokens": base.new_tokens, "total_s": base.seconds, "calls": 1,
               "ended_by": "", "tokens": base.tokens}
    return Attempt(request.question, request.input, "special", request.prompt_format,
                   reasoning_sent=request.reasoning, response=base.response,
                   settings=asdict(request.settings), model=model, backend=backend, timings=timings,
                   ablation=result.to_data())


# -- export --------------------------------------------------------------------------------------

EXPORT_FIELDS = ("index", "sentence", "removed", "replacement", "response", "change_share", "answer",
                 "answer_changed", "identical", "tokens", "prompt_tokens", "reused_tokens",
                 "new_tokens", "seconds", "first_token_s", "reasoning")


def export_rows(result: Result, question: str, input: str = "") -> list[dict]:
    return [{"question": question, "input": input, **{k: getattr(r, k) for k in EXPORT_FIELDS}}
            for r in result.rows]


def rows_jsonl(result: Result, question: str, input: str = "") -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n"
                   for row in export_rows(result, question, input))


def rows_csv(result: Result, question: str, input: str = "") -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["question", "input", *EXPORT_FIELDS], lineterminator="\n")
    writer.writeheader()  # for a spreadsheet: a cell that would start a formula is kept as text
    writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in export_rows(result, question, input))
    return out.getvalue()


def variant_attempts(result: Result, question: str, input: str = "", prompt_format: str = "alpaca",
                     ) -> list[Attempt]:
    """Each response as an attempt (the baseline first): imported into the history, the user stars
    "with" and rejects "without" (or the other way round) and the DPO export pairs them."""
    return [Attempt(question, input, "special", prompt_format, reasoning_generated=r.reasoning,
                    reasoning_sent=r.reasoning, response=r.response, model="ablation",
                    note="with every sentence" if r.index == 0 else f"without {result.unit} {r.index}")
            for r in result.rows]


def attempts_jsonl(result: Result, question: str, input: str = "") -> str:
    """The variants in the Alpaca layout that Export / import reads back (``export.import_jsonl``)."""
    return alpaca_jsonl(variant_attempts(result, question, input), starred_only=False)
