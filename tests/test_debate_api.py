"""The debate's endpoints through gradio_client, on the embedded model: /fact_questions, /rebut."""

import json
import threading
from dataclasses import dataclass, field

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from bonsai_ui.debate.rounds import DEFAULT_GOALS, MAX_TEXT_CHARS, Debate, Round, parse_fact_questions
from bonsai_ui.engine import Engine
from bonsai_ui.core.settings import GENERATION_BOUNDS
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
    # 11,800 tokens (each "7" and " 7" is one): over the 8,192-token context python app.py loads
    ("/rebut", dict(question=QUESTION, answer="7 " * 5900, max_new_tokens=2048), "over the model's context"),
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
    # --parallel is what sets it; the stand-in plays the served engine (the real one: test_llama_server.py)
    served = ["--backend", "openai", "--endpoint", "http://127.0.0.1:9", "--parallel", str(concurrency)]
    app = LaunchedApp(Engine(backend), served if concurrency > 1 else [])
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


# -- the debate's runs and endpoints have the editor's queue guard -------------------------------

def debate_fn(app: LaunchedApp, qualname: str) -> int:
    """The id (fn_index) of the debate's private run ``qualname``, as the page calls it."""
    ids = [i for i, fn in app.demo.fns.items() if getattr(fn.fn, "__qualname__", "") == qualname]
    assert ids, qualname
    return ids[0]


def join(app: LaunchedApp, fn_index: int, data: list, session: str) -> httpx.Response:
    """What the page sends when a debate button is clicked: the run's inputs, joining the queue."""
    return httpx.post(app.url + "gradio_api/queue/join", timeout=30, json={
        "data": data, "fn_index": fn_index, "session_hash": session, "event_data": None,
        "trigger_id": None})


def outcome(app: LaunchedApp, session: str) -> dict:
    """The joined run's last message (process_completed), read from the session's event stream."""
    with httpx.stream("GET", app.url + "gradio_api/queue/data", params={"session_hash": session},
                      timeout=60) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError("the stream ended before the run did")


def step_inputs(debate: Debate, index, reasoning: str = "") -> list:
    """A debate step's inputs, in the page's order: the stored debate, the round shown, the
    round's question, the two goals, the reasoning box, the six generation settings."""
    settings = [GENERATION_BOUNDS[name].default for name in GENERATION_BOUNDS]
    return [debate.to_data(), index, debate.rounds[0].question, debate.goals["A"], debate.goals["B"],
            reasoning, *settings]


def one_round() -> Debate:
    return Debate(goals=dict(DEFAULT_GOALS["en"]), rounds=[Round(question=QUESTION, answerer="A")])


@pytest.mark.parametrize("endpoint,args", [
    ("/rebut", dict(question=QUESTION, answer=ANSWER)),
    ("/fact_questions", dict(answer=ANSWER)),
])
def test_a_full_queue_refuses_the_debates_endpoints_with_our_busy_message(crowded_app, endpoint,
                                                                          args):
    app, backend, jobs = crowded_app
    with pytest.raises(Exception) as refused:  # gradio_client's ValidationError
        Client(app.url, verbose=False).predict(**args, max_new_tokens=4, api_name=endpoint)
    assert "The app is busy: 1 runs are already waiting" in str(refused.value)
    backend.gate.set()
    assert [job.result(timeout=60)[1] for job in jobs] == ["word word word word"] * 2
    assert Client(app.url, verbose=False).predict(**args, max_new_tokens=4, api_name=endpoint)


def test_a_full_queue_refuses_a_debate_step_with_our_busy_message_under_its_question(crowded_app):
    app, backend, jobs = crowded_app
    answer = debate_fn(app, "DebateTab.step_handler.<locals>.run")
    refused = join(app, answer, step_inputs(one_round(), 0), "debate-visitor")
    assert refused.status_code == 422  # refused at the join, not failed (400)
    verdicts = refused.json()["detail"]
    assert [v["is_valid"] for v in verdicts] == [True, True, False] + [True] * 9
    assert "The app is busy: 1 runs are already waiting" in verdicts[2]["message"]  # the question's
    backend.gate.set()
    for job in jobs:
        job.result(timeout=60)
    assert join(app, answer, step_inputs(one_round(), 0), "debate-visitor").status_code == 200
    done = outcome(app, "debate-visitor")
    assert done["success"], done


@pytest.mark.parametrize("qualname,inputs,message", [
    # A round the server's copy of the round list does not hold (a new session: the list is
    # empty there until the page loads the debate, as after --session-capacity dropped it).
    ("DebateTab.step_handler.<locals>.run", step_inputs(one_round(), 0), None),
    ("DebateTab.step_handler.<locals>.run", step_inputs(one_round(), 3), "There is no round 4"),
    ("DebateTab.run_rounds", step_inputs(one_round(), 0)[:5] + [99] + step_inputs(one_round(), 0)[6:],
     "Rounds must be between 1 and 10; got 99"),
    ("DebateTab.run_rounds", step_inputs(one_round(), 0)[:5] + [0] + step_inputs(one_round(), 0)[6:],
     "Rounds must be between 1 and 10; got 0"),
])
def test_values_gradio_would_refuse_reach_the_run_which_names_them(scripted_app, qualname, inputs,
                                                                  message):
    """Gradio preprocesses a guarded run's inputs as it joins the queue: a value its round list or
    round count refuses would fail the join (HTTP 400, and the page or client waits for ever)."""
    scripted_app.backend.pieces = ["word "] * 4
    session = f"visitor-{qualname}-{inputs[1]}-{inputs[5]}"
    assert join(scripted_app, debate_fn(scripted_app, qualname), inputs, session).status_code == 200
    done = outcome(scripted_app, session)
    if message is None:
        assert done["success"], done
    else:
        assert not done["success"] and message in done["output"]["error"], done
