"""Constrained decoding: the debate's questions format as a grammar, enforced by every CPU decoding
path on the embedded model (llama.cpp, transformers ``generate``, the static decoder), the same
tokens for the same input, and a bad grammar refused at start."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from bonsai_ui.core.constraints import (FBQ, PARAGRAPH, QUESTION_CHARS, QUESTION_WORDS,
                                        TOPIC_CHARS, Constraint, ConstraintError,
                                        allowed_text_chars, fbq_constraint)
from bonsai_ui.core.prompts import load_format, render_task
from bonsai_ui.core.settings import GenerationSettings
from bonsai_ui.debate.rounds import MAX_QUESTIONS, parse_fact_questions
from bonsai_ui.editor.runs import Runner
from bonsai_ui.engine import Engine, LoadError
from bonsai_ui.engine import _check_formats
from bonsai_ui.engine.constrained import TorchMask, compile_grammar

CONTEXTS = {
    "answer": "No. LUNA is not white, and KIKI has black fur.",
    "japanese": "猫は夜でもよく見えます。目の奥に光を反射する層があり、暗い納屋でもネズミを捕まえられるからです。",
}


def line(word: str, topic: str = "Cats see well at night", question: str = "do cats see at night") -> str:
    return f"{PARAGRAPH}{topic}. {word} {question}?\n"


FIVE = "".join(line(w) for w in QUESTION_WORDS)


def accepts(engine: Engine, text: str) -> bool:
    """Whether the llama.cpp backend's matcher takes ``text`` whole, token by token."""
    grammars = engine.backend.grammars
    mask = grammars.matcher(FBQ)
    try:
        for token in grammars.tokenizer.tokenize_str(text):
            mask.advance(token)
    except ConstraintError:
        return False
    return mask.complete


@pytest.mark.parametrize("text, ok", [
    (FIVE, True),
    ("".join(line(w) for w in QUESTION_WORDS[:4]), False),  # four lines: not whole
    (FIVE.replace("Why", "What", 1), False),  # each line has its own question word
    (FIVE.replace("Cats see well", "Cats? see well", 1), False),  # no "?" inside a topic
    (FIVE.replace("PARAGRAPH: ", "PARAGRAPH:", 1), False),
    (FIVE.replace("Cats", "cats", 1), False),  # a topic starts with a capital
    ("Sure! " + FIVE, False),  # no preface
    (FIVE.replace("at night", "at\\nnight", 1), False),  # no backslash: the template's "\n"
    # the longest topic: a capital letter and TOPIC_CHARS[1] more characters
    (line("Why", "A" * (TOPIC_CHARS[1] + 1)) + FIVE[FIVE.index("\n") + 1:], True),
    (line("Why", "A" * (TOPIC_CHARS[1] + 2)) + FIVE[FIVE.index("\n") + 1:], False),
])
def test_the_questions_grammar_accepts_exactly_five_lines_of_its_format(llama_engine, text, ok):
    assert accepts(llama_engine, text) is ok
    if ok:
        assert len(parse_fact_questions(text)) == MAX_QUESTIONS


def test_the_budget_fits_the_longest_text_the_grammar_allows(llama_engine):
    """Every token writes at least one byte: the longest match's bytes (+1 for the end of text)
    bound its tokens, and that longest match is accepted."""
    chars = sorted(allowed_text_chars() - {" "})
    longest = "".join(line(w, "A" + chars[0] * TOPIC_CHARS[1], chars[1] * QUESTION_CHARS[1])
                      for w in QUESTION_WORDS)
    assert accepts(llama_engine, longest)
    assert FBQ.max_tokens == len(longest.encode()) + 1


@pytest.mark.parametrize("count", [0, 6])
def test_the_questions_format_has_one_to_five_lines(count):
    with pytest.raises(ConstraintError, match="1 to 5 lines"):
        fbq_constraint(count)


BAD = Constraint("a broken format", 'root ::= "a" missing_rule\n', 10, "a")


def test_a_bad_grammar_is_a_clear_error_at_start_not_a_crash(llama_engine, monkeypatch):
    with pytest.raises(ConstraintError, match="a broken format"):
        compile_grammar(BAD)
    monkeypatch.setattr("bonsai_ui.engine.APP_FORMATS", (BAD,))
    with pytest.raises(LoadError, match="the format of a broken format cannot be used"):
        _check_formats(Engine(llama_engine.backend), lambda stage, fraction: None)


