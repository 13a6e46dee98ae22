"""The Debate tab in headless Chromium, on the embedded model: a round with an edited rebuttal and
five questions held to their format, "Run 2 rounds" with Stop in the middle, the XLSX export
against the page and imported back, the free-text setting, and a debate that survives a reload
and a server restart but stays in its own browser. Stale marks use the scripted
stand-in (exact text).

The README's screenshot of a debate round is written only with ``BONSAI_SCREENSHOTS=1``:

    BONSAI_SCREENSHOTS=1 python -m pytest -q tests/test_debate_browser.py -k round_on
"""

from __future__ import annotations

import re

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, expect  # noqa: E402

from bonsai_ui.debate.transcript import COLUMNS  # noqa: E402
from conftest import IMAGES, SCREENSHOTS, VIEWPORT  # noqa: E402

TIMEOUT_MS = 10_000
REAL_MODEL_TIMEOUT_MS = 300_000  # SmolLM2-135M on 2 CPU cores shared with a benchmark at normal priority, two phases of a step
EDITED = ("The answer forgets the customers who cannot use a chatbot: the old, the angry, the deaf. "
          "Who answers them when the AI fails?")
OWN = "Who answers the customers a chatbot cannot help?"
OWN_EDITED = "Chatbots fail the old and the deaf. Who answers the customers a chatbot cannot help?"


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    yield context.new_page()
    context.close()


# -- helpers -------------------------------------------------------------------------------------

def open_debate(page: Page, url: str, max_new_tokens: int | None = None) -> None:
    page.goto(url)
    expect(page.locator("#model-status")).to_contain_text("🟢", timeout=30_000)
    if max_new_tokens is not None:
        from test_browser import set_max_new_tokens

        set_max_new_tokens(page, max_new_tokens)
    page.get_by_role("tab", name="Debate ⚖").click()
    expect(page.locator("#debate-question textarea")).to_be_visible()


def progress(page: Page):
    return page.locator("#debate-progress")


RECORD = """() => { if (window.__progress) return;
    const el = document.querySelector('#debate-progress');
    window.__progress = [el.innerText];
    new MutationObserver(() => window.__progress.push(el.innerText))
        .observe(el, {subtree: true, childList: true, characterData: true}); }"""


def step(page: Page, button: str, done: str | list[str], timeout: float = REAL_MODEL_TIMEOUT_MS) -> None:
    """Click a step's button; wait until the progress line has said it runs (⏳), then ``done``
    (or one of several endings).

    Every value the line takes is recorded: a scripted step may pass ⏳ between two polls."""
    page.evaluate(RECORD)
    seen = page.evaluate("window.__progress.length")
    page.locator(f"#{button}").click()
    page.wait_for_function(
        """([seen, done]) => { const seq = window.__progress.slice(seen);
             const i = seq.findIndex(t => t.includes('⏳'));
             return i >= 0 && seq.slice(i).some(t => [].concat(done).some(d => t.includes(d))); }""",
        arg=[seen, done], timeout=timeout)


def box(page: Page, elem_id: str):
    return page.locator(f"#{elem_id} textarea")


def markdown(page: Page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} [data-testid=markdown]").inner_text().strip()


def transcript(page: Page) -> list[list[str]]:
    rows = page.locator("#debate-transcript .virtual-row").count()
    return [[normal(page.locator(f"#debate-transcript [data-testid=cell-{r}-{c}]").inner_text())
             for c in range(len(COLUMNS))] for r in range(rows)]


def normal(value) -> str:
    """A cell as text, whitespace collapsed (the page wraps lines, a spreadsheet keeps them)."""
    return re.sub(r"\s+", " ", "" if value is None else str(value)).strip()


# -- a round on the embedded model ----------------------------------------------------------------

