"""The real page in headless Chromium (Playwright, sync API): what a person sees and does.

One browser for the session, a fresh context and page per test. The editing round trip runs on the
real embedded model (``real_app``); the mechanics that need exact text (a marker split across
pieces, HTML in the output, Stop mid-stream) run on the scripted backend (``scripted_app``).

Screenshots for the README are written only with ``BONSAI_SCREENSHOTS=1``, so that an ordinary run
never rewrites tracked files:

    BONSAI_SCREENSHOTS=1 python -m pytest -q tests/test_browser.py
"""

from __future__ import annotations

import re
import time

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, expect  # noqa: E402

from bonsai_ui.core.prompts import examples, load_format  # noqa: E402

from conftest import IMAGES, SCREENSHOTS, VIEWPORT  # noqa: E402

MARKER = "### Response:"  # the alpaca format's response marker (prompts/alpaca/format.toml)
THINK = load_format("think")  # the embedded model's format as `python app.py` shows it (--format auto)
REAL_MODEL_TIMEOUT_MS = 90_000  # SmolLM2-135M on 2 busy CPU cores
SCRIPTED_TIMEOUT_MS = 10_000


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    yield page
    context.close()


# -- helpers -------------------------------------------------------------------------------------

def open_app(page: Page, app) -> None:
    page.goto(app.url)
    expect(page.locator("#question textarea")).to_be_editable(timeout=30_000)
    expect(page.locator("#model-status")).to_contain_text("🟢", timeout=30_000)


def question(page: Page):
    return page.locator("#question textarea")


def reasoning(page: Page):
    return page.locator("#reasoning textarea")


# The markdown itself, not the block around it: while a run is pending Gradio overlays a status
# tracker ("processing | 0.1s") inside the same block, and its text must not count as content.
RESPONSE = "#response-box [data-testid=markdown]"
STATS = "#stats [data-testid=markdown]"


def response_text(page: Page) -> str:
    return page.locator(RESPONSE).inner_text().strip()


def stats_text(page: Page) -> str:
    return page.locator(STATS).inner_text().strip()


def wait_stats(page: Page, word: str, previous: str | None = None,
               timeout: float = SCRIPTED_TIMEOUT_MS) -> str:
    """Wait until the stats line says ``word`` ("done", "stopped") and differs from ``previous``."""
    page.wait_for_function(
        """([word, previous]) => {
             const el = document.querySelector('#stats [data-testid=markdown]');
             if (!el) return false;
             const text = el.innerText.trim();
             return new RegExp('\\\\b' + word + '\\\\b').test(text) && text !== previous;
           }""",
        arg=[word, previous], timeout=timeout)
    return stats_text(page)


def accordion(page: Page, elem_id: str, label: str):
    """An accordion's header: by elem_id where the page has one, else by its label."""
    return (page.locator(f"#{elem_id} > button.label-wrap")
            .or_(page.get_by_text(label, exact=True)).first)


def settings_accordion(page: Page):
    return accordion(page, "settings-accordion", "Generation settings / 生成設定")


def set_max_new_tokens(page: Page, n: int) -> None:
    settings_accordion(page).click()
    box = page.locator("#max_new_tokens input[type=number]")
    for _ in range(3):  # the page's load event may still be restoring settings over the first fill
        box.fill(str(n))
        box.press("Enter")
        try:
            expect(box).to_have_value(str(n), timeout=2000)
            break
        except AssertionError:
            continue
    expect(box).to_have_value(str(n))
    settings_accordion(page).click()  # fold it again


def prompt_text(page: Page) -> str:
    """The Prompt accordion's full text (a textbox; a code view is read line by line)."""
    box = page.locator("#prompt")
    if not box.is_visible():
        accordion(page, "prompt-accordion", "Prompt preview / プロンプト").click()
    expect(box).to_be_visible()
    if page.locator("#prompt textarea").count():
        return page.locator("#prompt textarea").input_value()
    return page.evaluate("Array.from(document.querySelectorAll('#prompt .cm-line'))"
                         ".map(line => line.textContent).join('\\n')")


