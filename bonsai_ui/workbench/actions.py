"""The workbench around the editor: attempts, interventions, compare, export and import.

Pure functions over plain values (a History, strings, a finished RunState), so that the page only
maps them onto components and the tests need no browser. Nothing here keeps state: the history is
stored in the browser, read once when the page loads, and kept by the page's server-side session
meanwhile (ui/workbench_tabs.py), so that a click does not send megabytes back and forth.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import orjson

from .attempts import HISTORY_VERSION, Attempt, History, timings_dict
from .diffing import AttemptDiff, Segment, diff_attempts
from .export import (ImportFormatError, alpaca_jsonl, dpo_jsonl, dpo_pairs, exportable, import_jsonl,
                     messages_jsonl)
from ..core.prompts import Intervention
from ..editor.runs import RunState

HISTORY_KEY = "bonsai-history"  # the localStorage key; one per app, so other Gradio apps do not clash
MARKS_KEY = "bonsai-marks"  # stars, rejections and notes, stored apart (History.marks_to_data)


def history_secret(environ=os.environ) -> str:
    """The key gr.BrowserState encrypts the stored history with.

    Gradio encrypts in the browser, so the key is sent to every page: it keeps the stored value
    from being read casually (by other scripts, in a profile dump), not from the visitor, who owns
    it anyway. What keeps one person's attempts from another is that local storage belongs to one
    browser profile and one site. What the key does decide is whether a page can read back what it
    stored: Gradio's default, a random key per start, would make every history unreadable after a
    restart (a Space restarts on every push). So the default is a constant, derived from a fixed
    string rather than kept in a file that a fresh Space would not have. ``BONSAI_BROWSER_SECRET``
    sets another one per deployment; changing it deliberately retires all stored histories.
    """
    return environ.get("BONSAI_BROWSER_SECRET") or hashlib.sha256(
        b"bonsai-reasoning-editor/browser-history/v1").hexdigest()


# -- attempts from runs --------------------------------------------------------------------------

def origin(question: str, input: str, reasoning_generated: str) -> dict:
    """What the editor's reasoning was derived from: the reasoning the model wrote last.

    Kept with the question, so that a regenerate from edited reasoning can record both versions,
    and a regenerate after the question changed does not claim the old question's reasoning.
    """
    return {"question": question.strip(), "input": input.strip(), "reasoning": reasoning_generated}


def origin_for(state: RunState) -> dict:
    return origin(state.request.question, state.request.input, state.reasoning_generated)


def attempt_from_run(state: RunState, origin: dict | None = None) -> Attempt:
    """The Attempt for a finished run; ``origin`` (see ``origin_for``) supplies the reasoning as
    generated when the run only sent reasoning (Regenerate, special mode)."""
    r = state.request
    generated = state.reasoning_generated
    if not generated and r.mode == "special" and origin and \
            (origin.get("question"), origin.get("input")) == (r.question.strip(), r.input.strip()):
        generated = origin.get("reasoning", "")
    timings = {**timings_dict(list(state.timings)), "calls": len(state.timings),
               "ended_by": state.timings[-1].ended_by if state.timings else "",
               "tokens": state.fingerprint}
    return Attempt(question=r.question, input=r.input, mode=r.mode, prompt_format=r.prompt_format,
                   reasoning_generated=generated, reasoning_sent=state.reasoning,
                   response=state.response, settings=asdict(r.settings), model=r.model,
                   backend=r.backend, timings=timings)


# -- interventions -------------------------------------------------------------------------------

_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")


def has_japanese(text: str) -> bool:
    """Kana or kanji anywhere: a question with any is answered in Japanese by these models."""
    return bool(_JAPANESE.search(text or ""))


def apply_intervention(item: Intervention, reasoning: str, question: str) -> str:
    """The reasoning with the intervention's sentence added on its own line, in the question's
    language. Applying it twice changes nothing: a double click must not stack instructions."""
    text = item.text_ja if has_japanese(question) else item.text_en
    body = reasoning.strip("\n")
    if item.where == "prepend":
        if body.startswith(text):
            return reasoning
        return f"{text}\n{body}" if body.strip() else text
    if item.where == "append":
        if body.rstrip().endswith(text):
            return reasoning
        return f"{body.rstrip()}\n{text}" if body.strip() else text
    raise ValueError(f"intervention {item.id!r} ({item.where}) is not a text edit")


# A sentence ends at 。！？!? (with closing quotes or brackets), at a full stop followed by a space
# or the end (so 3.5 and file.txt are no ends), or at a line break (list items, headings).
_SENTENCE_END = re.compile(r"[。！？!?]+[」』）)\"'”’]*|\.+[」』）)\"'”’]*(?=\s|$)|\n")


def from_utf16(text: str, index: int) -> int:
    """A browser's string index (UTF-16 code units) as a Python index (code points)."""
    return len(text.encode("utf-16-le")[: 2 * max(index, 0)].decode("utf-16-le", errors="ignore"))