def test_a_round_on_the_embedded_model(real_app, page, tmp_path):
    """Answer → rebuttal → edit its reasoning → regenerate → five questions, parsed (the format is
    held while decoding) → pick one → next round → the XLSX export holds what the page shows →
    clear → import it back: the page shows the same debate."""
    open_debate(page, real_app.url, max_new_tokens=64)
    step(page, "debate-start", "✅ done: round 1 · group A answers")
    assert markdown(page, "debate-answer") and box(page, "debate-answer-reasoning").input_value()
    step(page, "debate-rebut-btn", "✅ done: round 1 · group B rebuts")
    first = markdown(page, "debate-rebuttal")
    assert box(page, "debate-rebuttal-reasoning").input_value().strip() and first

    box(page, "debate-rebuttal-reasoning").fill(EDITED)
    step(page, "debate-regenerate-rebuttal", "✅ done: round 1 · group B rebuts")
    expect(page.locator("#debate-stats")).to_contain_text("tokens #")  # the output's fingerprint
    assert box(page, "debate-rebuttal-reasoning").input_value() == EDITED
    rebuttal = markdown(page, "debate-rebuttal")
    assert rebuttal

    # The questions step has a budget of its own that five lines always fit (the page's max new
    # tokens, 64, does not apply to it), and the engine writes exactly the format.
    expect(page.locator("#debate-enforce input")).to_be_checked()
    step(page, "debate-fbq-btn", "✅ done: round 1 · fact-based questions")
    expect(page.locator("#debate-stats")).to_contain_text("format enforced")
    options = page.locator("#debate-pick label")
    expect(options).to_have_count(5)
    words = [options.nth(k).inner_text().split("?")[-2].split(". ")[-1].split()[0] for k in range(5)]
    assert words == ["Why", "What", "How", "Which", "When"]
    page.locator("#debate-raw-accordion").click()  # closed: every question was read
    raw = box(page, "debate-raw").input_value()
    assert raw.count("PARAGRAPH: ") == 5
    depth_row = page.locator("#debate-depth tbody tr")  # round, answer → rebuttal, questions, overlap
    expect(depth_row.locator("td")).to_have_text(["1", "A → B", "5", re.compile(r"\d+%")])

    options.nth(2).click()  # pick the third: the automatic pick is replaced by the user's
    expect(options.nth(2).locator("input")).to_be_checked(timeout=TIMEOUT_MS)
    picked = options.nth(2).inner_text().strip()
    if SCREENSHOTS:
        page.locator("#tab-debate").screenshot(path=str(IMAGES / "debate.png"))
    page.locator("#debate-next").click()
    expect(page.locator("#debate-question textarea")).to_have_value(picked, timeout=TIMEOUT_MS)
    expect(page.locator("#debate-answer-head")).to_contain_text("Group B answers")
    expect(page.locator("#debate-rebuttal-head")).to_contain_text("Group A rebuts")

    shown = transcript(page)
    assert len(shown) == 2 and shown[0][5] == normal(rebuttal)
    row = dict(zip(COLUMNS, shown[0]))
    assert row["FBAReasoningSent"] == normal(EDITED) and row["FBAReasoningGenerated"] != row["FBAReasoningSent"]
    assert row["Picked"] == "3" and row["QRaw"] == normal(raw)

    page.locator("#debate-export").click()
    expect(page.locator("#debate-message")).to_contain_text("Exported 2 round(s)", timeout=TIMEOUT_MS)
    with page.expect_download() as info:
        page.locator('#debate-files a[download$=".xlsx"]').click()
    path = tmp_path / "debate.xlsx"
    info.value.save_as(path)
    import openpyxl

    sheet = openpyxl.load_workbook(path).active
    values = [[normal(c) for c in row] for row in sheet.iter_rows(values_only=True)]
    assert values[0] == COLUMNS and values[1:] == shown
    assert not any(c.data_type == "f" for r in sheet.iter_rows() for c in r)  # no cell is a formula

    page.locator("#debate-clear").click()
    page.locator("#debate-really-clear").click()
    expect(page.locator("#debate-message")).to_contain_text("Debate cleared", timeout=TIMEOUT_MS)
    assert transcript(page) == []
    with page.expect_file_chooser() as chooser:
        page.locator("#debate-import").click()
    chooser.value.set_files(path)
    expect(page.locator("#debate-message")).to_contain_text("Imported 2 round(s)", timeout=TIMEOUT_MS)
    assert transcript(page) == shown
    expect(page.locator("#debate-question textarea")).to_have_value(picked)


