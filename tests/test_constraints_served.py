"""The questions' format on a served engine: sent in each engine's documented field, enforced by a
real engine on loopback (llama-cpp-python's server), and an engine that answers 200 but ignores
the field found at start and named in every run, never a silent ignore."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bonsai_ui.core.constraints import FBQ, PARAGRAPH, QUESTION_WORDS
from bonsai_ui.core.settings import AppSettings, GenerationSettings
from bonsai_ui.debate.rounds import MAX_QUESTIONS, Debate, Round
from bonsai_ui.debate.steps import DebateRunner
from bonsai_ui.editor.runs import Runner
from bonsai_ui.engine import load_engine
from bonsai_ui.engine.openai_backend import DIALECTS
from llama_server import N_CTX, LlamaServer


@pytest.fixture(scope="module")
def server():
    s = LlamaServer().start()
    yield s
    s.stop()


def remote(url: str):
    lines = []
    engine = load_engine(AppSettings(backend="openai", endpoint=url, context_length=N_CTX),
                         lambda stage, fraction: lines.append(stage))
    return engine, lines


def questions_step(engine, max_new_tokens=48, enforce=True):
    rnd = Round(question="Is LUNA white?", answerer="A")
    rnd.answer.text = "No. LUNA is not white, and KIKI has black fur."
    debate = Debate(rounds=[rnd], enforce_format=enforce)
    last = None
    for last in DebateRunner(Runner(engine)).step(debate, 0, "questions",
                                                  GenerationSettings(max_new_tokens=max_new_tokens)):
        pass
    return debate, last


@pytest.mark.parametrize("dialect, field", [
    ("vllm", {"structured_outputs": {"grammar": FBQ.gbnf}}),
    ("sglang", {"ebnf": FBQ.gbnf}),
    ("llama-server", {"grammar": FBQ.gbnf}),
    ("llama-cpp-python", {"grammar": FBQ.gbnf}),
])
def test_each_engine_gets_the_grammar_in_its_documented_field(dialect, field):
    assert DIALECTS[dialect].grammar(FBQ.gbnf) == field


def test_a_real_served_engine_enforces_the_questions_format(server):
    """llama-cpp-python's server applies ``grammar`` with llama.cpp's own grammar sampler: the
    probe at start finds it, and the debate's questions step writes the five lines."""
    engine, lines = remote(server.url)
    assert "format of 5 fact-based questions: enforced while decoding" in lines
    debate, last = questions_step(engine)
    text = debate.rounds[0].questions_step.text
    assert text.startswith(PARAGRAPH) and text.count(PARAGRAPH) == MAX_QUESTIONS
    assert [q.question.split()[0] for q in debate.rounds[0].questions] == list(QUESTION_WORDS)
    assert "format enforced" in debate.rounds[0].questions_step.stats
    assert last.line.startswith("✅ done")


class IgnoringEngine(BaseHTTPRequestHandler):
    """A stand-in vLLM that answers 200 to every completion and ignores any grammar field, as
    vLLM does with fields it no longer knows: it writes the same free text whatever is asked."""

    TEXT = [", 4", ", 5", ". The answer is that there are no questions here."]
    bodies: list = []

    def log_message(self, *args):  # keep the test output quiet
        pass

    def _json(self, data, status=200):
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):
        if self.path == "/v1/models":
            return self._json({"data": [{"id": "stand-in", "owned_by": "vllm",
                                         "max_model_len": 4096}]})
        if self.path == "/version":
            return self._json({"version": "0.13.0"})
        return self._json({"detail": "Not Found"}, 404)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        if self.path == "/tokenize":
            return self._json({"count": len(body["prompt"].split()), "tokens": []})
        if self.path != "/v1/completions":
            return self._json({"detail": "Not Found"}, 404)
        if not body.get("stream"):
            return self._json({"choices": [{"text": "".join(self.TEXT), "finish_reason": "length"}]})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i, piece in enumerate(self.TEXT):
            last = i + 1 == len(self.TEXT)
            event = {"choices": [{"text": piece, "finish_reason": "stop" if last else None}]}
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture
def ignoring():
    IgnoringEngine.bodies = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), IgnoringEngine)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_an_engine_that_answers_200_but_ignores_the_field_is_found_and_named(ignoring):
    engine, lines = remote(ignoring)
    probe = next(b for b in IgnoringEngine.bodies if b.get("prompt") == "1, 2, 3")
    assert probe["structured_outputs"] == {"grammar": FBQ.gbnf}  # the field was sent ...
    note, = [line for line in lines if line.startswith("format of")]
    assert "⚠ not enforced: vLLM 0.13.0 answered a probe without applying the grammar" in note
    debate, last = questions_step(engine, max_new_tokens=32)
    step = debate.rounds[0].questions_step
    assert "⚠ format not enforced: vLLM 0.13.0 answered a probe" in step.stats  # ... and every run says so
    assert not debate.rounds[0].questions and "no fact-based question" in last.line
    run = IgnoringEngine.bodies[-1]
    assert run["max_tokens"] == 32  # not enforced: the user's budget, not the format's


def test_a_generic_openai_server_has_no_grammar_field_and_says_so(server):
    from bonsai_ui.engine import Engine
    from bonsai_ui.engine.openai_backend import OpenAIBackend

    real = load_engine(AppSettings(backend="openai", endpoint=server.url, context_length=N_CTX)).backend
    generic = Engine(OpenAIBackend(real.client, real.url, DIALECTS["openai"], real.served,
                                   real.context_length, real.chat))
    assert "has no documented grammar field" in generic.check_format(FBQ)


def test_turned_off_the_step_sends_no_grammar_and_uses_the_users_budget(ignoring):
    engine, _ = remote(ignoring)
    questions_step(engine, max_new_tokens=20, enforce=False)
    run = IgnoringEngine.bodies[-1]
    assert "structured_outputs" not in run and run["max_tokens"] == 20
