"""The ablation map in the launched app: ``/ablate`` through gradio_client on the embedded model, and
the map in Chromium (shading, a click shows the diff, Stop keeps the finished rows, the map comes
back with its attempt after a reload). The README image is written only with
``BONSAI_SCREENSHOTS=1``:

    BONSAI_SCREENSHOTS=1 python -m pytest -q tests/test_ablation_app.py
"""

from __future__ import annotations

import re

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from bonsai_ui.ablation.sweep import change_share
from conftest import IMAGES, SCREENSHOTS, VIEWPORT  # noqa: E402

QUESTION = "Jack has 4 pears and eats 5 of them. How many pears are left?"
REASONING = "Jack has 4 pears. He eats 5 of them. The weather is nice."
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def client(real_app):
    return Client(real_app.url, verbose=False)


def test_ablate_endpoint_on_the_embedded_model(client):
    rows = client.predict(QUESTION, "", REASONING, "alpaca", "sentence", "", 24, 0.0, 0.95, 50, 1.1, 0,
                          api_name="/ablate")
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert [r["sentence"] for r in rows] == ["", "Jack has 4 pears.", "He eats 5 of them.",
                                             "The weather is nice."]
    assert rows[0]["reasoning"] == REASONING and rows[0]["response"].strip()
    for row in rows[1:]:
        assert row["sentence"] in row["removed"] and row["sentence"] not in row["reasoning"]
        assert row["identical"] == (row["response"] == rows[0]["response"])
        assert 0 <= row["change_share"] <= 1 and row["prompt_tokens"] > 0


def test_ablate_one_sentence_and_a_replacement(client):
    rows = client.predict(question=QUESTION, reasoning="Jack has 4 pears.", max_new_tokens=16,
                          api_name="/ablate")
    assert [r["reasoning"] for r in rows] == ["Jack has 4 pears.", ""]
    rows = client.predict(question=QUESTION, reasoning="Jack has 4 pears.", replacement="Jack has 4 pears.",
                          max_new_tokens=16, api_name="/ablate")
    assert rows[1]["identical"] and rows[1]["tokens"] == rows[0]["tokens"], \
        "the same prompt reached through the cache writes the same tokens"


@pytest.mark.parametrize("args,message", [
    (dict(reasoning="  \n "), "The reasoning is empty: there is nothing to ablate"),
    (dict(reasoning=""), "The reasoning is empty"),
    (dict(question=" ", reasoning=REASONING), "Type a question first"),
    (dict(reasoning=REASONING, unit="word"), "unknown unit 'word'"),
    (dict(reasoning=REASONING, max_new_tokens=0), "max_new_tokens = 0 is out of range"),
])
def test_ablate_bad_input_is_a_clear_message(client, args, message):
    with pytest.raises(AppError, match=message):
        client.predict(**{"question": QUESTION, **args}, api_name="/ablate")


# -- in Chromium ---------------------------------------------------------------------------------

@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    yield context.new_page()
    context.close()


def open_map(page, url: str, question: str, reasoning: str) -> None:
    page.goto(url)
    page.wait_for_selector("#model-status:has-text('🟢')", timeout=30_000)
    page.locator("#question textarea").fill(question)
    page.locator("#reasoning textarea").fill(reasoning)
    page.locator("#ablation").get_by_text("Ablation map").first.click()
    page.locator("#ablation-run").wait_for(state="visible", timeout=TIMEOUT_MS)


def progress(page):
    return page.locator("#ablation-progress")


def shading(page) -> list[tuple[str, str, str]]:
    """(sentence, share, background) of each unit in the map."""
    return page.eval_on_selector_all(
        "#ablation-map [data-unit]",
        "els => els.map(e => [e.textContent, e.dataset.share, e.style.background])")