def start_recording(page: Page) -> None:
    """Record every distinct value the Reasoning and Response panes show, frame by frame."""
    page.evaluate("""() => {
        const seen = window.__seen = {reasoning: [], response: []};
        const tick = () => {
            const r = document.querySelector('#reasoning textarea').value;
            const s = document.querySelector('#response-box [data-testid=markdown]').innerText.trim();
            if (seen.reasoning[seen.reasoning.length - 1] !== r) seen.reasoning.push(r);
            if (seen.response[seen.response.length - 1] !== s) seen.response.push(s);
            requestAnimationFrame(tick);
        };
        tick();
    }""")


def toast(page: Page, text: str):
    return page.locator('[data-testid="toast-text"]').filter(has_text=text)


# -- the editing round trip on the real model ----------------------------------------------------

REAL_QUESTION = "I have 3 cats. How many legs do my cats have in total?"
EDITED_REASONING = ("Each cat has 4 legs.\n"
                    "There are 3 cats, so 3 × 4 = 12 legs.\n"
                    "The answer is 12 legs. / 答えは12本です。")


def test_generate_edit_regenerate_on_real_model(real_app, page):
    open_app(page, real_app)
    # --format auto: a chat model's own template with <think> tags, as `python app.py` shows it
    expect(page.locator("#format input")).to_have_value(THINK.label)
    set_max_new_tokens(page, 64)  # per phase; keeps the run short on a small CPU
    question(page).fill(REAL_QUESTION)

    page.locator("#generate").click()
    first_stats = wait_stats(page, "done", timeout=REAL_MODEL_TIMEOUT_MS)
    first_reasoning = reasoning(page).input_value()
    first_response = response_text(page)
    assert first_reasoning.strip(), "the reasoning pane stayed empty"
    assert first_response, "the response pane stayed empty (the special-prompt fallback should fill it)"
    assert THINK.response_marker not in first_reasoning and THINK.reasoning_start not in first_reasoning
    assert question(page).input_value() == REAL_QUESTION
    assert EDITED_REASONING != first_reasoning

    reasoning(page).fill(EDITED_REASONING)
    page.locator("#regenerate").click()
    wait_stats(page, "done", previous=first_stats, timeout=REAL_MODEL_TIMEOUT_MS)
    second_response = response_text(page)
    assert second_response, "Regenerate left the response empty"
    assert second_response != first_response, "the response did not follow the edited reasoning"
    # What the user left is untouched: Regenerate writes only the response.
    assert question(page).input_value() == REAL_QUESTION
    assert reasoning(page).input_value() == EDITED_REASONING

    if SCREENSHOTS:
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.mouse.move(0, 0)  # no hover highlight in the picture
        page.screenshot(path=str(IMAGES / "editor.png"), full_page=True)

    sent = prompt_text(page)
    assert EDITED_REASONING in sent, "the prompt sent on Regenerate lacks the edited reasoning verbatim"
    assert REAL_QUESTION in sent
    assert sent.index(EDITED_REASONING) < sent.rindex(THINK.response_marker), \
        "the reasoning must precede the marker"


# -- scripted mechanics --------------------------------------------------------------------------