def test_turned_off_the_questions_are_the_models_free_text(real_app, page):
    """The seed's way: without the format the model writes what it will (the tolerant parser reads
    what it can), within the page's max new tokens; the setting is the debate's and survives a reload."""
    open_debate(page, real_app.url, max_new_tokens=48)
    page.locator("#debate-enforce input").uncheck()
    step(page, "debate-start", "✅ done: round 1 · group A answers")
    step(page, "debate-fbq-btn", ["✅ done: round 1 · fact-based questions",
                                  "wrote no fact-based question"])
    stats = page.locator("#debate-stats")
    expect(stats).to_contain_text("48 new tokens")
    expect(stats).not_to_contain_text("format")
    page.reload()
    page.get_by_role("tab", name="Debate ⚖").click()
    expect(page.locator("#debate-enforce input")).not_to_be_checked(timeout=30_000)


def test_run_two_rounds_then_stop_in_the_middle(real_app, page):
    open_debate(page, real_app.url, max_new_tokens=48)
    page.locator("#debate-start").click()
    expect(progress(page)).to_contain_text("✅ done: round 1 · group A answers", timeout=REAL_MODEL_TIMEOUT_MS)
    page.locator("#debate-n input").fill("2")
    page.locator("#debate-run").click()
    expect(progress(page)).to_contain_text("step 2 of 6", timeout=REAL_MODEL_TIMEOUT_MS)  # the rebuttal
    expect(box(page, "debate-rebuttal-reasoning")).not_to_have_value("", timeout=REAL_MODEL_TIMEOUT_MS)
    page.locator("#debate-stop").click()
    expect(progress(page)).to_contain_text("⏹ stopped in round 1 (rebuttal)", timeout=TIMEOUT_MS)
    kept = box(page, "debate-rebuttal-reasoning").input_value()
    assert kept.strip()  # the partial rebuttal stays
    expect(page.locator("#debate-stats")).to_contain_text("⏹ stopped")
    page.wait_for_timeout(1500)
    assert box(page, "debate-rebuttal-reasoning").input_value() == kept  # nothing ran on

    # The model is free again: the rounds run on after the stopped rebuttal, which is kept as it
    # stands (a stopped step counts as written); the questions, held to their format, are picked
    # automatically and the second round runs.
    page.locator("#debate-run").click()
    expect(progress(page)).to_contain_text("2 round(s) done", timeout=4 * REAL_MODEL_TIMEOUT_MS)
    rows = [dict(zip(COLUMNS, r)) for r in transcript(page)]
    assert len(rows) == 2 and rows[0]["FBAReasoningSent"] == normal(kept)  # kept, not re-run
    assert rows[0]["Picked"] and rows[0]["Q5"]  # five questions, one picked automatically
    assert rows[1]["QInitial"] and rows[1]["Q1"]  # round 2 was asked the picked one and ran


# -- stale marks ---------------------------------------------------------------------------------

ANSWER = ["Jobs change.", "\n### Response:\n", "AI helps."]
REBUTTAL = ["It hides costs.", "\n### Response:\n", "Who pays?"]
QUESTIONS = ["PARAGRAPH: Costs hide. Who pays them?\nPARAGRAPH: Jobs go. Which go first?"]


