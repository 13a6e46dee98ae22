"""The debate's endpoints through gradio_client, on the embedded model: /fact_questions, /rebut."""

import threading
from dataclasses import dataclass, field

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from bonsai_ui.debate import MAX_TEXT_CHARS, parse_fact_questions
from bonsai_ui.engine import Engine
from bonsai_ui.runs import Runner
from conftest import LaunchedApp, ScriptedBackend

ANSWER = ("AI should answer customer calls: it never sleeps, it costs less than a call centre, and "
          "customers get an answer at once.")
QUESTION = "Should companies replace human customer support with AI?"


@pytest.fixture(scope="module")
def client(real_app):
    return Client(real_app.url, verbose=False)


def test_fact_questions_returns_the_parsed_questions_and_the_raw_text(client):
    questions, raw = client.predict(ANSWER, api_name="/fact_questions")
    assert raw.strip()
    assert questions == [{"topic": q.topic, "question": q.question} for q in parse_fact_questions(raw)]


def test_rebut_reasons_then_rebuts(client):
    reasoning, rebuttal = client.predict(QUESTION, ANSWER, max_new_tokens=96, api_name="/rebut")
    assert reasoning.strip() and rebuttal.strip()


def test_rebut_from_a_given_reasoning_uses_it_as_written(client):
    given = "The answer forgets the customers who cannot use a chatbot: the old, the angry, the deaf."
    reasoning, rebuttal = client.predict(QUESTION, ANSWER, "Group B defends human work.", given,
                                         max_new_tokens=64, api_name="/rebut")
    assert reasoning == given and rebuttal.strip()


@pytest.mark.parametrize("endpoint,args,message", [
    ("/fact_questions", dict(answer=""), "The answer is empty"),
    ("/fact_questions", dict(answer="   \n"), "The answer is empty"),
    ("/fact_questions", dict(answer="x" * (MAX_TEXT_CHARS + 1)),
     f"{MAX_TEXT_CHARS + 1:,} characters, over the limit of {MAX_TEXT_CHARS:,}"),
    ("/rebut", dict(question=QUESTION, answer=""), "The answer is empty"),
    ("/rebut", dict(question=QUESTION, answer="x" * (MAX_TEXT_CHARS + 1)), "over the limit"),
    ("/rebut", dict(question=QUESTION, answer=ANSWER, prompt_format="nope"), "unknown prompt format"),
    ("/rebut", dict(question=QUESTION, answer="word " * 2300, max_new_tokens=2048), "over the model's context"),
    ("/fact_questions", dict(answer=ANSWER, max_new_tokens=0), "max_new_tokens = 0 is out of range"),
])
def test_bad_input_gets_a_clear_message_and_the_app_keeps_serving(client, endpoint, args, message):
    with pytest.raises(AppError, match=message):
        client.predict(**args, api_name=endpoint)
    _, rebuttal = client.predict(QUESTION, ANSWER, max_new_tokens=8, api_name="/rebut")
    assert rebuttal is not None


# -- the debate's runs share the editor's queue group and limit ----------------------------------

@dataclass
class CountingBackend(ScriptedBackend):
    """The scripted stand-in as a served engine taking ``parallel`` runs (the engine's semaphore),
    counting the streams that run at once."""

    parallel: int = 2
    active: int = 0
    most: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stream(self, prompt, settings, cancel, session=""):
        inner = super().stream(prompt, settings, cancel, session)

        def counted():
            with self.lock:
                self.active += 1
                self.most = max(self.most, self.active)
            try:
                yield from inner
            finally:
                with self.lock:
                    self.active -= 1
        return counted()


@pytest.mark.parametrize("concurrency", [1, 2])
def test_debate_runs_follow_the_editors_concurrency(concurrency):
    """With a served engine (--parallel 2) a /rebut runs beside a /generate; in-process (1) they take
    turns. Gradio gives a queue group the lowest limit any of its events names, so every model
    event, the debate's private steps included, must name the editor's."""
    backend = CountingBackend(pieces=["word "] * 30, delay=0.03)  # ~1 s a phase
    app = LaunchedApp(Runner(Engine(backend)), concurrency=concurrency)
    try:
        group = [fn for fn in app.demo.fns.values() if fn.concurrency_id == "model"]
        names = {getattr(fn.fn, "__name__", "") for fn in group}
        assert {"generate", "rebut", "fact_questions", "run", "run_rounds"} <= names
        assert {fn.concurrency_limit for fn in group} == {concurrency}
        jobs = [Client(app.url, verbose=False).submit(QUESTION, ANSWER, max_new_tokens=30, api_name="/rebut"),
                Client(app.url, verbose=False).submit(QUESTION, "", "vanilla", "alpaca", "", 30, 0.0, 0.95,
                                                      50, 1.1, 0, api_name="/generate")]
        for job in jobs:
            job.result(timeout=60)
        assert backend.most == concurrency
    finally:
        app.close()