def cut_after_sentence(text: str, start: int, end: int) -> str:
    """``text`` up to the end of the sentence holding the end of the selection ``start:end``.

    Trailing spaces of the selection are ignored: selecting "a sentence. " means that sentence,
    not the next one. Everything after the cut goes, so that Continue can take a new direction
    from there.
    """
    last = max(end - 1, start)
    while last > start and text[last].isspace():
        last -= 1
    for match in _SENTENCE_END.finditer(text):
        if match.end() > last:
            cut = match.start() if match.group() == "\n" else match.end()
            return text[:cut].rstrip()
    return text.rstrip()


def cut_at_selection(reasoning: str, selection: dict | None) -> str:
    """Apply the cut to the selection Gradio reported (``.select``: UTF-16 indexes and the text).

    Raises ValueError with a message for the user when nothing usable is selected, or the text
    changed since the selection was made (the indexes would point elsewhere).
    """
    if not selection or selection["index"][1] <= selection["index"][0]:
        raise ValueError("Nothing is selected: select a sentence in the Reasoning box first. / "
                         "推論の中の文を選択してください。")
    start, end = (from_utf16(reasoning, i) for i in selection["index"])
    if reasoning[start:end] != selection.get("value"):
        raise ValueError("The selection no longer matches the reasoning: select the sentence again. / "
                         "選択し直してください。")
    return cut_after_sentence(reasoning, start, end)


# -- the attempts list ---------------------------------------------------------------------------

HEADERS = ["↩", "★", "✗", "#", "time (UTC)", "run", "reasoning / 推論", "response / 回答", "note / メモ"]
RESTORE_COL, STAR_COL, REJECT_COL, NUMBER_COL = 0, 1, 2, 3


def listed(history: History, question: str, input: str, all_questions: bool) -> list[Attempt]:
    """The attempts the list shows, newest first: this question's, or all of them (also while no
    question is typed, as after a reload, so that the history is in sight and can be restored)."""
    if all_questions or not ((question or "").strip() or (input or "").strip()):
        return history.attempts[::-1]
    return history.for_question(question or "", input or "")


# An attempt's texts never change; 3 previews an attempt (two cells, a Compare choice), so 1,024
# entries hold 200 attempts' twice over, and keep at most ~15 MB of texts of ended sessions alive.
@lru_cache(maxsize=1024)
def _preview(text: str, width: int = 80) -> str:
    """The text on one line, cut to ``width`` with "…".

    Only the head is read when it is long enough: collapsing the whitespace of a whole 3,000-token
    reasoning for an 80-character cell cost ~0.2 ms, 90 ms for a list of 200 attempts. Kept for
    the next redraw (a ★ redraws every row): the key's hash is cached in the string itself.
    """
    head = text[: width * 4]
    line = " ".join(head.split())
    if len(line) <= width and len(head) < len(text):  # the head was mostly whitespace
        line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


@lru_cache(maxsize=2048)  # parsed and formatted again for each of 200 rows on every ★: ~1 ms
def _time(created: str) -> str:
    try:
        return datetime.fromisoformat(created).astimezone(timezone.utc).strftime("%m-%d %H:%M:%S")
    except ValueError:
        return created


def run_label(a: Attempt) -> str:
    """The kind of run, with ✎ when the reasoning sent differs from the one the model wrote and
    ⏹ when the run was stopped: the two things that make an attempt's text not the model's own."""
    label = {"special": "regenerate"}.get(a.mode, a.mode)
    if a.reasoning_generated and a.reasoning_sent != a.reasoning_generated:
        label += " ✎"
    if a.timings.get("ended_by") == "stopped":
        label += " ⏹"
    return label


