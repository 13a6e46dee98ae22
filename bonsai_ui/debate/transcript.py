"""A debate's transcript: the table the page shows, and its files (XLSX, CSV, JSONL) both ways.

One row per round, with the seed's spreadsheet columns first (BONSAI's Excel sheets: Step, Goal,
Language, QInitial, AInitial, FBA and the questions), then what this app adds: the sides, the
pick, the depth, each reasoning as the model generated it and as it was sent, the questions' raw
text, and the stale mark. Here FBA ("fact-based answer") holds the other side's rebuttal, the answer
the seed's authors found missing. A question cell is its topic and its question on two lines, so
that import splits it back exactly.

JSONL is Alpaca with reasoning, one record per model call, with a ``category`` (``answer``,
``rebuttal``, ``question_to_question``) and the fields import needs to rebuild the debate; every
record has the same keys, so ``datasets.load_dataset("json", …)`` reads it as one table. A
``question_to_question`` record's ``output`` is the model's text as written; its ``questions`` are
the round's questions, the user's own included (``[]`` in the other records).

Import refuses a bad file whole and names its line (JSONL), or its row and column (CSV, XLSX).
"""

from __future__ import annotations

import csv
import io
from typing import Iterable

from .rounds import (DEFAULT_GOALS, LANGUAGES, MAX_QUESTIONS, SIDES, Debate, FactQuestion, Round, Step,
                     other, parse_fact_questions)
from ..workbench.export import ImportFormatError, _jsonl, jsonl_rows
from ..core.cells import append_text_row, csv_cell, from_csv_cell
from ..core.prompts import load_format, render_task

QUESTION_COLUMNS = [f"Q{i}" for i in range(1, MAX_QUESTIONS + 1)]
COLUMNS = ["Step", "Goal", "Language", "QInitial", "AInitial", "FBA", *QUESTION_COLUMNS,
           "Side", "Picked", "Depth", "Stale", "GoalRebuttal", "AReasoningGenerated", "AReasoningSent",
           "FBAReasoningGenerated", "FBAReasoningSent", "QRaw", "Format"]
CATEGORIES = ("answer", "rebuttal", "question_to_question")
MAX_IMPORT_BYTES = 5_000_000  # more than a browser's storage holds; a bigger file is not a debate


class TranscriptError(ValueError):
    """A file that is not a debate transcript; the message names the line, or row and column."""


def _question_cell(q: FactQuestion) -> str:
    return f"{q.topic}\n{q.question}" if q.topic else q.question


def _stale(rnd: Round) -> str:
    return ", ".join(k for k in ("answer", "rebuttal", "questions") if rnd.step(k).stale)


def rows(debate: Debate) -> list[list]:
    """The transcript table: one row per round, in COLUMNS order (texts, and numbers where numeric)."""
    table = []
    for n, rnd in enumerate(debate.rounds, start=1):
        questions = [_question_cell(q) for q in rnd.questions] + [""] * (MAX_QUESTIONS - len(rnd.questions))
        table.append([n, debate.goals[rnd.answerer], debate.language, rnd.question, rnd.answer.text,
                      rnd.rebuttal.text, *questions, rnd.answerer,
                      "" if rnd.picked is None else rnd.picked + 1,
                      "" if rnd.depth is None else round(rnd.depth, 3), _stale(rnd),
                      debate.goals[rnd.rebutter], rnd.answer.reasoning_generated, rnd.answer.reasoning_sent,
                      rnd.rebuttal.reasoning_generated, rnd.rebuttal.reasoning_sent,
                      rnd.questions_step.text, debate.prompt_format])
    return table


# -- export --------------------------------------------------------------------------------------

def to_csv(debate: Debate) -> str:
    """For a spreadsheet: a cell that would start a formula is kept as text (core/cells.py)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([csv_cell(value) for value in row] for row in rows(debate))
    return out.getvalue()


def to_xlsx(debate: Debate) -> bytes:
    """Every text cell typed as text: no cell of ours is ever a formula."""
    import openpyxl  # only when exporting

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "debate"
    sheet.append(COLUMNS)
    for row in rows(debate):
        append_text_row(sheet, row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def rebuttal_instruction(debate: Debate, rnd: Round) -> str:
    return render_task(load_format(debate.prompt_format), "rebuttal", side=rnd.rebutter,
                       goal=debate.goals[rnd.rebutter], question=rnd.question, answer=rnd.answer.text)


def fbq_context(rnd: Round) -> str:
    """The CONTEXT of the seed's template: the answer and the rebuttal together, so that the next
    question can build on the disagreement instead of on one side's answer alone."""
    return "\n\n".join(t for t in (rnd.answer.text.strip(), rnd.rebuttal.text.strip()) if t)


def fbq_instruction(debate: Debate, rnd: Round) -> str:
    return render_task(load_format(debate.prompt_format), "fbq", str_output_aff=fbq_context(rnd))