def test_stop_mid_stream_keeps_partial_text_and_frees_the_model(scripted_app, page):
    backend = scripted_app.backend
    words = [f" word{i}" for i in range(400)]
    backend.script = [["Reasoning ", "before ", "stopping.", "\n", MARKER, *words],
                      ["Fresh ", "reasoning.", "\n", MARKER, " Fresh ", "answer."]]
    backend.delay = 0.02  # 400 pieces: about 8 s if nobody stops it
    full_response = "".join(words).strip()
    open_app(page, scripted_app)
    question(page).fill("Count slowly.")

    page.locator("#generate").click()
    expect(page.locator(RESPONSE)).to_contain_text("word5", timeout=SCRIPTED_TIMEOUT_MS)
    page.locator("#stop").click()
    expect(page.locator(STATS)).to_contain_text("stopped", timeout=2_000)

    partial = response_text(page)
    assert partial.startswith("word0 word1"), partial
    assert full_response.startswith(partial), "the stopped response is not a prefix of the stream"
    assert len(partial) < len(full_response), "the run was not stopped mid-stream"
    assert reasoning(page).input_value() == "Reasoning before stopping."
    page.wait_for_timeout(500)  # nothing may keep streaming into the panes after Stop
    assert response_text(page) == partial
    assert "stopped" in stats_text(page)

    # The next Generate runs at once: no ghost generation holds the model (~7 s of the first
    # run's pieces are left; the second run must finish well before that).
    before = stats_text(page)
    clicked = time.perf_counter()
    page.locator("#generate").click()
    wait_stats(page, "done", previous=before, timeout=4_000)
    assert time.perf_counter() - clicked < 4
    assert response_text(page) == "Fresh answer."
    assert reasoning(page).input_value() == "Fresh reasoning."
    assert len(backend.prompts) == 2


def test_split_marker_never_flashes_in_the_reasoning(scripted_app, page):
    backend = scripted_app.backend
    backend.script = [["Think", " it", " through", ".", "\n\n#", "#", "#", " Res", "p", "onse", ":",
                       " The", " answer", " is", " 7."]]
    backend.delay = 0.2  # slower than the page's update rate: every piece is shown on its own
    open_app(page, scripted_app)
    # The marker below is the alpaca format's, the default format of LaunchedApp.
    expect(page.locator("#format input")).to_have_value(re.compile("^Alpaca"))
    question(page).fill("What is 3 + 4?")

    start_recording(page)
    page.locator("#generate").click()
    wait_stats(page, "done")
    seen = page.evaluate("window.__seen")

    assert reasoning(page).input_value() == "Think it through."
    assert response_text(page) == "The answer is 7."
    streamed = [r for r in seen["reasoning"] if r]
    assert len(streamed) >= 3, f"the stream was not observed piece by piece: {streamed}"
    for shown in seen["reasoning"]:
        assert "#" not in shown, f"a partial marker flashed in the Reasoning pane: {shown!r}"
        for k in range(1, len(MARKER)):
            assert not shown.rstrip().endswith(MARKER[:k]), shown
    for shown in seen["response"]:
        assert "#" not in shown and "onse" not in shown, f"marker text in the Response pane: {shown!r}"
        assert "The answer is 7.".startswith(shown), shown


def test_html_in_model_output_renders_inert(scripted_app, page):
    backend = scripted_app.backend
    # Inline HTML inside a paragraph, then HTML blocks of their own (CommonMark keeps a line that
    # starts with <script> as raw HTML, so the markdown to render sits in the first paragraph).
    backend.script = [["Reasoning with <b>tags</b>.", "\n", MARKER, "\n",
                       "Answer: <script>window.__pwned=1</script>",
                       '<img src=x onerror="window.__pwned=2">', " **bold**", "\n\n",
                       "<script>window.__pwned=3</script>\n\n",
                       '<svg onload="window.__pwned=4"></svg>\n\n',
                       '<a href="javascript:window.__pwned=5" id="evil">click</a>']]
    open_app(page, scripted_app)
    question(page).fill("Say something risky.")

    page.locator("#generate").click()
    wait_stats(page, "done")
    page.wait_for_timeout(500)  # time for a broken image's onerror to fire, if it could

    assert page.evaluate("typeof window.__pwned") == "undefined", "model output ran script in the page"
    box = page.locator(RESPONSE)
    expect(box.locator("strong")).to_have_text("bold")
    assert box.locator("script").count() == 0
    assert box.locator("[onerror], [onload]").count() == 0
    assert box.locator("a[href^='javascript']").count() == 0
    # The reasoning is plain text in a textarea: the tags stay visible, as written.
    assert reasoning(page).input_value() == "Reasoning with <b>tags</b>."


