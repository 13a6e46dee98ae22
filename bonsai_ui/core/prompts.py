"""Prompt formats and their rendering.

Every prompt the app sends comes from a template in ``prompts/`` rendered by the single sandboxed
Jinja2 environment below: templates (and models' chat templates) are data that users edit, so they
must not reach Python objects, and a misspelt variable must fail loudly instead of rendering as "".
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .settings import FORMATS, GENERATION_BOUNDS, PROMPTS_DIR, GenerationSettings
from .splitter import Until

MODES = ("vanilla", "reasoning", "special")
# Not a mode the user picks: "Continue reasoning" hands the model its (edited) reasoning to carry on.
CONTINUE = "continue"
TEMPLATES = (*MODES, CONTINUE)


def _raise(message: str):
    raise jinja2.TemplateError(message)


def _tojson(value, indent=None):
    # Chat templates (Qwen, Llama) expect JSON that keeps non-ASCII text readable, as transformers does.
    return json.dumps(value, ensure_ascii=False, indent=indent)


ENV = ImmutableSandboxedEnvironment(
    loader=jinja2.FileSystemLoader(str(PROMPTS_DIR)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,  # the seed's prompts end with a newline after the last header
    autoescape=False,  # prompts are plain text, not HTML
    extensions=["jinja2.ext.loopcontrols"],  # used by many models' chat templates
)
ENV.globals.update(raise_exception=_raise, strftime_now=lambda fmt: datetime.now().strftime(fmt))
ENV.filters["tojson"] = _tojson


@dataclass(frozen=True)
class PromptFormat:
    """A prompt format as declared in ``prompts/<name>/format.toml``.

    The splitter and the stop handling read the markers from here, so a new format is a new folder,
    not new code.
    """

    name: str
    label: str
    chat: bool
    reasoning_start: str
    response_marker: str
    stop: tuple[str, ...]
    # Where a response ends although the model writes on: stops that count only in the response.
    response_stop: tuple[str, ...] = ()
    # Where a reasoning ends without the marker: stops that count only before the response marker.
    reasoning_stop: tuple[str, ...] = ()

    @property
    def response_stops(self) -> tuple:
        """Stops for a call whose whole output is the response (special, vanilla)."""
        return self.stop + tuple(("", s) for s in self.response_stop)

    @property
    def reasoning_stops(self) -> tuple:
        """Stops for a call that reasons first: reasoning stops count before the response marker,
        response stops after it."""
        return (self.stop + tuple(Until(self.response_marker, s) for s in self.reasoning_stop)
                + tuple((self.response_marker, s) for s in self.response_stop))


@lru_cache(maxsize=None)
def load_format(name: str) -> PromptFormat:
    path = PROMPTS_DIR / name / "format.toml"
    if not path.is_file():
        raise ValueError(f"unknown prompt format {name!r}; known: {', '.join(format_names())}")
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return PromptFormat(
        name=name,
        label=data["label"],
        chat=bool(data["chat"]),
        reasoning_start=data.get("reasoning_start", ""),
        response_marker=data["response_marker"],
        stop=tuple(data.get("stop", ())),
        response_stop=tuple(data.get("response_stop", ())),
        reasoning_stop=tuple(data.get("reasoning_stop", ())),
    )


def format_names() -> list[str]:
    return list(FORMATS)


def render_chat_template(template: str, messages: list[dict], *, bos_token: str = "",
                         eos_token: str = "") -> str:
    """Render a model's own chat template (from its tokenizer or GGUF) in our sandbox.

    Variables that chat templates test without ``is defined`` are passed explicitly, since the
    environment's undefined is strict.
    """
    return ENV.from_string(template).render(
        messages=messages,
        add_generation_prompt=True,
        tools=None,
        documents=None,
        bos_token=bos_token,
        eos_token=eos_token,
    )


@dataclass(frozen=True)
class ChatTemplate:
    """What the chat format needs from a model: its template text and special tokens."""

    template: str | None
    bos_token: str = ""
    eos_token: str = ""


def render_prompt(fmt: PromptFormat, mode: str, instruction: str, input: str = "",
                  reasoning: str = "", chat: ChatTemplate | None = None) -> str:
    """The exact text sent to the model for one mode of one format (or ``CONTINUE``).

    ``reasoning`` is used verbatim in special and continue modes: the whole point is that the
    user's edit, including its whitespace, is what the model conditions on.
    """
    if mode not in TEMPLATES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(TEMPLATES)}")
    variables = {"instruction": instruction, "input": input, "reasoning": reasoning}
    if fmt.chat:
        user = ENV.get_template(f"{fmt.name}/user.j2").render(**variables)
        chat = chat or ChatTemplate(None)
        template = chat.template or ENV.loader.get_source(ENV, f"{fmt.name}/chatml.j2")[0]
        prefix = render_chat_template(template, [{"role": "user", "content": user}],
                                      bos_token=chat.bos_token, eos_token=chat.eos_token)
        # Some templates (DeepSeek-R1, QwQ) already open the think block; ours adds it per mode.
        opened = prefix.rstrip()
        if fmt.reasoning_start and opened.endswith(fmt.reasoning_start):
            prefix = opened[: -len(fmt.reasoning_start)]
        variables["chat_prefix"] = prefix
    return ENV.get_template(f"{fmt.name}/{mode}.j2").render(**variables)


# The debate's instructions (``prompts/<format>/<task>.j2``): rendered here, then wrapped in the
# format's own prompt like any question. fbq is the seed's FBQ_GVB_template.j2, as in the document.
TASKS = {"fbq": ("str_output_aff",), "rebuttal": ("side", "goal", "question", "answer")}


def render_task(fmt: PromptFormat, task: str, **variables: str) -> str:
    """The instruction of a debate step: the seed's fact-based-question template or a rebuttal."""
    if task not in TASKS or set(variables) != set(TASKS[task]):
        raise ValueError(f"task {task!r} takes {TASKS.get(task)}, got {sorted(variables)}")
    return ENV.get_template(f"{fmt.name}/{task}.j2").render(**variables)


