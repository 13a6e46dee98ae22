"""Upload limit and temporary files as a person meets them, in headless Chromium: an import over
the limit is refused with a message, and exports are deleted after their bound."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect  # noqa: E402

from bonsai_ui.engine import Engine  # noqa: E402
from bonsai_ui.runs import Runner  # noqa: E402
from conftest import VIEWPORT, ScriptedBackend  # noqa: E402
from test_hosting import EVERY, files_under, launch, wait_until  # noqa: E402
from test_workbench_browser import TIMEOUT_MS, cell, open_app, run, tab, toast  # noqa: E402

LIMIT = 2000  # bytes
AGE = 8  # seconds: long enough for the page to show the export before it goes, on a busy machine


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    yield context.new_page()
    context.close()


@pytest.fixture
def small_app(tmp_path):
    backend = ScriptedBackend(script=[["Pears: 4 - 5 < 0.", "\n### Response:\n", "None left."]])
    app = launch(Runner(Engine(backend)), tmp_path / "gradio", max_upload=LIMIT,
                 temp_max_age=AGE, temp_cleanup_every=EVERY)
    yield app
    app.close()


def test_an_import_over_the_limit_is_refused_with_the_limit_named(small_app, page, tmp_path):
    big = tmp_path / "history.jsonl"
    big.write_text('{"instruction": "Q", "input": "", "reasoning": "r", "output": "a"}\n' * 40)
    assert big.stat().st_size > LIMIT
    open_app(page, small_app.url)
    tab(page, "Export / import")
    with page.expect_file_chooser() as chooser:
        page.locator("#import").click()
    chooser.value.set_files(big)
    expect(toast(page, "exceed the maximum allowed size")).to_be_visible(timeout=TIMEOUT_MS)
    expect(toast(page, "history.jsonl")).to_be_visible()
    assert not any(p.name == big.name for p in files_under(small_app.folder)), "nothing stored"


def test_exports_are_deleted_with_their_folders_after_the_bound(small_app, page):
    open_app(page, small_app.url)
    page.locator("#question textarea").fill("Jack has 4 pears and eats 5. How many are left?")
    run(page, "generate")
    cell(page, 0, 1).click()  # ★
    expect(cell(page, 0, 1)).to_have_text("★", timeout=TIMEOUT_MS)
    tab(page, "Export / import")
    page.locator("#export").click()
    expect(page.locator("#workbench-message")).to_contain_text("Exported 1 attempt(s)", timeout=TIMEOUT_MS)
    exports = [p for p in files_under(small_app.folder) if "bonsai-exports" in p.parts]
    assert sorted(p.name.split("-")[1] for p in exports) == ["alpaca", "messages"], \
        "one copy of each export, inside Gradio's cache"
    folders = {p.parent for p in exports}
    assert wait_until(lambda: not any(p.exists() for p in exports), 30), "exports outlived their bound"
    assert wait_until(lambda: not any(f.exists() for f in folders), 30), "their folder stayed behind"