def records(debate: Debate) -> Iterable[dict]:
    """Alpaca-with-reasoning records of every step that was run, in order."""
    for n, rnd in enumerate(debate.rounds, start=1):
        common = {"round": n, "language": debate.language, "prompt_format": debate.prompt_format}
        steps = [("answer", rnd.answerer, rnd.answer, rnd.question, debate.goals[rnd.answerer]),
                 ("rebuttal", rnd.rebutter, rnd.rebuttal, None, ""),
                 ("question_to_question", rnd.rebutter, rnd.questions_step, None, "")]
        for category, side, step, instruction, input in steps:
            questions = rnd.questions if category == "question_to_question" else []
            if not (step.done or questions):  # questions written by hand count as done
                continue
            if instruction is None:
                instruction = (rebuttal_instruction(debate, rnd) if category == "rebuttal"
                               else fbq_instruction(debate, rnd))
            yield {"instruction": instruction, "input": input, "reasoning": step.reasoning,
                   "output": step.text, "category": category, **common, "side": side,
                   "goal": debate.goals[side], "question": rnd.question,
                   "reasoning_generated": step.reasoning_generated, "stale": step.stale,
                   "picked": rnd.picked if category == "question_to_question" else None,
                   "questions": [{"topic": q.topic, "question": q.question} for q in questions]}


def to_jsonl(debate: Debate) -> str:
    return _jsonl(records(debate))


# -- import --------------------------------------------------------------------------------------

def _debate_from_rows(table: list[list], where) -> Debate:
    """Rebuild from transcript rows; ``where(i, column)`` names a cell for messages."""
    if not table:
        raise TranscriptError("the file is empty")
    header = [str(c or "").strip() for c in table[0]]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise TranscriptError(f"{where(0, None)}: not a debate transcript (missing columns "
                              f"{', '.join(missing)})")
    debate = Debate(goals={}, rounds=[])
    for i, raw in enumerate(table[1:], start=1):
        cells = ["" if c is None else str(c) for c in raw]
        if not any(c.strip() for c in cells):
            continue

        def fail(column: str, message: str, i=i):
            raise TranscriptError(f"{where(i, column)}: {message}")

        debate.rounds.append(_round_from_row(debate, dict(zip(header, cells)), fail))
    if not debate.rounds:
        raise TranscriptError("the file has a header but no rounds")
    for side in SIDES:
        debate.goals.setdefault(side, DEFAULT_GOALS[debate.language][side])
    try:
        load_format(debate.prompt_format)
    except ValueError as error:
        raise TranscriptError(f"{where(1, 'Format')}: {error}") from None
    return debate


def _number(get, fail, column: str, kind=float):
    try:
        return kind(float(get(column))) if get(column).strip() else None
    except ValueError:
        fail(column, f"not a number: {get(column)!r}")


def _round_from_row(debate: Debate, cell: dict, fail) -> Round:
    """One row's round; the goals, language and format go to ``debate``, checked against the
    rows before."""
    def get(column: str) -> str:
        return cell.get(column, "")

    if get("Step").strip() != str(len(debate.rounds) + 1):
        fail("Step", f"expected step {len(debate.rounds) + 1}, found {get('Step')!r}")
    side = get("Side").strip()
    if side not in SIDES:
        fail("Side", f"must be A or B, found {side!r}")
    if get("Language") not in LANGUAGES:
        fail("Language", f"must be one of {', '.join(LANGUAGES)}, found {get('Language')!r}")
    for name, column in ((side, "Goal"), (other(side), "GoalRebuttal")):
        if debate.goals.setdefault(name, get(column)) != get(column):
            fail(column, f"group {name}'s goal differs from the one in an earlier row")
    questions = [FactQuestion(*get(c).rpartition("\n")[::2]) for c in QUESTION_COLUMNS if get(c).strip()]
    picked = _number(get, fail, "Picked", int)
    if picked is not None and not 1 <= picked <= len(questions):
        fail("Picked", f"question {picked} does not exist in this row")
    stale = {s.strip() for s in get("Stale").split(",") if s.strip()}
    if stale - {"answer", "rebuttal", "questions"}:
        fail("Stale", f"unknown steps {', '.join(sorted(stale))}")
    debate.language, debate.prompt_format = get("Language"), get("Format") or "alpaca"
    return Round(
        question=get("QInitial"), answerer=side,
        answer=Step(get("AReasoningGenerated"), get("AReasoningSent"), get("AInitial"),
                    stale="answer" in stale),
        rebuttal=Step(get("FBAReasoningGenerated"), get("FBAReasoningSent"), get("FBA"),
                      stale="rebuttal" in stale),
        questions_step=Step(text=get("QRaw"), stale="questions" in stale),
        questions=questions, picked=None if picked is None else picked - 1,
        depth=_number(get, fail, "Depth"))


def from_csv(text: str) -> Debate:
    table = [[from_csv_cell(c) for c in row] for row in csv.reader(io.StringIO(text.removeprefix("\ufeff")))]
    # Rows of a CSV span several lines when a cell holds line breaks: name the row, and the column.
    return _debate_from_rows(table, lambda i, c: f"row {i + 1}" + (f", column {c}" if c else ""))