def test_bad_input_shows_an_error_and_loses_nothing(scripted_app, page):
    backend = scripted_app.backend
    backend.pieces = ["never ", "used"]
    open_app(page, scripted_app)
    question(page).fill("   ")
    page.locator("#input textarea").fill("some context / 文脈")
    reasoning(page).fill("my own notes\nsecond line")

    page.locator("#generate").click()
    expect(toast(page, "Type a question first")).to_be_visible(timeout=SCRIPTED_TIMEOUT_MS)
    assert question(page).input_value() == "   "
    assert page.locator("#input textarea").input_value() == "some context / 文脈"
    assert reasoning(page).input_value() == "my own notes\nsecond line"
    assert response_text(page) == ""
    assert backend.prompts == [], "the model was called for an empty question"

    # Regenerate from an empty reasoning is refused the same way.
    question(page).fill("A real question?")
    reasoning(page).fill("")
    page.locator("#regenerate").click()
    expect(toast(page, "The reasoning is empty")).to_be_visible(timeout=SCRIPTED_TIMEOUT_MS)
    assert question(page).input_value() == "A real question?"
    assert backend.prompts == []


def test_one_click_loads_the_pears_example(scripted_app, page):
    seed = examples()[2]
    assert seed.title.startswith("Fruit count: eat 5 of 4 pears")
    backend = scripted_app.backend
    backend.pieces = [" 7", "個"]
    open_app(page, scripted_app)

    page.get_by_role("button", name=re.compile("Fruit count: eat 5 of 4 pears")).click()
    expect(question(page)).to_have_value(seed.question)
    expect(page.locator("#mode input[value=special]")).to_be_checked()
    expect(reasoning(page)).to_have_value(seed.reasoning)
    assert page.locator("#input textarea").input_value() == seed.input
    assert backend.prompts == [], "loading an example must not start a run"

    # Generate in special mode answers from the seed's reasoning, as loaded.
    page.locator("#generate").click()
    wait_stats(page, "done")
    assert response_text(page) == "7個"
    assert reasoning(page).input_value() == seed.reasoning
    assert seed.reasoning in backend.prompts[0] and seed.question in backend.prompts[0]


def test_seed_setting_is_a_number_box(scripted_app, page):
    """The seed (-1 … 2³¹-1) is typed, not dragged: a slider over two billion values is useless."""
    open_app(page, scripted_app)
    settings_accordion(page).click()
    expect(page.locator("#seed input[type=number]")).to_be_visible()
    assert page.locator("#seed input[type=range]").count() == 0, "the seed renders as a slider"
    expect(page.locator("#temperature input[type=range]")).to_be_visible()


def test_prompt_preview_follows_fast_typing(scripted_app, page, monkeypatch):
    """The preview shows what Generate would send now, including the last keystroke.

    Each preview takes 0.4 s here (a Space over a slow link, a long prompt), so the last keystrokes
    land while one is still pending: they must be previewed once it is done, not dropped.
    """
    runner = scripted_app.runner
    quick = runner.preview

    def slow_preview(*args, **kwargs):
        time.sleep(0.4)
        return quick(*args, **kwargs)

    monkeypatch.setattr(runner, "preview", slow_preview)
    open_app(page, scripted_app)
    prompt_text(page)  # opens the accordion
    typed = "How many pears are left?"
    question(page).press_sequentially(typed, delay=20)
    page.wait_for_function(
        """(typed) => {
             const box = document.querySelector('#prompt textarea');
             const text = box ? box.value : Array.from(document.querySelectorAll('#prompt .cm-line'))
                                               .map(line => line.textContent).join('\\n');
             return text.includes('\\n' + typed + '\\n');
           }""", arg=typed, timeout=5_000)
    assert prompt_text(page).endswith("### Reasoning:\n")  # reasoning mode: the model writes the rest
