"""Attempts as training data: the point of editing reasoning is to keep the good results.

Three JSONL layouts, one JSON object a line, UTF-8 with Japanese kept readable:

* Alpaca with reasoning, ``{instruction, input, reasoning, output}``: the layout of the seed's
  Unsloth SFT runs, so a file goes straight back into that notebook.
* Chat ``{"messages": [user, assistant]}`` with the reasoning in a ``<think>`` block, the layout of
  TRL's SFTTrainer and of reasoning chat models.
* DPO ``{prompt, chosen, rejected}``. The prompt is the question (and input) as the user typed them,
  not a rendered Alpaca prompt: a trainer applies its own template, and one file then serves both
  prompt formats. Chosen and rejected are whole completions in the same ``<think>`` layout as the
  chat export, since the preference is about the reasoning as much as about the answer.

Choices:

* The reasoning exported is the one the response was conditioned on (``reasoning_sent``), since
  that is the pair the user vouched for.
* SFT exports hold starred attempts (or, on request, all that are not rejected) that have both a
  reasoning and a response: a vanilla or stopped run would teach the model to skip a part.
* DPO pairs are formed per question (same question and input): starred and rejected attempts are
  each taken newest first and paired in that order, so each attempt is used at most once and the
  surplus of the longer list is left out. A cross product would repeat one completion in many
  pairs and weight a question by how often the user clicked on it.
* Import reads the Alpaca and chat layouts back. The chat user message is kept whole as the
  question, since "question\\n\\ninput" cannot be told apart from a question with a blank line.
  Imported attempts are starred (the file was a selection already) and have model "imported".
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator

from .attempts import Attempt

THINK_OPEN, THINK_CLOSE = "<think>\n", "\n</think>\n\n"


class ImportFormatError(ValueError):
    """A line that is not an exported attempt; the message names the line."""


# Valid JSON may hold these raw, but line readers that follow Unicode (str.splitlines, JavaScript)
# break lines at them; escaping them keeps one row a line for every reader.
_LINE_BREAKS = [(c, f"\\u{ord(c):04x}") for c in "\x85\u2028\u2029"]


def _escape_breaks(line: str) -> str:
    # str.replace, not str.translate: translate looks every character up in a dict, 4.7 s for
    # 200 attempts of 3,000-token English; three replaces scan at memory speed (~10 ms).
    for char, escaped in _LINE_BREAKS:
        line = line.replace(char, escaped)
    return line


def _jsonl(rows: Iterable[dict]) -> str:
    return "".join(_escape_breaks(json.dumps(row, ensure_ascii=False)) + "\n" for row in rows)


def exportable(attempts: Iterable[Attempt], starred_only: bool = True) -> list[Attempt]:
    """The attempts an SFT export holds, in the order given (the history's: oldest first)."""
    return [a for a in attempts if (a.starred or not (starred_only or a.rejected))
            and a.reasoning.strip() and a.response.strip()]


def prompt_text(attempt: Attempt) -> str:
    return attempt.question + (f"\n\n{attempt.input}" if attempt.input.strip() else "")


def completion_text(attempt: Attempt) -> str:
    return f"{THINK_OPEN}{attempt.reasoning}{THINK_CLOSE}{attempt.response}"


def alpaca_jsonl(attempts: Iterable[Attempt], starred_only: bool = True) -> str:
    return _jsonl({"instruction": a.question, "input": a.input, "reasoning": a.reasoning,
                   "output": a.response} for a in exportable(attempts, starred_only))


def messages_jsonl(attempts: Iterable[Attempt], starred_only: bool = True) -> str:
    return _jsonl({"messages": [{"role": "user", "content": prompt_text(a)},
                                {"role": "assistant", "content": completion_text(a)}]}
                  for a in exportable(attempts, starred_only))


def dpo_pairs(attempts: Iterable[Attempt]) -> list[tuple[Attempt, Attempt]]:
    """(chosen, rejected) pairs, questions in order of first appearance, newest pairs first."""
    groups: dict[tuple[str, str], list[Attempt]] = {}
    for a in attempts:
        if a.reasoning.strip() and a.response.strip():
            groups.setdefault(a.key, []).append(a)
    pairs = []
    for group in groups.values():
        newest = group[::-1]
        pairs += zip([a for a in newest if a.starred], [a for a in newest if a.rejected])
    return pairs


def dpo_jsonl(attempts: Iterable[Attempt]) -> str:
    return _jsonl({"prompt": prompt_text(chosen), "chosen": completion_text(chosen),
                   "rejected": completion_text(rejected)} for chosen, rejected in dpo_pairs(attempts))


# -- import ------------------------------------------------------------------------------------

def _string(row: dict, key: str, default: str | None = None) -> str:
    value = row.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string" if key in row else f"{key!r} is missing")
    return value


def _from_alpaca(row: dict) -> dict:
    return {"question": _string(row, "instruction"), "input": _string(row, "input", ""),
            "reasoning": _string(row, "reasoning"), "response": _string(row, "output"),
            "prompt_format": "alpaca"}


def _from_messages(row: dict) -> dict:
    messages = row["messages"]
    if (not isinstance(messages, list) or len(messages) != 2
            or not all(isinstance(m, dict) for m in messages)
            or [m.get("role") for m in messages] != ["user", "assistant"]):
        raise ValueError("'messages' must be a user message followed by an assistant message")
    question, answer = _string(messages[0], "content"), _string(messages[1], "content")
    reasoning, close, response = answer.removeprefix(THINK_OPEN).partition(THINK_CLOSE)
    if not answer.startswith(THINK_OPEN) or not close:
        raise ValueError("the assistant message does not start with a <think>…</think> block")
    return {"question": question, "input": "", "reasoning": reasoning, "response": response,
            "prompt_format": "think"}


def jsonl_rows(text: str) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each line that is not blank; a line that is not JSON is refused
    by number."""
    # Split on "\n" only: str.splitlines would also cut at U+2028, which other writers leave raw.
    for number, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            raise ImportFormatError(f"line {number}: not valid JSON ({error.msg})") from None


def import_jsonl(text: str, starred: bool = True) -> list[Attempt]:
    """Attempts from an Alpaca or chat export; any bad line refuses the whole file, by number."""
    attempts = []
    for number, row in jsonl_rows(text):
        try:
            if not isinstance(row, dict):
                raise ValueError("expected a JSON object")
            if "messages" in row:
                fields = _from_messages(row)
            elif "instruction" in row:
                fields = _from_alpaca(row)
            else:
                raise ValueError("neither an Alpaca row (instruction, input, reasoning, output) "
                                 "nor a chat row (messages)")
        except ValueError as error:
            raise ImportFormatError(f"line {number}: {error}") from None
        reasoning = fields.pop("reasoning")
        attempts.append(Attempt(**fields, mode="reasoning", reasoning_generated=reasoning,
                                reasoning_sent=reasoning, model="imported", starred=starred))
    return attempts