@dataclass(frozen=True)
class Variant:
    """One ready reasoning of an example, answered from as written (special mode)."""

    label: str
    reasoning: str


@dataclass(frozen=True)
class Example:
    """A one-click example, with the context its reasonings were written and checked in: loading
    it sets the question, the mode, the prompt format and every generation setting in the page."""

    title: str
    mode: str
    question: str
    input: str
    reasoning: str = ""
    lang: str = "ja"  # "en" or "ja": the embedded English-only model lists the English ones first
    demo: bool = False  # the example that "Show me" runs, with its first two variants
    variants: tuple[Variant, ...] = ()
    prompt_format: str = "alpaca"
    settings: GenerationSettings = GenerationSettings()

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """(label, question, input, mode, reasoning): one per variant, or the example itself."""
        if not self.variants:
            return [(self.title, self.question, self.input, self.mode, self.reasoning)]
        return [(f"{self.title} — {v.label}", self.question, self.input, "special", v.reasoning)
                for v in self.variants]

    @property
    def context(self) -> tuple:
        """(prompt format, then each generation setting in GENERATION_BOUNDS order): what the page
        shows while the example runs."""
        return (self.prompt_format, *(getattr(self.settings, name) for name in GENERATION_BOUNDS))


def _example(item: dict) -> Example:
    variants = tuple(Variant(**v) for v in item.pop("variant", ()))
    prompt_format = item.pop("format", "alpaca")
    try:
        load_format(prompt_format)
        settings = GenerationSettings.checked(**item.pop("settings", {}))
    except ValueError as error:
        raise ValueError(f"example {item.get('title')!r}: {error}") from None
    example = Example(**item, variants=variants, prompt_format=prompt_format, settings=settings)
    if example.lang not in ("en", "ja"):
        raise ValueError(f"example {example.title!r}: lang = {example.lang!r}; choose en or ja")
    if example.demo and len(variants) < 2:
        raise ValueError(f"example {example.title!r}: the demo example needs two variants")
    return example


@lru_cache(maxsize=None)
def examples() -> tuple[Example, ...]:
    """Checked when loaded: a typo in the data file fails at start, not at a click."""
    data = tomllib.loads((PROMPTS_DIR / "examples.toml").read_text(encoding="utf-8"))
    items = tuple(_example(dict(item)) for item in data["example"])
    if sum(e.demo for e in items) != 1:
        raise ValueError("examples.toml: exactly one example must have demo = true")
    return items


INTERVENTION_PLACES = ("prepend", "append", "cut")


@dataclass(frozen=True)
class Intervention:
    """A one-click edit of the reasoning, declared in ``prompts/interventions.toml``."""

    id: str
    label_en: str
    label_ja: str
    where: str  # one of INTERVENTION_PLACES
    text_en: str = ""
    text_ja: str = ""


@lru_cache(maxsize=None)
def interventions() -> tuple[Intervention, ...]:
    """Checked when loaded, so that a typo in the data file fails at start, not at a click."""
    data = tomllib.loads((PROMPTS_DIR / "interventions.toml").read_text(encoding="utf-8"))
    items = tuple(Intervention(**item) for item in data["intervention"])
    for item in items:
        if item.where not in INTERVENTION_PLACES:
            raise ValueError(f"intervention {item.id!r}: where = {item.where!r}; "
                             f"choose one of {', '.join(INTERVENTION_PLACES)}")
        if item.where != "cut" and not (item.text_en.strip() and item.text_ja.strip()):
            raise ValueError(f"intervention {item.id!r} needs text_en and text_ja")
    if len({item.id for item in items}) != len(items):
        raise ValueError("intervention ids must be unique")
    return items
