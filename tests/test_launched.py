"""``python app.py`` as the README starts it, in a process of its own, driven in Chromium: Show me
(tests/test_guided_browser.py), an example button, an editor run and a debate step; and the same
command on a machine without torch.

Everything a person sees first, with no option given: the format the page picks for the embedded
model, the context an example brings, and the embedded model's own words on the pinned kernels.
"""

from __future__ import annotations

import pytest

pytest.importorskip("playwright.sync_api")
from gradio_client import Client  # noqa: E402
from playwright.sync_api import expect  # noqa: E402

from bonsai_ui.core.prompts import examples, load_format  # noqa: E402
from conftest import VIEWPORT, ServedApp  # noqa: E402
from test_browser import response_text, settings_accordion, wait_stats  # noqa: E402
from test_guided_browser import open_app  # noqa: E402

TIMEOUT_MS = 10_000
MODEL_TIMEOUT_MS = 180_000  # SmolLM2-135M on 2 CPU cores, two phases
CATS = next(e for e in examples() if e.title == "Is LUNA white? (3 cats)")
CATS_ANSWER = "The answer is no. LUNA is not white, and KIKI has black fur."  # its first reasoning's


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    yield context.new_page()
    context.close()


def test_the_loading_line_names_the_pinned_kernels(served_app, page):
    open_app(page, served_app.url)
    expect(page.locator("#model-status")).to_contain_text("AVX+AVX2+F16C+FMA, pinned")
    assert "pinned: the same tokens on every x86-64 CPU" in served_app.output()


def test_an_example_sets_its_context_and_answers_as_it_says(served_app, page):
    """The cats example's first reasoning, as its button loads it: alpaca, greedy, 64 new tokens,
    and the embedded model's answer that examples.toml quotes."""
    open_app(page, served_app.url)
    expect(page.locator("#format input")).to_have_value(load_format("think").label)
    variant = CATS.variants[0]
    page.get_by_role("button", name=f"{CATS.title} — {variant.label}").click()
    expect(page.locator("#reasoning textarea")).to_have_value(variant.reasoning, timeout=TIMEOUT_MS)
    expect(page.locator("#format input")).to_have_value(load_format("alpaca").label)
    settings_accordion(page).click()  # the settings sit in a folded panel
    expect(page.locator("#max_new_tokens input[type=number]")).to_have_value("64")
    expect(page.locator("#examples-loaded")).to_contain_text("alpaca")
    page.locator("#regenerate").click()
    wait_stats(page, "done", timeout=MODEL_TIMEOUT_MS)
    assert response_text(page) == CATS_ANSWER


def test_an_editor_run_in_the_pages_own_format(served_app, page):
    """Generate in reasoning mode, in the format `python app.py` shows for the embedded model."""
    open_app(page, served_app.url)
    page.locator("#question textarea").fill("I have 3 cats. How many legs do my cats have in total?")
    page.locator("#generate").click()
    stats = wait_stats(page, "done", timeout=MODEL_TIMEOUT_MS)
    assert page.locator("#reasoning textarea").input_value().strip()
    assert response_text(page) or "there is no answer" in stats  # never an empty answer unexplained
    assert "SmolLM2-135M-Instruct" in stats and "llama.cpp" in stats


def test_a_debate_step(served_app, page):
    open_app(page, served_app.url)
    page.get_by_role("tab", name="Debate ⚖").click()
    page.locator("#debate-start").click()
    expect(page.locator("#debate-progress")).to_contain_text("✅ done: round 1 · group A answers",
                                                             timeout=MODEL_TIMEOUT_MS)
    assert page.locator("#debate-answer-reasoning textarea").input_value().strip()


# A machine without torch: `import torch` (and transformers) fail in the app's process.
NO_TORCH = ["-c", "import runpy, sys; sys.modules.update(torch=None, transformers=None); "
                  "sys.argv = sys.argv[1:]; runpy.run_path('app.py', run_name='__main__')"]


def test_the_app_serves_the_embedded_model_without_torch():
    app = ServedApp(python_args=NO_TORCH)
    try:
        client = Client(app.url, verbose=False)
        result = client.predict(CATS.question, "", "special", "alpaca", CATS.variants[0].reasoning,
                                *CATS.context[1:], api_name="/generate")
        assert result[1] == CATS_ANSWER
    finally:
        app.close()
    assert "ModuleNotFoundError" not in app.output() and "ImportError" not in app.output()
