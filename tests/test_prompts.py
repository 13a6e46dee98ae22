"""Prompt rendering: the seed's three Alpaca prompts character for character, the chat format, and
a sandbox that fails loudly."""

import re
from pathlib import Path

import jinja2
import pytest

from bonsai_ui.core.prompts import (ENV, ChatTemplate, examples, format_names, load_format,
                               render_chat_template, render_prompt)

SEED = Path(__file__).parent / "data" / "QEUR23_reasoning_seed.md"
SHARED_SEED = Path(__file__).resolve().parents[2] / "shared" / "seed" / SEED.name


def seed_prompts() -> dict[str, str]:
    """The three prompt strings exactly as the seed document's Python code defines them."""
    found = dict(re.findall(r'alpaca_prompt_(\w+) = """(.*?)"""', SEED.read_text(encoding="utf-8"),
                            flags=re.S))
    assert set(found) == {"reasoning", "vanilla", "special"}
    return found


def test_vendored_seed_matches_shared_copy():
    if not SHARED_SEED.exists():  # a clone outside the workspace has only the vendored copy
        pytest.xfail(f"{SHARED_SEED} not present beside this clone")
    assert SEED.read_bytes() == SHARED_SEED.read_bytes()


QUESTIONS = [
    ("LUNAは白猫ですか？", "", "まず、各猫の色を確認します。"),
    ("Count the fruit.", "Henri: 3 apples; Jack: 4 pears", "  leading spaces\nand {braces} kept\n"),
    ("", "", ""),
]


@pytest.mark.parametrize("instruction,input,reasoning", QUESTIONS)
@pytest.mark.parametrize("mode", ["vanilla", "reasoning", "special"])
def test_alpaca_reproduces_the_seed_exactly(mode, instruction, input, reasoning):
    seed = seed_prompts()[mode]
    expected = seed.format(instruction, input, reasoning) if mode == "special" else seed.format(instruction, input)
    assert render_prompt(load_format("alpaca"), mode, instruction, input, reasoning) == expected


def test_seed_dispatch_is_the_documents_text_inference():
    """The seed picks special when a reasoning is given; our special mode is that prompt."""
    fmt = load_format("alpaca")
    special = render_prompt(fmt, "special", "Q", "", "R")
    assert special.endswith("### Reasoning:\nR\n\n### Response:\n")
    assert render_prompt(fmt, "reasoning", "Q").endswith("### Input:\n\n\n### Reasoning:\n")


def test_strict_undefined_fails_loudly():
    with pytest.raises(jinja2.UndefinedError):
        ENV.from_string("{{ instrution }}").render(instruction="typo in the template")


def test_sandbox_blocks_python_internals():
    with pytest.raises(jinja2.exceptions.SecurityError):
        ENV.from_string("{{ ''.__class__.__mro__[1].__subclasses__() }}").render()


def test_unknown_mode_and_format_are_refused():
    with pytest.raises(ValueError, match="unknown mode"):
        render_prompt(load_format("alpaca"), "debate", "Q")
    with pytest.raises(ValueError, match="unknown prompt format"):
        load_format("nope")


def test_formats_declare_markers():
    assert format_names() == ["alpaca", "think"]
    alpaca, think = load_format("alpaca"), load_format("think")
    assert alpaca.response_marker == "### Response:" and not alpaca.chat
    assert think.reasoning_start == "<think>" and think.response_marker == "</think>" and think.chat


CHATML_WITH_SYSTEM = ("{% for m in messages %}{% if loop.first %}<|im_start|>system\nSys<|im_end|>\n"
                      "{% endif %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                      "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
OPENS_THINK = "{{ bos_token }}<｜User｜>{{ messages[0]['content'] }}<｜Assistant｜><think>\n"


@pytest.mark.parametrize("template,head", [
    (CHATML_WITH_SYSTEM, "<|im_start|>system\nSys<|im_end|>\n<|im_start|>user\nQ\n\nI<|im_end|>\n<|im_start|>assistant\n"),
    (OPENS_THINK, "<BOS><｜User｜>Q\n\nI<｜Assistant｜>"),
    (None, "<|im_start|>user\nQ\n\nI<|im_end|>\n<|im_start|>assistant\n"),  # our ChatML fallback
])
def test_think_format_prefills_the_assistant_turn(template, head):
    fmt = load_format("think")
    chat = ChatTemplate(template, bos_token="<BOS>")
    assert render_prompt(fmt, "reasoning", "Q", "I", chat=chat) == head + "<think>\n"
    assert render_prompt(fmt, "special", "Q", "I", "edited\n premise", chat=chat) == \
        head + "<think>\nedited\n premise\n</think>\n\n"
    assert render_prompt(fmt, "vanilla", "Q", "I", chat=chat) == head + "<think>\n\n</think>\n\n"


def test_chat_templates_using_common_features_render():
    """Features real chat templates use: namespace, loop controls, raise_exception, tojson."""
    template = ("{% set ns = namespace(n=0) %}{% for m in messages %}{% if m.role == 'tool' %}"
                "{{ raise_exception('no tools') }}{% endif %}{% set ns.n = ns.n + 1 %}"
                "{% if ns.n > 5 %}{% break %}{% endif %}{{ m | tojson }}{% endfor %}"
                "{% if tools %}T{% endif %}")
    assert render_chat_template(template, [{"role": "user", "content": "猫"}]) == \
        '{"role": "user", "content": "猫"}'
    with pytest.raises(jinja2.TemplateError, match="no tools"):
        render_chat_template(template, [{"role": "tool", "content": ""}])


def test_examples_are_the_seed_documents_questions():
    ex = [e for e in examples() if e.lang == "ja"]
    assert [e.mode for e in ex] == ["reasoning", "reasoning", "special"]
    text = SEED.read_text(encoding="utf-8")
    for e in ex:
        assert f'str_question = "{e.question}"' in text
    assert f'str_reasoning = "{ex[2].reasoning}"' in text
