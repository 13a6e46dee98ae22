"""Formats a model's output must match while it is decoded, written once as a grammar.

A ``Constraint`` is a GBNF grammar (llama.cpp's grammar format): the in-process engines enforce it
with llguidance, and the served engines receive the same text in the request field each documents
(llama.cpp's servers ``grammar``, vLLM ``structured_outputs.grammar``, SGLang ``ebnf``). It also
says how many tokens a matching text can take, so a step can give itself a budget that always fits
the whole format, and the text every match starts with, by which a served engine's enforcement is
probed.

The one constraint the app uses is the debate's fact-based questions (``fbq_constraint``): five
lines of ``PARAGRAPH: `` + a one-sentence topic + a question ending in "?". The seed's template
(prompts/alpaca/fbq.j2) asks for exactly that; the grammar makes every engine write it.
"""

from __future__ import annotations

from dataclasses import dataclass


class ConstraintError(ValueError):
    """A grammar an engine cannot use; the message names the grammar and the engine's words."""


@dataclass(frozen=True)
class Constraint:
    name: str  # what the format is, for messages: "five fact-based questions"
    gbnf: str  # the grammar, llama.cpp's GBNF
    max_tokens: int  # no matching text takes more tokens than this (see fbq_constraint)
    forced_prefix: str  # every matching text starts with this


# The five questions begin with five different question words, one per line. A greedy small model
# otherwise writes the same paragraph five times (SmolLM2-135M did, for 6 of 6 contexts tried), and
# the parser keeps a repeated question once; "Why" first: the template asks for the root cause.
QUESTION_WORDS = ("Why", "What", "How", "Which", "When")
TOPIC_CHARS = (10, 160)  # the topic sentence after its capital letter, before its full stop
QUESTION_CHARS = (3, 100)  # the question after its first word, before its "?"
PARAGRAPH = "PARAGRAPH: "  # the seed's marker, the same as the template asks for

# Printable ASCII (the template asks for English only) without the characters that would end a
# sentence inside a topic or question (. ! ?), backslash (the template's literal "\n" invites the
# model to write one), and "#", "<", ">" (the prompt formats' stop strings start with them).
# Hex escapes: the same bytes for every GBNF reader.
_ALLOWED = (0x20, 0x22) + tuple(range(0x24, 0x2E)) + tuple(range(0x2F, 0x3C)) + (0x3D,) + \
    tuple(range(0x40, 0x5C)) + tuple(range(0x5D, 0x7F))


def _char_class(codes: tuple[int, ...]) -> str:
    """A GBNF character class for ``codes``, consecutive codes as ranges."""
    parts, start = [], None
    for i, code in enumerate(codes):
        start = code if start is None else start
        if i + 1 == len(codes) or codes[i + 1] != code + 1:
            parts.append(f"\\x{start:02X}" if start == code else f"\\x{start:02X}-\\x{code:02X}")
            start = None
    return "[" + "".join(parts) + "]"


def allowed_text_chars() -> frozenset[str]:
    """The characters a topic or question may hold after its first character (tests use it)."""
    return frozenset(map(chr, _ALLOWED))


def fbq_constraint(count: int = len(QUESTION_WORDS)) -> Constraint:
    """The debate's fact-based questions as a grammar: ``count`` lines (at most five)."""
    if not 1 <= count <= len(QUESTION_WORDS):
        raise ConstraintError(f"the questions' format has 1 to {len(QUESTION_WORDS)} lines, "
                              f"not {count}")
    words = QUESTION_WORDS[:count]
    (t_min, t_max), (q_min, q_max) = TOPIC_CHARS, QUESTION_CHARS
    lines = [f'p{i} ::= "{PARAGRAPH}" topic " {w} " question "\\n"' for i, w in enumerate(words, 1)]
    gbnf = "\n".join([
        "root ::= " + " ".join(f"p{i}" for i in range(1, count + 1)),
        *lines,
        f"topic ::= [A-Z] {_char_class(_ALLOWED)}{{{t_min},{t_max}}} \".\"",
        f"question ::= {_char_class(_ALLOWED)}{{{q_min},{q_max}}} \"?\"",
    ]) + "\n"
    # Every token of the vocabulary writes at least one byte (the end-of-text token aside), and the
    # grammar's characters are ASCII, one byte each: a line's longest match in characters bounds
    # its tokens. Per line: marker, capital, topic, ".", " Why ", question, "?", newline.
    longest = sum(len(PARAGRAPH) + 1 + t_max + 1 + len(f" {w} ") + q_max + 2 for w in words)
    return Constraint(f"{count} fact-based questions", gbnf, longest + 1, PARAGRAPH)


# The formats the app constrains output to, compiled (or found unenforceable) when a model loads.
FBQ = fbq_constraint()
APP_FORMATS = (FBQ,)
