"""The workbench in headless Chromium: attempts, compare, continue, interventions, export/import,
and a history that survives reloads and restarts but stays in its own browser.

Exact text comes from the scripted backend; one test runs the real embedded model. The compare
screenshot for the README is written only with ``BONSAI_SCREENSHOTS=1``:

    BONSAI_SCREENSHOTS=1 python -m pytest -q tests/test_workbench_browser.py
"""

from __future__ import annotations

import json
import re
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, expect  # noqa: E402

from bonsai_ui.workbench.diffing import count_changes, diff_texts  # noqa: E402
from bonsai_ui.engine import Engine  # noqa: E402
from conftest import IMAGES, SCREENSHOTS, VIEWPORT, LaunchedApp, ScriptedBackend, free_port  # noqa: E402

TIMEOUT_MS = 10_000
REAL_MODEL_TIMEOUT_MS = 90_000
ADDED, REMOVED = "ins", "del"  # the diff's elements (diffing.to_html)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    yield context.new_page()
    context.close()


# -- helpers -------------------------------------------------------------------------------------

@contextmanager
def on_stored(browser, history):
    """A page (and its app, on the scripted backend) whose browser storage holds ``history``, with
    all questions listed."""
    backend = ScriptedBackend()
    app = LaunchedApp(Engine(backend), stored=history.to_data())
    app.backend = backend
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        open_app(page, app.url)
        page.locator("#all-questions input").check()
        yield page, app
    finally:
        context.close()
        app.close()