def test_map_shading_and_click_shows_the_diff(scripted_app, page):
    # the baseline, then the variants from the last sentence to the first
    scripted_app.backend.script = [p.split("|") for p in (
        "Jack has |-1 |pears.", "Jack has |-1 |pears.", "Jack |ate |4 |pears.", "Zero |pears |remain |here.")]
    open_map(page, scripted_app.url, QUESTION, REASONING)
    page.locator("#ablation-run").click()
    expect_text(page, "#ablation-progress", "✅ done · 4 of 4 responses")
    units = shading(page)
    assert [u[0] for u in units] == ["Jack has 4 pears.", "He eats 5 of them.", "The weather is nice."]
    assert units[2][1] == "0.0" and units[2][2] in ("", "transparent")
    assert float(units[1][1]) == pytest.approx(5 / 11) and "rgba(239, 68, 68" in units[1][2]
    share = change_share("Jack has -1 pears.", "Zero pears remain here.")
    assert share > 5 / 11 and float(units[0][1]) == pytest.approx(share) and "rgba(239, 68, 68" in units[0][2]
    assert page.locator("#ablation-map .abl-changed").count() == 2  # the final answer moved
    page.locator("#ablation-map [data-unit='2']").click()
    detail = page.locator("#ablation-detail")
    expect_text(page, "#ablation-detail", "final answer -1 → 4")
    assert " ".join(detail.locator("del").all_inner_texts()).split() == ["has", "-1"]
    assert " ".join(detail.locator("ins").all_inner_texts()).split() == ["ate", "4"]
    page.locator("#ablation-map [data-unit='3']").click()
    expect_text(page, "#ablation-detail", "identical response")
    assert detail.locator("ins").count() == 0 and detail.locator("del").count() == 0


def test_stop_keeps_finished_rows_and_reload_reopens_the_map(scripted_app, page):
    scripted_app.backend.delay = 0.1
    slow = ["x "] * 200  # the third response runs long enough to be stopped in
    scripted_app.backend.script = [["a ", "b ", "c"], ["a ", "b ", "c"], slow, slow]
    open_map(page, scripted_app.url, QUESTION, REASONING)
    page.locator("#ablation-run").click()
    expect_text(page, "#ablation-progress", "2 of 4 responses", timeout=20_000)
    page.locator("#ablation-stop").click()
    expect_text(page, "#ablation-progress", "⏹ stopped · 2 of 4 responses")
    units = shading(page)
    assert units[2][1] == "0.0" and units[0][1] == "" and units[1][1] == ""
    assert page.locator("#ablation-map .abl-pending").count() == 2
    # the stopped map was recorded as an attempt; a reload keeps it with that attempt
    page.wait_for_selector("#attempts .virtual-row", timeout=TIMEOUT_MS)
    page.reload()
    page.wait_for_selector("#model-status:has-text('🟢')", timeout=30_000)
    page.locator("#ablation").get_by_text("Ablation map").first.click()
    assert shading(page) == []
    calls = len(scripted_app.backend.prompts)
    # the stored history reaches the page after it loads (as text the page parses): wait for it
    page.wait_for_selector("#attempts [data-testid=cell-0-0]", timeout=TIMEOUT_MS)
    page.locator("#attempts [data-testid=cell-0-0]").click()  # ↩ restore
    expect_text(page, "#ablation-progress", "the map kept with this attempt")
    assert shading(page) == units
    assert page.locator("#reasoning textarea").input_value() == REASONING
    page.locator("#ablation-map [data-unit='3']").click()
    expect_text(page, "#ablation-detail", "identical response")
    assert len(scripted_app.backend.prompts) == calls, "nothing was run again"


def test_map_on_the_embedded_model(real_app, page):
    """The whole path on the real model, as a user sees it (and the README's image)."""
    reasoning = ("Jack has 4 pears. He eats 5 of them. Eating 5 of 4 pears is impossible. "
                 "So the question has a false premise. The weather is nice today.")
    open_map(page, real_app.url, QUESTION, reasoning)
    page.locator("#settings-accordion").get_by_text("Generation settings").first.click()
    page.locator("#max_new_tokens input[type=number]").fill("48")
    page.locator("#max_new_tokens input[type=number]").press("Enter")
    page.locator("#ablation-run").click()
    expect_text(page, "#ablation-progress", "✅ done · 6 of 6 responses", timeout=120_000)
    units = shading(page)
    assert len(units) == 5 and all(u[1] != "" for u in units)
    page.locator("#ablation-map [data-unit='3']").click()
    expect_text(page, "#ablation-detail", "Sentence 3 removed")
    if SCREENSHOTS:
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.mouse.move(0, 0)
        page.locator("#ablation").screenshot(path=str(IMAGES / "ablation.png"))


def expect_text(page, selector: str, text: str, timeout: int = TIMEOUT_MS) -> None:
    from playwright.sync_api import expect

    expect(page.locator(selector)).to_contain_text(re.compile(re.escape(text)), timeout=timeout)