def picks(ids: list[str], a: str | None, b: str | None, newest: bool = False) -> tuple[str | None, str | None]:
    """The Compare pair for a list: A and B as picked while both are listed, else (or with
    ``newest``, after a run) the second newest and the newest."""
    if newest or b not in ids:
        b = ids[0] if ids else None
    if newest or a not in ids:
        a = ids[1] if len(ids) > 1 else None
    return a, b


def numbered(attempts: list[Attempt]) -> list[tuple[int, Attempt]]:
    """Numbers count up from the oldest listed attempt, so a number stays put as new ones arrive."""
    return [(len(attempts) - i, a) for i, a in enumerate(attempts)]


def table_rows(attempts: list[Attempt]) -> list[list]:
    return [["↩", "★" if a.starred else "☆", "✗" if a.rejected else "·", n, _time(a.created),
             run_label(a), _preview(a.reasoning), _preview(a.response), a.note]
            for n, a in numbered(attempts)]


def choices(attempts: list[Attempt]) -> list[tuple[str, str]]:
    """Dropdown choices for Compare: a short label, the attempt's id."""
    return [(f"#{n} · {_time(a.created)} · {run_label(a)} · {_preview(a.reasoning, 40)}", a.id)
            for n, a in numbered(attempts)]


# -- compare -------------------------------------------------------------------------------------

def compare(history: History, a_id: str | None, b_id: str | None) -> tuple[str, list[Segment], list[Segment]]:
    """Summary line and the two diffs (reasoning, response) from attempt A to attempt B.

    The diffs are kept for the last few pairs (by their texts, which an attempt never changes), so
    going back to the Compare tab or to an earlier pick does not diff again. Callers must not
    change the lists they get.
    """
    try:
        a, b = history.get(a_id or ""), history.get(b_id or "")
    except KeyError:
        return "Pick two attempts to compare. / 比較する2つの試行を選んでください。", [], []
    diff = _diff(a.reasoning, a.response, b.reasoning, b.response)
    line = f"A → B: {diff.summary}"
    same = same_run(a, b)
    return (f"{line}\n\n{same}" if same else line), diff.reasoning, diff.response


def run_inputs(a: Attempt) -> tuple:
    """Everything that decides a run's tokens: the prompt's parts, the settings (seed included),
    the model and the backend."""
    return (a.question, a.input, a.mode, a.prompt_format, a.reasoning_sent if a.mode in
            ("special", "continue") else "", sorted(a.settings.items()), a.model, a.backend)


def same_run(a: Attempt, b: Attempt) -> str:
    """For two attempts with identical inputs: whether their output tokens were identical too, by
    the fingerprint each run recorded (docs/exactness.md); "" when the inputs differ or a fingerprint is
    missing (older attempts, served engines)."""
    fa, fb = a.timings.get("tokens", ""), b.timings.get("tokens", "")
    if not fa or not fb or run_inputs(a) != run_inputs(b):
        return ""
    if fa == fb:
        return (f"✅ Identical inputs, identical output tokens (#{fa}): any difference you want to "
                "see must come from an edit. / 入力も出力トークンも同一です。")
    return (f"⚠️ Identical inputs but different output tokens (#{fa} vs #{fb}): this model or "
            "backend did not repeat itself here. / 同じ入力で出力が異なります（再現性なし）。")


@lru_cache(maxsize=8)  # ~8 pairs of 3,000-token attempts: a few MB
def _diff(reasoning_a: str, response_a: str, reasoning_b: str, response_b: str) -> AttemptDiff:
    return diff_attempts(Attempt("", reasoning_sent=reasoning_a, response=response_a),
                         Attempt("", reasoning_sent=reasoning_b, response=response_b))


# -- export and import ---------------------------------------------------------------------------