def test_re_running_a_step_marks_the_later_ones_stale(scripted_app, page):
    scripted_app.backend.delay = 0.05
    scripted_app.backend.script = [ANSWER, REBUTTAL, QUESTIONS, ANSWER, ["Answer again.", "\n### Response:\n",
                                                                          "AI still helps."]]
    open_debate(page, scripted_app.url)
    step(page, "debate-start", "✅ done: round 1 · group A answers", TIMEOUT_MS)
    step(page, "debate-rebut-btn", "✅ done: round 1 · group B rebuts", TIMEOUT_MS)
    step(page, "debate-fbq-btn", "✅ done: round 1 · fact-based questions", TIMEOUT_MS)
    expect(page.locator("#debate-pick label")).to_have_count(2)
    page.locator("#debate-next").click()
    expect(page.locator("#debate-answer-head")).to_contain_text("Group B answers", timeout=TIMEOUT_MS)
    step(page, "debate-answer-btn", "✅ done: round 2 · group B answers", TIMEOUT_MS)

    page.locator("#debate-round input").click()  # back to round 1, re-run its answer
    page.get_by_role("option").filter(has_text="Round 1").click()
    expect(page.locator("#debate-answer-head")).to_contain_text("Group A answers", timeout=TIMEOUT_MS)
    step(page, "debate-answer-btn", "✅ done: round 1 · group A answers", TIMEOUT_MS)
    expect(page.locator("#debate-rebuttal-head")).to_contain_text("stale")
    assert markdown(page, "debate-rebuttal") == "Who pays?"  # kept, not deleted
    rows = transcript(page)
    assert [dict(zip(COLUMNS, r))["Stale"] for r in rows] == ["rebuttal, questions", "answer"]
    assert dict(zip(COLUMNS, rows[1]))["AInitial"] == "AI helps."


def test_a_models_question_edited_by_hand_and_a_sixth_refused(scripted_app, page):
    scripted_app.backend.script = [ANSWER, REBUTTAL, QUESTIONS]
    open_debate(page, scripted_app.url)
    step(page, "debate-start", "✅ done: round 1 · group A answers", TIMEOUT_MS)
    step(page, "debate-rebut-btn", "✅ done: round 1 · group B rebuts", TIMEOUT_MS)
    step(page, "debate-fbq-btn", "✅ done: round 1 · fact-based questions", TIMEOUT_MS)
    options = page.locator("#debate-pick label")
    expect(options).to_have_text(["Costs hide. Who pays them?", "Jobs go. Which go first?"])
    expect(options.last.locator("input")).not_to_be_checked()
    options.last.click()  # the box shows the picked question, to edit
    own = page.locator("#debate-own-question textarea")
    expect(own).to_have_value("Jobs go. Which go first?", timeout=TIMEOUT_MS)
    options.first.click()
    expect(own).to_have_value("Costs hide. Who pays them?", timeout=TIMEOUT_MS)
    own.fill("Costs hide in the call centre. Who pays them?")
    page.locator("#debate-replace-question").click()
    expect(options).to_have_text(["Costs hide in the call centre. Who pays them?", "Jobs go. Which go first?"],
                                 timeout=TIMEOUT_MS)
    expect(options.first.locator("input")).to_be_checked()
    for n in range(3):
        own.fill(f"Question {n}?")
        page.locator("#debate-add-question").click()
        expect(options).to_have_count(3 + n, timeout=TIMEOUT_MS)
    own.fill("A sixth?")
    page.locator("#debate-add-question").click()
    expect(page.get_by_text("A round holds at most 5 questions")).to_be_visible(timeout=TIMEOUT_MS)
    expect(options).to_have_count(5)
    expect(own).to_have_value("A sixth?")  # the user's text stays


# -- nothing lost, nothing shared ----------------------------------------------------------------