def open_app(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#model-status")).to_contain_text("🟢", timeout=30_000)


def reasoning(page: Page):
    return page.locator("#reasoning textarea")


def run(page: Page, button: str, timeout: float = TIMEOUT_MS) -> None:
    """Click a run button and wait until the run is done and recorded in the attempts list."""
    before = rows(page)
    page.locator(f"#{button}").click()
    expect(page.locator("#attempts .virtual-row")).to_have_count(before + 1, timeout=timeout)
    expect(page.locator("#stats")).to_contain_text("done")


def rows(page: Page) -> int:
    return page.locator("#attempts .virtual-row").count()


def cell(page: Page, row: int, col: int):
    return page.locator(f"#attempts [data-testid=cell-{row}-{col}]")


def table(page: Page) -> list[list[str]]:
    return [[cell(page, r, c).inner_text().strip() for c in range(9)] for r in range(rows(page))]


def tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def pick(page: Page, which: str, label_start: str) -> None:
    """Choose the Compare dropdown option whose label starts with ``label_start``."""
    page.locator(f"#compare-{which} input").click()
    page.get_by_role("option").filter(has_text=label_start).first.click()
    expect(page.locator(f"#compare-{which} input")).to_have_value(re.compile("^" + re.escape(label_start)))


PAINTED = """([id, tag]) => Array.from(document.querySelectorAll(`#${id} ${tag}`))
    .map(t => t.textContent).join(' ').split(/\\s+/).filter(w => w)"""


def painted(page: Page, elem_id: str, tag: str) -> list[str]:
    """The words of the diff marked by ``tag`` (ins: added, del: removed), in order."""
    return page.evaluate(PAINTED, [elem_id, tag])


def paint(page: Page, elem_id: str, tag: str) -> dict:
    """How the page shows the diff's first ``tag`` element."""
    return page.locator(f"#{elem_id} {tag}").first.evaluate(
        "e => { const s = getComputedStyle(e); return {background: s.backgroundColor,"
        " line: s.textDecorationLine}; }")


def words(segments, tag: str) -> list[str]:
    return " ".join(text for text, t in segments if t == tag).split()


def wait_painted(page: Page, elem_id: str, colour: str, expected: list[str]) -> None:
    page.wait_for_function(f"(args) => JSON.stringify(({PAINTED})(args.slice(0, 2))) === args[2]",
                           arg=[elem_id, colour, json.dumps(expected, separators=(",", ":"))],
                           timeout=TIMEOUT_MS)


def toast(page: Page, text: str):
    return page.locator('[data-testid="toast-text"]').filter(has_text=text)


def select_text(page: Page, text: str) -> None:
    """Select ``text`` in the reasoning box as a person would (the page hears the select event)."""
    reasoning(page).evaluate(
        """(el, text) => { const i = el.value.indexOf(text); el.focus();
                           el.setSelectionRange(i, i + text.length); }""", text)


def download(page: Page, kind: str, directory: Path) -> list[dict]:
    link = page.locator(f'#export-files a[download^="bonsai-{kind}-"]')
    with page.expect_download() as info:
        link.click()
    path = directory / info.value.suggested_filename
    info.value.save_as(path)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- the editing loop, attempts and compare ------------------------------------------------------

QUESTION = "Jack has 4 pears and eats 5 of them. How many pears are left?"
GENERATED = "Jack has 4 pears. He eats 5 of them. So he has 0 left."
EDITED = "Jack has only 4 pears. He cannot eat 5 of them. So he has 0 left."
CUT = "Jack has only 4 pears. He cannot eat 5 of them."


def test_generate_edit_regenerate_cut_continue_and_compare(scripted_app, page):
    scripted_app.backend.script = [
        ["Jack has 4 pears.", " He eats 5 of them.", " So he has 0 left.", "\n### Response:\n", "0 pears."],
        ["Impossible:", " he cannot eat 5 of 4 pears."],
        [" That is", " a contradiction.", "\n### Response:\n", "The question", " is contradictory."],
    ]
    open_app(page, scripted_app.url)
    page.locator("#question textarea").fill(QUESTION)
    run(page, "generate")
    assert reasoning(page).input_value() == GENERATED
    page.locator("#intervention-cut").click()  # nothing selected yet
    expect(toast(page, "Nothing is selected")).to_be_visible(timeout=TIMEOUT_MS)
    assert reasoning(page).input_value() == GENERATED

    reasoning(page).fill(EDITED)
    run(page, "regenerate")
    expect(page.locator("#response-box")).to_have_text("Impossible: he cannot eat 5 of 4 pears.")
    select_text(page, "cannot")
    page.wait_for_timeout(300)  # the select event reaches the server
    page.locator("#intervention-cut").click()
    expect(reasoning(page)).to_have_value(CUT, timeout=TIMEOUT_MS)

    run(page, "continue")
    assert reasoning(page).input_value() == CUT + " That is a contradiction."
    expect(page.locator("#response-box")).to_have_text("The question is contradictory.")
    assert scripted_app.backend.prompts[-1].endswith(f"### Reasoning:\n{CUT}")

    shown = table(page)  # newest first, numbered from the oldest
    assert [r[3] for r in shown] == ["3", "2", "1"]
    assert [r[5] for r in shown] == ["continue", "regenerate ✎", "reasoning"]
    assert shown[0][6] == CUT + " That is a contradiction." and shown[2][7] == "0 pears."

    tab(page, "Compare")
    # Right after a run, Compare shows the two newest attempts: the cut-and-continued reasoning.
    continued = diff_texts(EDITED, CUT + " That is a contradiction.")
    wait_painted(page, "diff-reasoning", ADDED, words(continued, "+"))
    assert "contradiction" in painted(page, "diff-reasoning", ADDED)
    # The user's own edit: attempt #1 (generated) against #2 (edited, regenerated).
    pick(page, "a", "#1 ·")
    pick(page, "b", "#2 ·")
    segments = diff_texts(GENERATED, EDITED)
    added, removed = count_changes(segments)
    wait_painted(page, "diff-reasoning", ADDED, words(segments, "+"))
    assert painted(page, "diff-reasoning", REMOVED) == words(segments, "-")
    assert "only" in painted(page, "diff-reasoning", ADDED)
    expect(page.locator("#compare-summary")).to_contain_text(f"reasoning: +{added} \u2212{removed} words")
    answers = diff_texts("0 pears.", "Impossible: he cannot eat 5 of 4 pears.")
    assert painted(page, "diff-response", ADDED) == words(answers, "+")
    assert painted(page, "diff-response", REMOVED) == words(answers, "-")
    # Green for added, red and struck through for removed, whitespace as in the text.
    assert paint(page, "diff-reasoning", ADDED) == {"background": "rgb(187, 247, 208)", "line": "none"}
    assert paint(page, "diff-reasoning", REMOVED) == {"background": "rgb(254, 202, 202)", "line": "line-through"}
    assert page.locator("#diff-response").inner_text().endswith(
        "".join(text for text, tag in answers if tag != "-"))
    expect(page.locator("#diff-legend ins")).to_have_text("added in B")
    expect(page.locator("#diff-legend del")).to_have_text("removed from A")
    expect(page.locator("#diff-reasoning")).to_contain_text("Reasoning: A → B")
    if SCREENSHOTS:
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.mouse.move(0, 0)
        page.locator("#workbench").screenshot(path=str(IMAGES / "compare.png"))

    # One click on ↩ brings attempt #1 back into the editor, with its settings and response.
    tab(page, "Attempts")
    cell(page, 2, 0).click()
    expect(reasoning(page)).to_have_value(GENERATED, timeout=TIMEOUT_MS)
    expect(page.locator("#response-box")).to_have_text("0 pears.")
    expect(page.locator("#stats")).to_contain_text("attempt #1 restored")
    assert len(scripted_app.backend.prompts) == 3, "restoring runs nothing"


def test_interventions_edit_the_reasoning_in_the_questions_language(scripted_app, page):
    open_app(page, scripted_app.url)
    page.locator("#question textarea").fill("ジャックは梨を4個持っています。5個食べたら何個？")
    reasoning(page).fill("梨の数を数えます。")
    page.locator("#intervention-premises").click()
    expect(reasoning(page)).to_have_value(
        "まず、質問の前提に矛盾や論理的にありえない点がないかを確認します。矛盾があれば、答えを計算せずに、"
        "そのことを回答で指摘します。\n梨の数を数えます。", timeout=TIMEOUT_MS)
    page.locator("#intervention-answer_en").click()
    expect(reasoning(page)).to_have_value(re.compile("梨の数を数えます。\n回答は英語で書きます。$"),
                                          timeout=TIMEOUT_MS)
    # The prompt preview follows, so the user sees what special mode (and Regenerate) will send.
    page.locator("#mode input[value=special]").check()
    page.locator("#prompt-accordion > button.label-wrap").click()
    expect(page.locator("#prompt textarea")).to_have_value(re.compile("回答は英語で書きます。\n\n### Response:\n$"))
    assert scripted_app.backend.prompts == []


# -- marks, notes, export, clear, import ---------------------------------------------------------

def test_star_reject_note_export_clear_and_import(scripted_app, page, tmp_path):
    scripted_app.backend.script = [["Count 3 apples.", "\n### Response:\n", "3 fruits."],
                                   ["Books are not fruit.", "\n### Response:\n", "7 fruits."]]
    open_app(page, scripted_app.url)
    page.locator("#question textarea").fill("アンリはリンゴを3個、ジルは本を5冊。果物は何個？")
    run(page, "generate")
    run(page, "generate")
    shown_reasoning, shown_response = reasoning(page).input_value(), page.locator("#response-box").inner_text()
    assert (shown_reasoning, shown_response) == ("Books are not fruit.", "7 fruits.")

    cell(page, 1, 2).click()  # ✗ the first attempt
    expect(cell(page, 1, 2)).to_have_text("✗", timeout=TIMEOUT_MS)
    cell(page, 0, 1).click()  # ★ the second
    expect(cell(page, 0, 1)).to_have_text("★", timeout=TIMEOUT_MS)
    cell(page, 0, 6).click()  # select it, then write a note
    expect(page.locator("#note")).to_contain_text("Note on attempt #2", timeout=TIMEOUT_MS)
    page.locator("#note textarea, #note input").first.fill("本は果物ではない")
    page.locator("#save-note").click()
    expect(cell(page, 0, 8)).to_have_text("本は果物ではない", timeout=TIMEOUT_MS)
    shown = table(page)

    tab(page, "Export / import")
    page.locator("#export").click()
    expect(page.locator("#workbench-message")).to_contain_text("Exported 1 attempt(s)", timeout=TIMEOUT_MS)
    alpaca = download(page, "alpaca", tmp_path)
    assert alpaca == [{"instruction": "アンリはリンゴを3個、ジルは本を5冊。果物は何個？", "input": "",
                       "reasoning": shown_reasoning, "output": shown_response}]
    assert (shown[0][6], shown[0][7]) == (shown_reasoning, shown_response)
    dpo = download(page, "dpo", tmp_path)
    assert len(dpo) == 1 and dpo[0]["chosen"].endswith(shown_response) and dpo[0]["rejected"].endswith("3 fruits.")
    messages = download(page, "messages", tmp_path)
    assert messages[0]["messages"][1]["content"] == f"<think>\n{shown_reasoning}\n</think>\n\n{shown_response}"

    # Clearing asks first; Cancel keeps everything.
    page.locator("#clear-history").click()
    expect(page.locator("#workbench-message")).to_contain_text("deletes all 2 attempts")
    page.locator("#cancel-clear").click()
    expect(page.locator("#really-clear")).to_be_hidden()
    tab(page, "Attempts")
    expect(page.locator("#attempts .virtual-row")).to_have_count(2)
    tab(page, "Export / import")
    page.locator("#clear-history").click()
    page.locator("#really-clear").click()
    expect(page.locator("#workbench-message")).to_contain_text("History cleared", timeout=TIMEOUT_MS)
    tab(page, "Attempts")
    expect(page.locator("#attempts .virtual-row")).to_have_count(0)
    tab(page, "Export / import")

    # A malformed file is refused with the line that is wrong; a real export comes back, starred.
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "Q", "input": "", "reasoning": "r", "output": "a"}\n{oops\n', encoding="utf-8")
    with page.expect_file_chooser() as chooser:
        page.locator("#import").click()
    chooser.value.set_files(bad)
    expect(toast(page, "line 2: not valid JSON")).to_be_visible(timeout=TIMEOUT_MS)
    exported = sorted(tmp_path.glob("bonsai-alpaca-*.jsonl"))[0]
    with page.expect_file_chooser() as chooser:
        page.locator("#import").click()
    chooser.value.set_files(exported)
    expect(page.locator("#workbench-message")).to_contain_text("Imported 1 attempt(s)", timeout=TIMEOUT_MS)
    tab(page, "Attempts")
    expect(page.locator("#attempts .virtual-row")).to_have_count(1)  # the bad file added nothing
    assert cell(page, 0, 1).inner_text() == "★" and cell(page, 0, 6).inner_text() == shown_reasoning


# -- nothing lost, nothing shared ----------------------------------------------------------------

def test_history_survives_reload_and_restart_and_stays_in_its_browser(browser):
    port = free_port()
    backend = ScriptedBackend(script=[["Kept in this browser.", "\n### Response:\n", "Safe."]])
    app = LaunchedApp(Engine(backend), port=port)  # a restart comes back at the same address
    first = browser.new_context(viewport=VIEWPORT)
    page = first.new_page()
    try:
        open_app(page, app.url)
        page.locator("#question textarea").fill("Will my attempt survive?")
        run(page, "generate")

        page.reload()  # the question box is empty after a reload: the list shows every attempt
        open_app(page, app.url)
        expect(page.locator("#attempts .virtual-row")).to_have_count(1, timeout=TIMEOUT_MS)
        assert cell(page, 0, 6).inner_text() == "Kept in this browser."

        app.close()  # a server restart, at the same address
        app = LaunchedApp(Engine(ScriptedBackend()), port=port)
        open_app(page, app.url)
        expect(page.locator("#attempts .virtual-row")).to_have_count(1, timeout=TIMEOUT_MS)
        cell(page, 0, 0).click()
        expect(page.locator("#question textarea")).to_have_value("Will my attempt survive?",
                                                                timeout=TIMEOUT_MS)
        stored = page.evaluate("localStorage.getItem('bonsai-history')")
        assert stored and "Kept" not in stored, "the stored history is encrypted"

        other = browser.new_context(viewport=VIEWPORT).new_page()  # another person's browser
        open_app(other, app.url)
        page.wait_for_timeout(500)
        assert rows(other) == 0
        assert other.evaluate("localStorage.getItem('bonsai-history')") != stored
        other.context.close()
    finally:
        first.close()
        app.close()


# -- the real model, and the Japanese page -------------------------------------------------------

def test_continue_on_the_real_model(real_app, page):
    open_app(page, real_app.url)
    page.locator("#settings-accordion > button.label-wrap").click()
    box = page.locator("#max_new_tokens input[type=number]")
    box.fill("32")
    box.press("Enter")
    page.locator("#question textarea").fill("I have 3 cats. How many legs do they have?")
    reasoning(page).fill("Each cat has 4 legs.")
    page.locator("#mode input[value=special]").check()
    before = rows(page)
    run(page, "continue", timeout=REAL_MODEL_TIMEOUT_MS)
    continued = reasoning(page).input_value()
    assert continued.startswith("Each cat has 4 legs.")
    assert page.locator("#response-box").inner_text().strip()
    assert rows(page) == before + 1 and cell(page, 0, 5).inner_text() == "continue"


def test_the_page_speaks_japanese_to_a_japanese_browser(scripted_app, browser):
    context = browser.new_context(viewport=VIEWPORT, locale="ja-JP")
    page = context.new_page()
    try:
        open_app(page, scripted_app.url)
        expect(page.locator("#generate")).to_have_text("生成 ▶")
        expect(page.locator("#continue")).to_have_text("推論を続ける ⇢")
        expect(page.locator("#intervention-premises")).to_have_text("まず前提の矛盾を確認")
        tab(page, "比較")
        expect(page.locator("#diff-legend ins")).to_have_text("Bで追加")  # the legend's samples
        expect(page.locator("#diff-legend del")).to_have_text("Aから削除")
        expect(page.locator("#diff-reasoning")).to_contain_text("推論: A → B")
    finally:
        context.close()


HOSTILE = ('<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> '
           '<b>bold?</b> ${value} {{value}} &amp; 5 < 6\n  indented')


def test_compare_shows_markup_in_an_attempt_as_text(browser):
    """An attempt holds what anyone typed or imported: the Compare diff shows its markup as the
    text it is, and runs none of it."""
    from bonsai_ui.workbench.attempts import Attempt, History

    history = History()
    for reasoning_, response in (("Jack has 4 pears.", ""),
                                 ("Jack has 4 pears. " + HOSTILE, "<b>0</b> pears & <i>none</i>")):
        history.add(Attempt(QUESTION, mode="special", reasoning_sent=reasoning_, response=response,
                            model="scripted", backend="scripted"))
    with on_stored(browser, history) as (page, _):
        expect(page.locator("#attempts .virtual-row")).to_have_count(2, timeout=TIMEOUT_MS)
        tab(page, "Compare")
        added = page.locator("#diff-reasoning ins")
        expect(added).to_have_text(" " + HOSTILE, timeout=TIMEOUT_MS)  # textContent: exact, spaces kept
        expect(page.locator("#diff-response ins")).to_have_text("<b>0</b> pears & <i>none</i>")
        page.wait_for_timeout(500)  # an image's error event would have fired by now
        assert page.evaluate("window.__pwned") is None
        assert page.locator(".diff script, .diff img, .diff b, .diff i").count() == 0
        assert "<script>window.__pwned = 1</script>" in page.locator("#diff-reasoning").inner_text()


SETTINGS = {"max_new_tokens": 77, "temperature": 0.7, "top_p": 0.9, "top_k": 12, "repetition_penalty": 1.3,
            "seed": 1234}


def test_restore_brings_back_the_attempts_settings_and_regenerate_uses_them(browser):
    """↩ writes the editor through the table click's relay: every field, the mode, the format and
    each setting show in the page as the attempt had them, and Regenerate sends that format."""
    from bonsai_ui.workbench.attempts import Attempt, History

    history = History()
    history.add(Attempt(QUESTION, mode="reasoning", prompt_format="think", reasoning_generated=GENERATED,
                        reasoning_sent=GENERATED, response="0 pears.", settings=dict(SETTINGS),
                        model="scripted", backend="scripted"))
    with on_stored(browser, history) as (page, app):
        cell(page, 0, 0).click()
        expect(page.locator("#stats")).to_contain_text("attempt #1 restored", timeout=TIMEOUT_MS)
        expect(page.locator("#question textarea")).to_have_value(QUESTION)
        expect(reasoning(page)).to_have_value(GENERATED)
        expect(page.locator("#response-box")).to_have_text("0 pears.")
        expect(page.locator("#mode input[value=reasoning]")).to_be_checked()
        expect(page.locator("#format input")).to_have_value(re.compile("^Chat \\+ <think>"))
        page.locator("#settings-accordion > button.label-wrap").click()
        for name, value in SETTINGS.items():
            expect(page.locator(f"#{name} input[type=number]")).to_have_value(str(value), timeout=TIMEOUT_MS)

        app.backend.script = [["Regenerated."]]
        page.locator("#regenerate").click()
        expect(page.locator("#response-box")).to_have_text("Regenerated.", timeout=TIMEOUT_MS)
        assert "<think>" in app.backend.prompts[-1] and GENERATED in app.backend.prompts[-1]
        assert toast(page, "rror").count() == 0


def test_a_compare_pick_by_keyboard_and_the_same_pick_after_a_run(browser):
    """A pick reaches the server through pick_wire's change: a pick made with the keyboard counts
    (the list's select event fires only for the mouse), and picking again what was picked before a
    run reset the lists shows that pair again (the wire is emptied whenever the lists change)."""
    from bonsai_ui.workbench import actions as wb
    from bonsai_ui.workbench.attempts import Attempt, History

    history = History()
    for n in range(1, 5):
        history.add(Attempt(QUESTION, mode="special", reasoning_sent=f"Step {n}: {'pears ' * n}",
                            response=f"{n} pears.", model="scripted", backend="scripted"))
    ids = [a.id for a in history.attempts]
    with on_stored(browser, history) as (page, app):
        expect(page.locator("#attempts .virtual-row")).to_have_count(4, timeout=TIMEOUT_MS)
        tab(page, "Compare")
        summary = page.locator("#compare-summary")
        expect(summary).to_have_text(wb.compare(history, ids[2], ids[3])[0], timeout=TIMEOUT_MS)

        page.locator("#compare-a input").click()
        page.keyboard.press("Control+A")  # the filter replaces the label shown
        page.keyboard.type("#1 ·")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        expect(summary).to_have_text(wb.compare(history, ids[0], ids[3])[0], timeout=TIMEOUT_MS)
        expect(page.locator("#diff-response ins")).to_have_text("4")

        app.backend.script = [["Step 5.", "\n### Response:\n", "5 pears."]]
        page.locator("#question textarea").fill(QUESTION)
        page.locator("#mode input[value=reasoning]").check()
        page.locator("#generate").click()
        expect(page.locator("#compare-a input")).to_have_value(re.compile("^#4 ·"), timeout=TIMEOUT_MS)
        expect(page.locator("#diff-response ins")).to_have_text("5", timeout=TIMEOUT_MS)

        pick(page, "a", "#1 ·")  # as before the run: the same text on the wire, a new pair
        expect(page.locator("#compare-summary")).to_contain_text("response: +1 \u22121 words",
                                                                 timeout=TIMEOUT_MS)
        expect(page.locator("#diff-response del")).to_have_text("1")
        expect(page.locator("#diff-response ins")).to_have_text("5")
        assert toast(page, "rror").count() == 0


# -- a full history ------------------------------------------------------------------------------

def test_a_full_history_of_long_attempts_is_marked_restored_and_compared(browser, monkeypatch):
    """200 attempts of ~3,000-token reasoning and response (bench/long_history.py): the flows
    stay right, a Compare diff is computed only when its pair is shown, and marks outlive a reload
    on their own small store. Speed is measured by bench/workbench_latency.py."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from long_history import make_history
    from bonsai_ui.workbench import actions as wb

    diffed = []
    real_diff = wb.diff_attempts
    monkeypatch.setattr(wb, "diff_attempts", lambda a, b: diffed.append((a.reasoning, b.reasoning)) or
                        real_diff(a, b))
    history = make_history(200, "ja", tokens=3000, seed=1)
    newest = history.attempts[::-1]
    with on_stored(browser, history) as (page, app):
        expect(cell(page, 0, 3)).to_have_text("200", timeout=TIMEOUT_MS)
        assert cell(page, 0, 6).inner_text() == wb._preview(newest[0].reasoning)  # trimmed, not 4,000 characters

        cell(page, 2, 1).click()
        expect(cell(page, 2, 1)).to_have_text("★", timeout=TIMEOUT_MS)
        cell(page, 3, 2).click()
        expect(cell(page, 3, 2)).to_have_text("✗", timeout=TIMEOUT_MS)
        cell(page, 1, 6).click()
        expect(page.locator("#note")).to_contain_text("Note on attempt #199", timeout=TIMEOUT_MS)
        page.locator("#note textarea, #note input").first.fill("長い推論のメモ")
        page.locator("#save-note").click()
        expect(cell(page, 1, 8)).to_have_text("長い推論のメモ", timeout=TIMEOUT_MS)
        cell(page, 4, 0).click()
        expect(page.locator("#stats")).to_contain_text("attempt #196 restored", timeout=TIMEOUT_MS)
        expect(reasoning(page)).to_have_value(newest[4].reasoning)
        assert diffed == [], "nothing on screen needed a diff"

        tab(page, "Compare")  # the two newest, diffed now that they show
        # the server's diff first (a summary shows once it is cached): the test's own compare()
        # below then reads the cache, where before it could race the server's and diff too
        expect(page.locator("#compare-summary")).to_contain_text("A → B", timeout=TIMEOUT_MS)
        expected = wb.compare(history, newest[1].id, newest[0].id)[0]
        expect(page.locator("#compare-summary")).to_have_text(expected, timeout=TIMEOUT_MS)
        assert diffed == [(newest[1].reasoning, newest[0].reasoning)]
        tab(page, "Attempts")
        cell(page, 2, 1).click()
        expect(cell(page, 2, 1)).to_have_text("☆", timeout=TIMEOUT_MS)
        tab(page, "Compare")
        page.wait_for_timeout(500)
        assert len(diffed) == 1, "a star does not diff again, nor does coming back to the same pair"
        pick(page, "a", "#190 ·")
        expected = wb.compare(history, history.attempts[189].id, newest[0].id)[0]
        expect(page.locator("#compare-summary")).to_have_text(expected, timeout=TIMEOUT_MS)
        page.wait_for_timeout(500)
        # (opening the list may pick the option under the pointer first: a pair of its own)
        assert diffed[-1] == (history.attempts[189].reasoning, newest[0].reasoning)
        assert toast(page, "rror").count() == 0

        marks = page.evaluate(f"localStorage.getItem('{wb.MARKS_KEY}')")
        assert marks and len(marks) < 50_000, "a mark writes the marks alone, not megabytes of text"
        page.reload()
        open_app(page, app.url)
        page.locator("#all-questions input").check()
        expect(cell(page, 1, 8)).to_have_text("長い推論のメモ", timeout=TIMEOUT_MS)
        assert [cell(page, r, c).inner_text() for r, c in ((2, 1), (3, 2))] == ["☆", "✗"]
