"""The first five minutes in headless Chromium: "Show me" on the real embedded model, the
first-visit hint, and the examples as listed per model.

The README's screenshot of the guided demo is written only with ``BONSAI_SCREENSHOTS=1``:

    BONSAI_SCREENSHOTS=1 python -m pytest -q tests/test_guided_browser.py
"""

from __future__ import annotations

import re

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, expect  # noqa: E402

from bonsai_ui.editor import guided  # noqa: E402
from bonsai_ui.core.prompts import load_format  # noqa: E402
from bonsai_ui.engine import Engine  # noqa: E402
from bonsai_ui.ui.guided_ui import HINT_KEY  # noqa: E402

from conftest import IMAGES, SCREENSHOTS, VIEWPORT, LaunchedApp, ScriptedBackend  # noqa: E402
from test_browser import settings_accordion  # noqa: E402

DEMO_TIMEOUT_MS = 180_000  # two runs of SmolLM2-135M on 2 busy CPU cores
TIMEOUT_MS = 10_000
HINT = "#first-visit-hint"  # a gr.Group: Gradio gives its inner box the same id


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    yield context.new_page()
    context.close()


def open_app(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#model-status")).to_contain_text("🟢", timeout=30_000)


def example_labels(page: Page) -> list[str]:
    """The example buttons' labels, in the page's order."""
    labels = {row[0] for e in guided.ordered_examples("embedded") for row in e.rows()}
    expect(page.get_by_role("button", name=guided.demo_example().rows()[0][0])).to_be_visible(
        timeout=TIMEOUT_MS)  # the examples are laid out
    shown = page.evaluate("Array.from(document.querySelectorAll('button')).map(b => b.innerText.trim())")
    return [text for text in shown if text in labels]


def test_show_me_runs_both_reasonings_and_compares_them(served_app, page):
    """On ``python app.py`` as launched: the page's own default format is think (--format auto),
    and Show me switches to the alpaca format and settings its reasonings were checked in."""
    demo = guided.demo_example()
    a, b = demo.variants[0].reasoning, demo.variants[1].reasoning
    removed, added = guided.changed_sentences(a, b)
    open_app(page, served_app.url)
    expect(page.locator("#format input")).to_have_value(load_format("think").label)

    page.locator("#show-me").click()
    # Reasoning A is loaded into the editor, in the demo's context, and answered first.
    expect(page.locator("#reasoning textarea")).to_have_value(a, timeout=TIMEOUT_MS)
    expect(page.locator("#question textarea")).to_have_value(demo.question)
    expect(page.locator("#mode input[value=special]")).to_be_checked()
    expect(page.locator("#format input")).to_have_value(load_format(demo.prompt_format).label)
    settings_accordion(page).click()  # the settings sit in a folded panel
    expect(page.locator("#max_new_tokens input[type=number]")).to_have_value(
        str(demo.settings.max_new_tokens))
    explanation = page.locator("#demo-explanation")
    expect(explanation).to_contain_text("You changed this sentence", timeout=DEMO_TIMEOUT_MS)

    # The editor shows run B, Compare is open on the pair, the explanation names the edit.
    expect(page.locator("#reasoning textarea")).to_have_value(b)
    expect(page.get_by_role("tab", name="Compare")).to_have_attribute("aria-selected", "true")
    text = explanation.inner_text()
    assert removed in text and added in text, text
    answers = re.search(r"the final answer changed from “(.+?)” to “(.+?)”", text)
    assert answers, f"the two responses did not differ: {text}"
    assert answers.groups() == ("2", "7"), text  # the final answers (tests/test_guided.py)
    assert answers.group(2) in page.locator("#response-box").inner_text()
    assert page.locator("#diff-response ins").count() > 0, "the response diff shows nothing added in B"
    expect(page.locator("#compare-summary")).not_to_be_empty()

    if SCREENSHOTS:
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.mouse.move(0, 0)
        page.screenshot(path=str(IMAGES / "guided-demo.png"), full_page=True)

    # Both runs are attempts like any other: A and B, the pair Compare shows.
    page.get_by_role("tab", name="Attempts").click()
    expect(page.locator("#attempts .virtual-row")).to_have_count(2, timeout=TIMEOUT_MS)
    cells = page.locator("#attempts").inner_text()
    assert cells.count("regenerate") == 2 and all(answer in cells for answer in answers.groups()), cells


def test_first_visit_hint_shows_once_and_stays_dismissed(scripted_app, browser):
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        open_app(page, scripted_app.url)
        hint = page.locator(HINT).first
        expect(hint).to_be_visible(timeout=TIMEOUT_MS)
        for step in ("ask", "edit the reasoning", "regenerate"):
            expect(hint).to_contain_text(step)
        page.locator("#hint-dismiss").click()
        expect(hint).to_be_hidden()
        page.wait_for_function(f"() => localStorage.getItem({HINT_KEY!r}) !== null", timeout=TIMEOUT_MS)

        page.reload()
        open_app(page, scripted_app.url)
        expect(page.locator("#show-me")).to_be_visible()  # the page is laid out …
        page.wait_for_timeout(1_500)  # … and its load events (which would show the hint) have run
        expect(hint).to_be_hidden()
    finally:
        context.close()
    # Remembered per browser: a new visitor sees it.
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        open_app(page, scripted_app.url)
        expect(page.locator(HINT).first).to_be_visible(timeout=TIMEOUT_MS)
    finally:
        context.close()


def test_the_hint_speaks_japanese_to_a_japanese_browser(scripted_app, browser):
    context = browser.new_context(viewport=VIEWPORT, locale="ja-JP")
    try:
        page = context.new_page()
        open_app(page, scripted_app.url)
        expect(page.locator(HINT).first).to_contain_text("推論を編集", timeout=TIMEOUT_MS)
        expect(page.locator("#show-me")).to_have_text("やってみせて ✨")
    finally:
        context.close()


def test_examples_list_english_first_on_the_embedded_model(scripted_app, page):
    open_app(page, scripted_app.url)  # no --model: the embedded model
    labels = example_labels(page)
    expected = [row[0] for e in guided.ordered_examples("embedded") for row in e.rows()]
    assert labels == expected and len(labels) == 9, labels
    assert labels[0].startswith("Autumn trip from Manila — ")
    assert labels[-1].startswith("Fruit count: eat 5 of 4 pears (果物")
    expect(page.locator("#examples-note")).to_contain_text("reads only English")

    demo = guided.demo_example()
    page.get_by_role("button", name=f"{demo.title} — {demo.variants[1].label}").click()
    expect(page.locator("#reasoning textarea")).to_have_value(demo.variants[1].reasoning)
    expect(page.locator("#question textarea")).to_have_value(demo.question)
    expect(page.locator("#mode input[value=special]")).to_be_checked()
    expect(page.locator("#format input")).to_have_value(load_format(demo.prompt_format).label)
    settings_accordion(page).click()  # the settings sit in a folded panel
    expect(page.locator("#max_new_tokens input[type=number]")).to_have_value(
        str(demo.settings.max_new_tokens))


def test_examples_list_the_seeds_japanese_first_on_another_model(browser):
    app = LaunchedApp(Engine(ScriptedBackend()), ["--model", "Qwen/Qwen2.5-0.5B-Instruct"])
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        open_app(page, app.url)
        labels = example_labels(page)
        assert labels[0] == "Manila → Japan autumn-leaves trip (紅葉旅行)", labels
        assert labels[3].startswith("Autumn trip from Manila — ")
        assert page.locator("#examples-note").count() == 0
    finally:
        context.close()
        app.close()