def test_the_debate_survives_a_reload_and_a_restart_and_stays_in_its_browser(browser):
    from bonsai_ui.engine import Engine
    from conftest import LaunchedApp, ScriptedBackend, free_port

    port = free_port()  # local storage is kept per address: the restart comes back at this one
    backend = ScriptedBackend(script=[["Kept here.", "\n### Response:\n", "In this browser."]])
    app = LaunchedApp(Engine(backend), port=port)
    context = browser.new_context(viewport=VIEWPORT)
    other = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        open_debate(page, app.url)
        page.locator("#debate-start").click()
        expect(progress(page)).to_contain_text("✅ done: round 1", timeout=TIMEOUT_MS)
        page.reload()
        page.get_by_role("tab", name="Debate ⚖").click()
        expect(page.locator("#debate-answer [data-testid=markdown]")).to_have_text("In this browser.",
                                                                                  timeout=TIMEOUT_MS)
        assert len(transcript(page)) == 1

        app.close()  # a server restart
        app = LaunchedApp(Engine(ScriptedBackend()), port=port)
        open_debate(page, app.url)
        expect(page.locator("#debate-answer [data-testid=markdown]")).to_have_text("In this browser.",
                                                                                  timeout=TIMEOUT_MS)
        assert len(transcript(page)) == 1

        stranger = other.new_page()
        open_debate(stranger, app.url)
        expect(stranger.locator("#debate-transcript")).to_be_visible()
        stranger.wait_for_timeout(1000)  # the stored debate would have loaded by now
        assert transcript(stranger) == [] and not markdown(stranger, "debate-answer")
    finally:
        context.close()
        other.close()
        app.close()


def test_a_bad_import_names_the_line_and_a_good_one_restores(scripted_app, page, tmp_path):
    from bonsai_ui.debate.rounds import Debate, Round, Step
    from bonsai_ui.debate.transcript import to_csv

    open_debate(page, scripted_app.url)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"category": "answer"}\n', encoding="utf-8")
    with page.expect_file_chooser() as chooser:
        page.locator("#debate-import").click()
    chooser.value.set_files(bad)
    expect(page.locator("#debate-message")).to_contain_text("line 1: not a debate record", timeout=TIMEOUT_MS)

    good = tmp_path / "good.csv"
    d = Debate(goals={"A": "ア", "B": "B"}, language="ja",
               rounds=[Round("質問？", "A", Step(text="回答。"), Step(text="反論。"))])
    good.write_text(to_csv(d), encoding="utf-8")
    with page.expect_file_chooser() as chooser:
        page.locator("#debate-import").click()
    chooser.value.set_files(good)
    expect(page.locator("#debate-message")).to_contain_text("Imported 1 round(s)", timeout=TIMEOUT_MS)
    expect(page.locator("#debate-question textarea")).to_have_value("質問？")
    expect(page.locator("#goal-a textarea")).to_have_value("ア")
    assert markdown(page, "debate-rebuttal") == "反論。"


def test_a_full_queue_shows_our_busy_message_under_the_debates_question(crowded_app, page):
    """The debate's steps join the model's queue through the editor's guard: with the queue full,
    Start records the round but its answer is refused, with our message under this tab's question;
    once the queue drains the same button runs."""
    app, backend, jobs = crowded_app
    backend.pieces = ["A cat has four legs."]
    open_debate(page, app.url)
    box(page, "debate-question").fill("A question that must survive.")
    page.locator("#debate-start").click()
    busy = "The app is busy: 1 runs are already waiting"
    expect(page.locator("#debate-question")).to_contain_text(busy, timeout=TIMEOUT_MS)
    assert box(page, "debate-question").input_value() == "A question that must survive."
    assert "currently busy" not in page.content()  # not Gradio's own toast
    # Start itself is not a model run: the round is there, to be answered
    expect(page.locator("#debate-round input")).to_have_value(re.compile("^Round 1:"))
    backend.gate.set()
    for job in jobs:
        job.result(timeout=60)
    step(page, "debate-answer-btn", "✅ done: round 1 · group A answers", timeout=TIMEOUT_MS * 3)
    assert markdown(page, "debate-answer") == "A cat has four legs."
