"""The Debate tab: two groups, rounds of answer → rebuttal → fact-based questions → pick, the
transcript and its files. What the buttons do lives in ``debate/steps.py`` (runs) and ``debate/rounds.py``
/ ``debate/transcript.py`` (data); here are the components and the handlers that redraw them.

The debate lives in the browser (gr.BrowserState), like the attempt history. Two public endpoints
are here too: ``/fact_questions`` and ``/rebut``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from ..debate import transcript as tr
from ..workbench import actions as wb
from ..debate.rounds import DEFAULT_GOALS, DEFAULT_QUESTION, MAX_ROUNDS, Debate, DebateError, Round, check_text
from ..debate.steps import DebateRunner
from ..core.prompts import load_format
from ..editor.runs import Runner, UserError
from ..core.settings import GENERATION_BOUNDS
from ..hosting import public as hosting
from ..hosting.uploads import UploadRefused, check_zip, read_upload
from .common import (PRIVATE, CheckedDropdown, CheckedNumber, checked_settings, confirming,
                     import_refused)
from .editor import Editor
from .texts import t

DEBATE_KEY = "bonsai-debate"  # the localStorage key, beside the history's
MAX_RUN_ROUNDS = 10  # "Run N rounds": a bound on one unattended click (a round is three or more model calls)


@dataclass
class DebateTab:
    editor: Editor  # its generation settings and prompt format are the debate's
    runs: DebateRunner
    max_upload: int  # bytes an imported file may hold, inflated (hosting/uploads.py)
    store: gr.BrowserState
    goal_a: gr.Textbox
    goal_b: gr.Textbox
    language: gr.Radio
    round_pick: gr.Dropdown  # which round the boxes below show (its index)
    progress: gr.Markdown
    question: gr.Textbox
    start_btn: gr.Button
    answer_head: gr.Markdown
    answer_reasoning: gr.Textbox
    answer_btn: gr.Button
    regenerate_answer_btn: gr.Button
    answer: gr.Markdown
    rebuttal_head: gr.Markdown
    rebuttal_reasoning: gr.Textbox
    rebut_btn: gr.Button
    regenerate_rebuttal_btn: gr.Button
    rebuttal: gr.Markdown
    fbq_btn: gr.Button
    pick: gr.Radio
    raw: gr.Textbox
    depth: gr.Markdown
    next_btn: gr.Button
    rounds_n: gr.Number
    run_btn: gr.Button
    stop_btn: gr.Button
    stats: gr.Markdown
    table: gr.Dataframe
    export_btn: gr.Button
    import_btn: gr.UploadButton
    files: gr.File
    clear_btn: gr.Button
    really_btn: gr.Button
    cancel_btn: gr.Button
    message: gr.Markdown
    raw_box: gr.Accordion  # opened when the model wrote no question that could be read
    own_question: gr.Textbox  # the picked question to edit, or a new one written by hand
    add_btn: gr.Button
    replace_btn: gr.Button
    enforce: gr.Checkbox  # the questions step under its grammar (Debate.enforce_format)
    # Gradio's cache (GRADIO_TEMP_DIR): exports written there are swept like uploads (hosting/public.py)
    cache_dir: str = field(default_factory=get_upload_folder)

    # -- drawing -------------------------------------------------------------------------------

    @property
    def view_out(self) -> list:
        return [self.round_pick, self.question, self.answer_head, self.answer_reasoning, self.answer,
                self.rebuttal_head, self.rebuttal_reasoning, self.rebuttal, self.pick, self.raw,
                self.raw_box, self.own_question, self.depth, self.table, self.stats]

    def view(self, debate: Debate, index: int | None = None) -> dict:
        """Every box for round ``index`` (the last by default), the round list and the transcript."""
        if not debate.rounds:
            return {self.round_pick: gr.Dropdown(choices=[], value=None), self.question: gr.skip(),
                    self.answer_head: "", self.answer_reasoning: "", self.answer: "",
                    self.rebuttal_head: "", self.rebuttal_reasoning: "", self.rebuttal: "",
                    self.pick: gr.Radio(choices=[], value=None), self.raw: "", self.raw_box: gr.skip(),
                    self.own_question: "", self.depth: "",
                    self.table: gr.Dataframe(value=[], headers=tr.COLUMNS), self.stats: ""}
        i = len(debate.rounds) - 1 if index is None else max(0, min(index, len(debate.rounds) - 1))
        rnd = debate.rounds[i]
        return {self.round_pick: gr.Dropdown(choices=round_choices(debate), value=i),
                self.question: rnd.question,
                self.answer_head: head(rnd, "answer"),
                self.answer_reasoning: rnd.answer.reasoning, self.answer: rnd.answer.text,
                self.rebuttal_head: head(rnd, "rebuttal"),
                self.rebuttal_reasoning: rnd.rebuttal.reasoning, self.rebuttal: rnd.rebuttal.text,
                self.pick: gr.Radio(choices=[(q.text, k) for k, q in enumerate(rnd.questions)],
                                    value=rnd.picked),
                self.raw: rnd.questions_step.text, self.depth: depth_markdown(debate),
                # No question could be read: the model's text stays in sight (closing it is the user's).
                self.raw_box: (gr.Accordion(open=True) if rnd.questions_step.text.strip()
                               and not rnd.questions else gr.skip()),
                # The picked question, to edit; with none picked, what the user typed stays.
                self.own_question: rnd.picked_question.text if rnd.picked_question else gr.skip(),
                self.table: gr.Dataframe(value=tr.rows(debate), headers=tr.COLUMNS),
                self.stats: rnd.questions_step.stats or rnd.rebuttal.stats or rnd.answer.stats}

    def stored(self, debate: Debate, index: int | None = None) -> dict:
        return {self.store: debate.to_data(), **self.view(debate, index)}

    # -- handlers ------------------------------------------------------------------------------

    def load(self, data):
        debate, warning = Debate.from_data(data)
        if warning:
            gr.Warning(warning)
        return {**self.view(debate), self.message: warning,
                self.goal_a: debate.goals["A"], self.goal_b: debate.goals["B"],
                self.language: debate.language, self.enforce: debate.enforce_format}

    @staticmethod
    def set_enforce(data, enforce):
        """The checkbox is the debate's: stored with it, exported with it."""
        debate, _ = Debate.from_data(data)
        debate.enforce_format = bool(enforce)
        return debate.to_data()

    def show_round(self, data, index):
        return self.view(Debate.from_data(data)[0], index)

    def set_language(self, language, goal_a, goal_b, question):
        """Swap in the language's defaults where the texts are still the other language's."""
        was = "ja" if language == "en" else "en"

        def swap(new: str, old: str, text: str) -> str:
            return new if text == old else text

        return (swap(DEFAULT_GOALS[language]["A"], DEFAULT_GOALS[was]["A"], goal_a),
                swap(DEFAULT_GOALS[language]["B"], DEFAULT_GOALS[was]["B"], goal_b),
                swap(DEFAULT_QUESTION[language], DEFAULT_QUESTION[was], question))

    def start(self, data, question, goal_a, goal_b, language, prompt_format, enforce=True):
        debate, _ = Debate.from_data(data)
        if debate.rounds:
            raise gr.Error(f"This browser holds a debate of {len(debate.rounds)} round(s): export it to "
                           "keep it, then clear it, before starting another. / 既存の討論があります。"
                           "書き出してから消去してください。")
        try:
            check_text("question", question)
            check_text("goal of group A", goal_a)
            check_text("goal of group B", goal_b)
        except DebateError as error:
            raise gr.Error(str(error)) from None
        debate = Debate(goals={"A": goal_a, "B": goal_b}, language=language, prompt_format=prompt_format,
                        rounds=[Round(question=question, answerer="A")], enforce_format=bool(enforce))
        return {**self.stored(debate), self.message: ""}

    def _debate(self, data, index, question, goal_a, goal_b) -> tuple[Debate, int]:
        """The stored debate with the page's edits applied: the goals, the round's question."""
        debate, _ = Debate.from_data(data)
        if not debate.rounds:
            raise gr.Error("Start a debate first. / 先に討論を始めてください。")
        i = int(index) if index is not None else len(debate.rounds) - 1
        if not 0 <= i < len(debate.rounds):
            raise gr.Error(f"There is no round {i + 1}. / ラウンド {i + 1} はありません。")
        debate.goals = {"A": goal_a or debate.goals["A"], "B": goal_b or debate.goals["B"]}
        if question is not None and question != debate.rounds[i].question:
            debate.rounds[i].question = question
        return debate, i

    def _shown(self, debate: Debate, progress_iter) -> object:
        """Stream a run's progress onto the boxes; store the debate when each step ends."""
        boxes = {"answer": (self.answer_reasoning, self.answer),
                 "rebuttal": (self.rebuttal_reasoning, self.rebuttal), "questions": (None, self.raw)}
        try:
            for p in progress_iter:
                if p.done or p.state is None:
                    yield {**self.stored(debate, p.round_index), self.progress: p.line}
                    continue
                reasoning_box, text_box = boxes[p.kind]
                update = {text_box: p.state.response, self.stats: p.state.stats, self.progress: p.line}
                if reasoning_box is not None:
                    update[reasoning_box] = p.state.reasoning
                yield update
        except (DebateError, UserError) as error:
            raise gr.Error(str(error)) from None

    def step_handler(self, kind: str, from_reasoning: bool):
        """The handler of one step's button; ``from_reasoning``: write it from the edited reasoning."""
        def run(data, index, question, goal_a, goal_b, reasoning, max_new_tokens, temperature, top_p,
                top_k, repetition_penalty, seed, request: gr.Request):
            settings = checked_settings(max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
            debate, i = self._debate(data, index, question, goal_a, goal_b)
            if from_reasoning and not (reasoning or "").strip():
                raise gr.Error("The reasoning is empty: generate it first, or write your own. / "
                               "推論が空です。")
            yield from self._shown(debate, self.runs.step(
                debate, i, kind, settings, request.session_hash or "",
                reasoning=reasoning if from_reasoning else None))
        return run

    def run_rounds(self, data, index, question, goal_a, goal_b, n, max_new_tokens, temperature, top_p,
                   top_k, repetition_penalty, seed, request: gr.Request):
        settings = checked_settings(max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        debate, i = self._debate(data, index, question, goal_a, goal_b)
        try:
            n = int(n)
        except (TypeError, ValueError):
            n = 0
        if not 1 <= n <= MAX_RUN_ROUNDS:
            raise gr.Error(f"Rounds must be between 1 and {MAX_RUN_ROUNDS}; got {n}. / "
                           f"ラウンド数は 1〜{MAX_RUN_ROUNDS} です。")
        if i + n > MAX_ROUNDS:
            raise gr.Error(f"A debate holds at most {MAX_ROUNDS} rounds. / 最大 {MAX_ROUNDS} ラウンドです。")
        yield from self._shown(debate, self.runs.run_rounds(debate, i, n, settings,
                                                            request.session_hash or ""))

    def choose(self, data, index, choice):
        """The user picks a question: the rounds after this one were asked another one, so stale."""
        debate, _ = Debate.from_data(data)
        if not debate.rounds or index is None or choice is None:
            return {}
        i = int(index)
        rnd = debate.rounds[i]
        if not 0 <= int(choice) < len(rnd.questions):
            return {}
        if rnd.picked != int(choice):
            rnd.picked = int(choice)
            if i + 1 < len(debate.rounds):
                debate.mark_after(i, "questions")
        return self.stored(debate, i)

    def own_question_handler(self, replace: bool):
        """Add the question written by hand (or put it in place of the picked one) and pick it."""
        def put(data, index, question, goal_a, goal_b, text, choice):
            debate, i = self._debate(data, index, question, goal_a, goal_b)
            try:
                k = debate.put_question(i, text, None if not replace else
                                        -1 if choice is None else int(choice))
            except DebateError as error:
                raise gr.Error(str(error)) from None
            done = "replaced" if replace else "added"
            return {**self.stored(debate, i), self.progress: f"✍ Your question was {done} as question {k + 1} of round {i + 1} "
                                   "and picked. / 自分の質問を選びました。"}
        return put

    def next_round(self, data, index, question, goal_a, goal_b, choice):
        """The round after this one, on the question picked on the page (read from the page: a
        click on a question may still be on its way to the stored debate)."""
        debate, i = self._debate(data, index, question, goal_a, goal_b)
        if choice is not None and 0 <= int(choice) < len(debate.rounds[i].questions):
            debate.rounds[i].picked = int(choice)
        try:
            j = debate.next_round(i)
        except DebateError as error:
            raise gr.Error(str(error)) from None
        return {**self.stored(debate, j), self.progress: f"Round {j + 1}: group "
                f"{debate.rounds[j].answerer} answers, group {debate.rounds[j].rebutter} rebuts."}

    def stop(self, request: gr.Request):
        self.runs.stop(request.session_hash or "")

    def export(self, data):
        debate, _ = Debate.from_data(data)
        if not debate.rounds:
            gr.Warning("There is no debate to export yet. / 書き出す討論がありません。")
            return None, "There is no debate to export yet. / 書き出す討論がありません。"
        directory = hosting.export_directory(self.cache_dir)  # swept after --temp-max-age
        directory.mkdir(parents=True)
        paths = [directory / f"bonsai-debate.{ext}" for ext in ("xlsx", "csv", "jsonl")]
        paths[0].write_bytes(tr.to_xlsx(debate))
        paths[1].write_text(tr.to_csv(debate), encoding="utf-8")
        paths[2].write_text(tr.to_jsonl(debate), encoding="utf-8")
        return [str(p) for p in paths], (f"Exported {len(debate.rounds)} round(s). / "
                                         f"{len(debate.rounds)} ラウンドを書き出しました。")

    def import_file(self, path, data):
        name = Path(path).name if path else "?"
        current, _ = Debate.from_data(data)
        if current.rounds:
            text = (f"Could not import {name}: this browser holds a debate of {len(current.rounds)} "
                    "round(s); export it to keep it, then clear it. Nothing was imported. / "
                    "既存の討論を消去してから読み込んでください。")
            gr.Warning(text)
            return {self.message: text}
        try:
            if name.lower().endswith(".xlsx"):  # a zip: its inflated size is checked first
                check_zip(path, self.max_upload)
            debate = tr.import_bytes(name, read_upload(path, self.max_upload))
        except (tr.TranscriptError, UploadRefused, OSError) as error:
            return {self.message: import_refused(name, error)}
        return {**self.stored(debate), self.goal_a: debate.goals["A"], self.goal_b: debate.goals["B"],
                self.language: debate.language, self.enforce: debate.enforce_format,
                self.message: f"Imported {len(debate.rounds)} round(s) from {name}. / 読み込みました。"}

    @staticmethod
    def ask_clear(data):
        n = len(Debate.from_data(data)[0].rounds)
        return confirming(True, f"This deletes the debate ({n} round(s)) from this browser; export "
                                f"first to keep it. / 討論（{n} ラウンド）を削除します。")

    def clear(self):
        done = confirming(False, "Debate cleared. / 討論を消去しました。")
        return {**self.stored(Debate()), self.progress: "",
                **dict(zip([self.clear_btn, self.really_btn, self.cancel_btn, self.message], done))}

    # -- the public API --------------------------------------------------------------------------

    def fact_questions(self, answer: str, rebuttal: str = "", prompt_format: str = "alpaca",
                       max_new_tokens: int = 512, enforce_format: bool = True,
                       request: gr.Request = None) -> tuple[list[dict], str]:
        """Five fact-based questions (topic, question) asked of an answer (and a rebuttal) with the
        seed's FBQ template, and the model's raw text. ``enforce_format``: under the format's
        grammar, with its own token budget (``max_new_tokens`` is then not used); off: the model's
        free text within ``max_new_tokens``."""
        debate = self._api_debate("", answer, prompt_format)
        debate.enforce_format = bool(enforce_format)
        debate.rounds[0].rebuttal.text = rebuttal or ""
        self._api_run(debate, "questions", max_new_tokens, request)
        rnd = debate.rounds[0]
        return [{"topic": q.topic, "question": q.question} for q in rnd.questions], rnd.questions_step.text

    def rebut(self, question: str, answer: str, goal: str = DEFAULT_GOALS["en"]["B"], reasoning: str = "",
              prompt_format: str = "alpaca", max_new_tokens: int = 512,
              request: gr.Request = None) -> tuple[str, str]:
        """A rebuttal of ``answer`` by a group with ``goal``: the reasoning (generated, or the one
        given, used as written) and the rebuttal."""
        debate = self._api_debate(question, answer, prompt_format)
        debate.goals["B"] = goal or DEFAULT_GOALS["en"]["B"]
        self._api_run(debate, "rebuttal", max_new_tokens, request, reasoning or None)
        step = debate.rounds[0].rebuttal
        return step.reasoning, step.text

    @staticmethod
    def _api_debate(question: str, answer: str, prompt_format: str) -> Debate:
        try:
            check_text("answer", answer)
            if question:
                check_text("question", question)
            load_format(prompt_format)
        except ValueError as error:  # DebateError, or an unknown format
            raise gr.Error(str(error)) from None
        rnd = Round(question=question or "", answerer="A")
        rnd.answer.text = answer
        return Debate(prompt_format=prompt_format, rounds=[rnd])

    def _api_run(self, debate, kind, max_new_tokens, request, reasoning=None) -> None:
        defaults = {name: b.default for name, b in GENERATION_BOUNDS.items()}
        settings = checked_settings(**{**defaults, "max_new_tokens": max_new_tokens})
        session = request.session_hash if request else ""
        try:
            for _ in self.runs.step(debate, 0, kind, settings, session or "", reasoning=reasoning):
                pass
        except (DebateError, UserError) as error:
            raise gr.Error(str(error)) from None

    # -- wiring ----------------------------------------------------------------------------------

    def wire(self) -> None:
        e = self.editor
        where = [self.store, self.round_pick, self.question, self.goal_a, self.goal_b]
        # The editor's queue group and limit (1 in-process, --parallel served) and its queue guard,
        # the busy message under this tab's question; a step's own progress line and streamed
        # text show that it runs: no spinner over them.
        step_run = dict(api_visibility="private", show_progress="hidden",
                        **e.guarded(where.index(self.question)))
        settings = e.settings
        out = [self.store, *self.view_out, self.progress]
        self.round_pick.input(self.show_round, [self.store, self.round_pick], self.view_out, **PRIVATE)
        self.language.input(self.set_language, [self.language, self.goal_a, self.goal_b, self.question],
                            [self.goal_a, self.goal_b, self.question], **PRIVATE)
        self.enforce.input(self.set_enforce, [self.store, self.enforce], self.store, **PRIVATE)
        self.start_btn.click(self.start, [self.store, self.question, self.goal_a, self.goal_b,
                                          self.language, e.prompt_format, self.enforce],
                             [self.store, *self.view_out, self.message], **PRIVATE
                             ).success(self.step_handler("answer", False),
                                       [*where, self.answer_reasoning, *settings], out, **step_run)
        buttons = [(self.answer_btn, "answer", False, self.answer_reasoning),
                   (self.regenerate_answer_btn, "answer", True, self.answer_reasoning),
                   (self.rebut_btn, "rebuttal", False, self.rebuttal_reasoning),
                   (self.regenerate_rebuttal_btn, "rebuttal", True, self.rebuttal_reasoning),
                   (self.fbq_btn, "questions", False, self.raw)]
        for button, kind, from_reasoning, reasoning in buttons:
            button.click(self.step_handler(kind, from_reasoning), [*where, reasoning, *settings], out,
                         **step_run)
        self.run_btn.click(self.run_rounds, [*where, self.rounds_n, *settings], out, **step_run)
        self.stop_btn.click(self.stop, None, None, api_visibility="private", concurrency_limit=None,
                            queue=False)
        self.pick.input(self.choose, [self.store, self.round_pick, self.pick], [self.store, *self.view_out],
                        **PRIVATE)
        for button, replace in ((self.add_btn, False), (self.replace_btn, True)):
            button.click(self.own_question_handler(replace), [*where, self.own_question, self.pick],
                         out, **PRIVATE)
        self.next_btn.click(self.next_round, [*where, self.pick], out, **PRIVATE)
        self.export_btn.click(self.export, self.store, [self.files, self.message], **PRIVATE)
        self.import_btn.upload(self.import_file, [self.import_btn, self.store],
                               [self.store, *self.view_out, self.goal_a, self.goal_b, self.language,
                                self.enforce, self.message], **PRIVATE)
        confirm = [self.clear_btn, self.really_btn, self.cancel_btn, self.message]
        self.clear_btn.click(self.ask_clear, self.store, confirm, **PRIVATE)
        self.cancel_btn.click(lambda: confirming(False), None, confirm, **PRIVATE)
        self.really_btn.click(self.clear, None, [*out, *confirm], **PRIVATE)
        e.api(self.fact_questions, "fact_questions")
        e.api(self.rebut, "rebut")

    def load_after(self, event_trigger) -> None:
        """Read the stored debate when the page loads (``event_trigger``: demo.load)."""
        event_trigger(self.load, self.store, [*self.view_out, self.message, self.goal_a, self.goal_b,
                                              self.language, self.enforce], **PRIVATE)


def round_choices(debate: Debate) -> list[tuple[str, int]]:
    choices = []
    for i, rnd in enumerate(debate.rounds):
        stale = " ⚠ stale / 古い" if any(rnd.step(k).stale for k in ("answer", "rebuttal", "questions")) else ""
        a, b = rnd.answerer, rnd.rebutter
        choices.append((f"Round {i + 1}: {a} answers, {b} rebuts / ラウンド{i + 1}: {a}が回答、{b}が反論{stale}", i))
    return choices


def head(rnd: Round, kind: str) -> str:
    step = rnd.step(kind)
    side = rnd.answerer if kind == "answer" else rnd.rebutter
    title = {"answer": f"### Group {side} answers / グループ{side}の回答",
             "rebuttal": f"### Group {side} rebuts / グループ{side}の反論"}[kind]
    if step.stale:
        title += ("\n⚠ **stale**: a step before it was re-run after it was made; re-run it. / "
                  "**古い**: 前の段階が再実行されました。")
    return title


def depth_markdown(debate: Debate) -> str:
    """Per round: how much its new questions repeat the earlier ones (lower: new ground)."""
    cells = []
    for i, rnd in enumerate(debate.rounds, start=1):
        value = "—" if rnd.depth is None else f"{rnd.depth:.0%}"
        cells.append(f"| {i} | {rnd.answerer} → {rnd.rebutter} | {len(rnd.questions)} | {value} |")
    return ("**Depth**: the share of each round's new questions' word pairs already asked in earlier "
            "rounds (lower = digging into new ground). / **深掘り**: 新しい質問の語の組が以前の質問と"
            "重なる割合（低いほど新しい論点）\n\n| round | answer → rebuttal | questions | overlap |\n"
            "|---|---|---|---|\n" + "\n".join(cells))


def _side(kind: str) -> tuple:
    """One side's column: heading, editable reasoning, run and regenerate buttons, the text."""
    labels = {"answer": ("answer_reasoning", "answer_btn", "regenerate_answer"),
              "rebuttal": ("rebuttal_reasoning", "rebut_btn", "regenerate_rebuttal")}[kind]
    with gr.Column():
        head_md = gr.Markdown(elem_id=f"debate-{kind}-head")
        reasoning = gr.Textbox(label=t(labels[0]), lines=6, max_lines=20, elem_id=f"debate-{kind}-reasoning")
        with gr.Row():
            run_btn = gr.Button(t(labels[1]), elem_id="debate-rebut-btn" if kind == "rebuttal"
                                else "debate-answer-btn")
            regenerate_btn = gr.Button(t(labels[2]), elem_id=f"debate-regenerate-{kind}")
        text = gr.Markdown(elem_id=f"debate-{kind}", sanitize_html=True)
    return head_md, reasoning, run_btn, regenerate_btn, text


def debate_store() -> gr.BrowserState:
    """The debate's place in the browser. Create it outside the tabs: a BrowserState in a tab that
    is not shown reads its stored value only once the tab is opened, after the page's load event."""
    return gr.BrowserState(Debate().to_data(), storage_key=DEBATE_KEY, secret=wb.history_secret())


def build_debate(editor: Editor, runner: Runner, store: gr.BrowserState, max_upload: int) -> DebateTab:
    """Lay the Debate tab out (inside a gr.Tab) and wire its events."""
    gr.Markdown(t("debate_help"))
    with gr.Row(equal_height=False):
        goal_a = gr.Textbox(DEFAULT_GOALS["en"]["A"], label=t("goal_a"), lines=2, elem_id="goal-a")
        goal_b = gr.Textbox(DEFAULT_GOALS["en"]["B"], label=t("goal_b"), lines=2, elem_id="goal-b")
        language = gr.Radio([("English", "en"), ("日本語", "ja")], value="en", label=t("language"),
                            elem_id="debate-language", scale=0, min_width=160)
    with gr.Row(equal_height=False):
        question = gr.Textbox(DEFAULT_QUESTION["en"], label=t("debate_question"), lines=2,
                              elem_id="debate-question", scale=4)
        with gr.Column(scale=1, min_width=200):
            start_btn = gr.Button(t("start"), variant="primary", elem_id="debate-start")
            round_pick = CheckedDropdown([], label=t("round"), elem_id="debate-round")
    progress = gr.Markdown(elem_id="debate-progress")
    with gr.Row(equal_height=False):
        answer_head, answer_reasoning, answer_btn, regenerate_answer_btn, answer = _side("answer")
        rebuttal_head, rebuttal_reasoning, rebut_btn, regenerate_rebuttal_btn, rebuttal = _side("rebuttal")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            with gr.Row(equal_height=True):
                fbq_btn = gr.Button(t("fbq_btn"), elem_id="debate-fbq-btn", scale=1)
                enforce = gr.Checkbox(True, label=t("enforce_format"), info=t("enforce_format_info"),
                                      elem_id="debate-enforce", scale=2)
            pick = gr.Radio([], label=t("pick"), elem_id="debate-pick")
            with gr.Row(equal_height=False):
                own_question = gr.Textbox(label=t("own_question"), lines=2, scale=4,
                                          elem_id="debate-own-question")
                with gr.Column(scale=1, min_width=180):
                    add_btn = gr.Button(t("add_question"), size="sm", elem_id="debate-add-question")
                    replace_btn = gr.Button(t("replace_question"), size="sm",
                                            elem_id="debate-replace-question")
            with gr.Accordion(t("raw_questions"), open=False, elem_id="debate-raw-accordion") as raw_box:
                raw = gr.Textbox(label=t("raw_questions"), lines=8, interactive=False,
                                 elem_id="debate-raw", elem_classes="mono")
        with gr.Column(scale=2):
            depth = gr.Markdown(elem_id="debate-depth")
    with gr.Row():
        next_btn = gr.Button(t("next_round"), elem_id="debate-next")
        rounds_n = CheckedNumber(2, label=t("rounds_n"), precision=0, minimum=1, maximum=MAX_RUN_ROUNDS,
                             elem_id="debate-n", min_width=100, scale=0)
        run_btn = gr.Button(t("run_rounds"), variant="primary", elem_id="debate-run")
        stop_btn = gr.Button(t("stop"), variant="stop", elem_id="debate-stop")
    stats = gr.Markdown(elem_id="debate-stats")
    table = gr.Dataframe(value=[], headers=tr.COLUMNS, interactive=False, wrap=True, max_height=420,
                         elem_id="debate-transcript", label=t("transcript"))
    with gr.Row():
        export_btn = gr.Button(t("export_debate"), elem_id="debate-export")
        import_btn = gr.UploadButton(t("import_debate"), file_types=[".xlsx", ".csv", ".jsonl"],
                                     file_count="single", elem_id="debate-import")
        clear_btn = gr.Button(t("clear_debate"), variant="secondary", elem_id="debate-clear")
        really_btn = gr.Button(t("really_clear_debate"), variant="stop", visible=False,
                               elem_id="debate-really-clear")
        cancel_btn = gr.Button(t("cancel"), visible=False, elem_id="debate-cancel-clear")
    files = gr.File(label=t("downloads"), file_count="multiple", interactive=False, elem_id="debate-files")
    message = gr.Markdown(elem_id="debate-message")
    tab = DebateTab(editor, DebateRunner(runner), max_upload, store, goal_a, goal_b, language, round_pick, progress,
                    question, start_btn, answer_head, answer_reasoning, answer_btn, regenerate_answer_btn,
                    answer, rebuttal_head, rebuttal_reasoning, rebut_btn, regenerate_rebuttal_btn,
                    rebuttal, fbq_btn, pick, raw, depth, next_btn, rounds_n, run_btn, stop_btn, stats,
                    table, export_btn, import_btn, files, clear_btn, really_btn, cancel_btn, message,
                    raw_box, own_question, add_btn, replace_btn, enforce)
    tab.wire()
    return tab