def export_files(history: History, starred_only: bool, directory: Path) -> tuple[list[Path], str]:
    """Write the non-empty exports into ``directory``; return their paths and a summary line.

    Raises ValueError with a message for the user when there is nothing to export at all.
    """
    attempts = history.attempts
    sft = exportable(attempts, starred_only)
    pairs = dpo_pairs(attempts)
    if not sft and not pairs:
        which = "starred" if starred_only else "non-rejected"
        raise ValueError(f"Nothing to export: no {which} attempt has both a reasoning and a response"
                         " (star ★ the good ones, or export all). / 書き出す試行がありません。")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in (("alpaca", alpaca_jsonl(attempts, starred_only) if sft else ""),
                       ("messages", messages_jsonl(attempts, starred_only) if sft else ""),
                       ("dpo", dpo_jsonl(attempts) if pairs else "")):
        if text:
            path = directory / f"bonsai-{name}-{stamp}.jsonl"
            path.write_text(text, encoding="utf-8")
            paths.append(path)
    questions = len({a.key for a in sft} | {c.key for c, _ in pairs})
    dpo = (f"{len(pairs)} DPO pair(s)" if pairs else
           "no DPO pairs (a pair is a starred ★ and a rejected ✗ attempt at the same question)")
    return paths, (f"Exported {len(sft)} attempt(s) as Alpaca and chat messages, and {dpo}, "
                   f"from {questions} question(s). / 書き出しました。")


MAX_IMPORT_BYTES = 5_000_000  # more than the browser's storage can hold anyway


def import_into(history: History, data: bytes) -> str:
    """Add the attempts of an exported JSONL file to ``history``; return a summary line.

    A file that is not an export raises ImportFormatError naming the line, and nothing is added.
    Rows already in the history (same question, input, reasoning and response) are skipped, so
    importing the same file twice does not double it.
    """
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportFormatError(f"the file is {len(data):,} bytes; at most {MAX_IMPORT_BYTES:,} "
                                "fit the browser's storage")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportFormatError(f"not UTF-8 text (byte {error.start})") from None
    attempts = import_jsonl(text)
    if not attempts:
        raise ImportFormatError("the file holds no rows")
    seen = {(a.key, a.reasoning, a.response) for a in history.attempts}
    added = []
    for attempt in attempts:
        signature = (attempt.key, attempt.reasoning, attempt.response)
        if signature not in seen:
            seen.add(signature)
            added.append(history.add(attempt))
    ids = {a.id for a in history.attempts}
    kept = sum(1 for a in added if a.id in ids)
    parts = [f"Imported {len(added)} attempt(s), starred ★"]
    if len(added) < len(attempts):
        parts.append(f"{len(attempts) - len(added)} already in the history")
    if kept < len(added):
        parts.append(f"only the newest {history.limit} attempts are kept")
    return "; ".join(parts) + ". / 読み込みました。"


# Local storage holds about 5 million characters per site; Gradio stores the history encrypted and
# base64-encoded (4 characters per 3 bytes of UTF-8), and a write that does not fit is silently lost.
STORAGE_WARN_CHARS = 4_000_000


def stored_json(history: History) -> tuple[bytes, str]:
    """The history as the JSON the browser stores (UTF-8 bytes, byte for byte
    ``orjson.dumps(history.to_data())``), and a warning when that nears the browser's limit (""
    otherwise). The page gets text, not a JSON value: orjson writes 200 attempts of 3,000-token
    English in 1.5 ms, where json.dumps took 26 ms and Gradio's JSON component (an orjson round
    trip, then pydantic's dump of the 10 MB value) ~35 ms on every run recorded (this 2-vCPU
    machine). orjson writes the attempts' dataclass fields itself, in order, as asdict would:
    to_data's deep copy took 17-18 ms at that size. Bytes: decoding 10 MB to a str took another
    11-15 ms, and the wire (Workbench.routed) takes the bytes as they are."""
    text = orjson.dumps({"version": HISTORY_VERSION, "attempts": history.attempts})
    chars = len(text) * 4 // 3
    if chars < STORAGE_WARN_CHARS:
        return text, ""
    return text, (
        f"The history takes about {chars / 1e6:.1f} million characters of the browser's storage "
        "(about 5 fit): export what you want to keep, then clear it. / 履歴が大きすぎます。")


def storage_warning(history: History) -> str:
    return stored_json(history)[1]


def read_stored(text: str | None):
    """The value of the JSON text the page read from its storage; None for nothing stored, and
    "unreadable" for text that is not JSON (History.from_data then starts afresh and says so)."""
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return "unreadable"