def from_xlsx(data: bytes) -> Debate:
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:  # noqa: BLE001 - openpyxl raises many kinds for a non-XLSX file
        raise TranscriptError(f"not an XLSX workbook ({type(error).__name__})") from None
    table = [list(r) for r in book.worksheets[0].iter_rows(values_only=True)]
    return _debate_from_rows(table, lambda i, c: f"row {i + 1}" + (f", column {c}" if c else ""))


_RECORD_KEYS = ("instruction", "input", "reasoning", "output", "category", "round", "language",
                "prompt_format", "side", "goal", "question", "reasoning_generated", "stale", "picked")


def _jsonl_rows(text: str):
    try:
        yield from jsonl_rows(text)
    except ImportFormatError as error:
        raise TranscriptError(str(error)) from None


def from_jsonl(text: str) -> Debate:
    debate = Debate(goals={}, rounds=[])
    for number, record in _jsonl_rows(text):
        try:
            _add_record(debate, record)
        except (ValueError, TypeError, KeyError) as error:
            raise TranscriptError(f"line {number}: {error}") from None
    if not debate.rounds:
        raise TranscriptError("the file holds no debate records")
    for side in SIDES:
        debate.goals.setdefault(side, DEFAULT_GOALS[debate.language][side])
    return debate


def _add_record(debate: Debate, record: dict) -> None:
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    missing = [k for k in _RECORD_KEYS if k not in record]
    if missing:
        raise ValueError(f"not a debate record (missing {', '.join(missing)})")
    category, n, side = record["category"], record["round"], record["side"]
    if category not in CATEGORIES:
        raise ValueError(f"category {category!r}; expected one of {', '.join(CATEGORIES)}")
    if side not in SIDES or record["language"] not in LANGUAGES:
        raise ValueError(f"side {side!r} or language {record['language']!r} unknown")
    for key in ("instruction", "input", "reasoning", "output", "goal", "question", "reasoning_generated"):
        if not isinstance(record[key], str):
            raise ValueError(f"{key!r} must be a string")
    if debate.goals.setdefault(side, record["goal"]) != record["goal"]:
        raise ValueError(f"group {side}'s goal differs from an earlier record's")
    debate.language, debate.prompt_format = record["language"], record["prompt_format"]
    if category == "answer":
        if n != len(debate.rounds) + 1:
            raise ValueError(f"round {n!r} follows round {len(debate.rounds)}")
        debate.rounds.append(Round(question=record["question"], answerer=side))
    elif not debate.rounds or n != len(debate.rounds) or debate.rounds[-1].rebutter != side:
        raise ValueError(f"a {category} record for round {n!r} must follow that round's answer, "
                         "by the other side")
    rnd = debate.rounds[-1]
    step = {"answer": rnd.answer, "rebuttal": rnd.rebuttal, "question_to_question": rnd.questions_step}[category]
    step.reasoning_generated = record["reasoning_generated"]
    step.reasoning_sent = record["reasoning"]
    step.text = record["output"]
    step.stale = bool(record["stale"])
    if category == "question_to_question":
        debate_index = len(debate.rounds) - 1
        debate.set_questions(debate_index, _record_questions(record))
        picked = record["picked"]
        if picked is not None and not (isinstance(picked, int) and 0 <= picked < len(rnd.questions)):
            raise ValueError(f"picked question {picked!r} does not exist")
        rnd.picked = picked


def _record_questions(record: dict) -> list[FactQuestion]:
    """The round's questions as stored (some may be written by hand); a file exported before
    they were stored has only the model's text, parsed again."""
    if "questions" not in record:
        return parse_fact_questions(record["output"])
    stored = record["questions"]
    if not (isinstance(stored, list) and len(stored) <= MAX_QUESTIONS and all(
            isinstance(q, dict) and isinstance(q.get("topic"), str) and isinstance(q.get("question"), str)
            for q in stored)):
        raise ValueError(f"'questions' must be a list of at most {MAX_QUESTIONS} objects with a "
                         "topic and a question")
    return [FactQuestion(q["topic"], q["question"]) for q in stored]


def import_bytes(name: str, data: bytes) -> Debate:
    """A debate from an exported file, by its extension."""
    if len(data) > MAX_IMPORT_BYTES:
        raise TranscriptError(f"the file is {len(data):,} bytes, over the limit of {MAX_IMPORT_BYTES:,}")
    suffix = name.lower().rsplit(".", 1)[-1]
    if suffix == "xlsx":
        return from_xlsx(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TranscriptError(f"not UTF-8 text (byte {error.start})") from None
    if suffix == "csv":
        return from_csv(text)
    if suffix == "jsonl":
        return from_jsonl(text)
    raise TranscriptError(f"unknown file type .{suffix}; import an .xlsx, .csv or .jsonl export")
