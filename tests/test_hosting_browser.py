"""Upload limit and temporary files as a person meets them, in headless Chromium: an import over
the limit is refused with a message, a crafted XLSX that inflates past it is refused by the
debate's import, and exports are deleted after their bound."""

from __future__ import annotations

import tracemalloc

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect  # noqa: E402

from bonsai_ui.engine import Engine  # noqa: E402
from conftest import VIEWPORT, ScriptedBackend  # noqa: E402
from test_debate_browser import open_debate  # noqa: E402
from test_hosting import EVERY, MB, files_under, launch, wait_until  # noqa: E402
from test_uploads import zip_bomb  # noqa: E402
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
    app = launch(Engine(backend), tmp_path / "gradio", "--max-upload", str(LIMIT),
                 "--temp-max-age", str(AGE), "--temp-cleanup-every", str(EVERY))
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


def test_a_crafted_xlsx_is_refused_by_the_debate_import_without_inflating(page, tmp_path, monkeypatch):
    """Small enough to upload (under 1 MB), 100 MB once unzipped: the debate tab's import refuses
    it from its headers with the sizes named, in bounded memory, and the app goes on serving."""
    bomb = tmp_path / "debate.xlsx"
    zip_bomb(bomb, 100 * MB)
    assert bomb.stat().st_size < MB
    # As in a served app, the temporary folder stays set while the app runs: Gradio checks that an
    # uploaded file is under it when the import event reads it.
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    app = launch(Engine(ScriptedBackend()), tmp_path / "gradio", "--max-upload", str(MB),
                 "--temp-max-age", "60", "--temp-cleanup-every", str(EVERY))
    try:
        open_debate(page, app.url)
        tracemalloc.start()  # the app serves from this process
        with page.expect_file_chooser() as chooser:
            page.locator("#debate-import").click()
        chooser.value.set_files(bomb)
        expect(page.locator("#debate-message")).to_contain_text(
            "debate.xlsx inflates to 100.0 MB", timeout=TIMEOUT_MS)
        expect(page.locator("#debate-message")).to_contain_text("limited to 1.0 MB")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 20 * MB, f"{peak / MB:.0f} MB allocated while refusing it"
        open_app(page, app.url)  # still serving
    finally:
        app.close()


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