def test_llama_cpps_own_grammar_parser_reads_the_grammar_served_engines_get(llama_engine):
    """llama-server and llama-cpp-python's server parse the GBNF with llama.cpp's own parser (a
    parse error there is a NULL sampler): the app's grammar must be one it reads."""
    import llama_cpp

    vocab = llama_engine.backend.llm._model.vocab
    for gbnf, ok in ((FBQ.gbnf, True), (BAD.gbnf, False)):
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
        assert bool(sampler) is ok
        if sampler:
            llama_cpp.llama_sampler_free(sampler)


def test_the_loading_line_says_the_format_is_enforced(llama_engine):
    lines = []
    _check_formats(Engine(llama_engine.backend), lambda stage, fraction: lines.append(stage))
    assert lines == ["format of 5 fact-based questions: enforced while decoding"]


def test_the_torch_mask_unpacks_the_bits_as_llguidance_packs_them(llama_engine):
    import torch

    mask = llama_engine.backend.grammars.matcher(FBQ)
    vocab = mask.words * 32 + 7  # logits wider than the vocabulary: the extra ones are forbidden
    logits = torch.zeros(1, vocab)
    TorchMask(mask, vocab, torch.device("cpu")).apply(logits)
    expected = mask.allowed_numpy(vocab)
    assert expected.sum() >= 1 and not expected[-7:].any()
    assert np.array_equal(torch.isfinite(logits[0]).numpy(), expected)


# -- every decoding path on the embedded model -------------------------------------------------------

def fbq_run(engine: Engine, context: str, settings: GenerationSettings, prompt_format="alpaca",
            session=""):
    instruction = render_task(load_format(prompt_format), "fbq", str_output_aff=context)
    state = None
    for state in Runner(engine).generate(instruction, "", "vanilla", prompt_format, "", settings,
                                         session, constraint=FBQ):
        pass
    return state


GREEDY = GenerationSettings(max_new_tokens=FBQ.max_tokens, temperature=0.0)
SAMPLED = GenerationSettings(max_new_tokens=FBQ.max_tokens, temperature=0.9, seed=7)


@pytest.mark.parametrize("context", list(CONTEXTS))
def test_a_constrained_run_writes_five_questions_in_the_format(engine, context):
    state = fbq_run(engine, CONTEXTS[context], GREEDY)
    assert accepts_text(state.response + "\n")
    questions = parse_fact_questions(state.response)
    assert [q.question.split()[0] for q in questions] == list(QUESTION_WORDS)
    assert "format enforced" in state.stats and "ended by end of text" in state.stats


def accepts_text(text: str) -> bool:
    lines = text.splitlines(keepends=True)
    return (len(lines) == MAX_QUESTIONS and all(l.startswith(PARAGRAPH) and l.endswith("?\n")
                                                for l in lines))


@pytest.mark.parametrize("settings", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_same_input_same_tokens_under_the_constraint_with_and_without_prefix_reuse(engine, settings):
    backend = engine.backend
    backend.forget_caches()
    fresh = fbq_run(engine, CONTEXTS["answer"], settings, session="s")
    again = fbq_run(engine, CONTEXTS["answer"], settings, session="s")  # the prompt is cached now
    assert backend.last_reused_tokens > 0
    assert again.fingerprint == fresh.fingerprint and again.response == fresh.response


def test_a_grammar_that_allows_any_text_changes_no_token(llama_engine):
    """The mask only removes tokens: under a grammar that forbids nothing the tokens are those of
    the unconstrained run."""
    anything = Constraint("any text", "root ::= [^\\x00]*\n", 64, "")
    settings = GenerationSettings(max_new_tokens=48, temperature=0.0)
    runs = []
    for constraint in (None, anything):
        state = None
        for state in Runner(llama_engine).generate("Name three fruits.", "", "vanilla", "alpaca",
                                                   "", settings, constraint=constraint):
            pass
        runs.append(state)
    assert runs[1].fingerprint == runs[0].fingerprint and runs[0].response
    assert "format enforced" in runs[1].stats


def test_a_constraint_on_a_reasoning_run_is_refused(llama_engine):
    from bonsai_ui.editor.runs import UserError

    with pytest.raises(UserError, match="vanilla mode only"):
        Runner(llama_engine).generate("Q", "", "reasoning", "alpaca", "", GREEDY, constraint=FBQ)


def test_an_engine_that_cannot_enforce_a_format_says_so_in_the_stats():
    from conftest import ScriptedBackend

    engine = Engine(ScriptedBackend(pieces=["PARAGRAPH: ", "free text"]))
    state = fbq_run(engine, "An answer.", dataclasses.replace(GREEDY, max_new_tokens=8))
    assert "⚠ format not enforced: scripted cannot enforce a format while decoding" in state.stats
