"""``--backend openai`` against a real engine: llama-cpp-python's server on loopback, embedded GGUF.

Everything here goes over HTTP to a real server process: generate, regenerate, stop, stop strings,
seeded repeats, over-long prompts, concurrent sessions, and the faults (server absent at start,
killed mid-stream, stalled, an error status, a wrong model name).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bonsai_ui.engine import Engine, EngineError, LoadError, Timing, load_engine
from bonsai_ui.engine.openai_backend import DIALECTS, NO_REPEAT_PROMISE, OpenAIBackend, base_url
from bonsai_ui.core.prompts import load_format, render_prompt
from bonsai_ui.editor.runs import Runner, UserError
from bonsai_ui.core.settings import AppSettings, GenerationSettings, parse_app_settings
from conftest import ScriptedBackend
from llama_server import N_CTX, SERVED_NAME, LlamaServer, free_port

QUESTION = "Jack has 4 pears and eats 5 of them. How many pears are left?"
GREEDY = GenerationSettings(max_new_tokens=48, temperature=0.0, seed=0)
ROOT = Path(__file__).resolve().parent.parent


def remote_settings(url: str, **kw) -> AppSettings:
    return AppSettings(backend="openai", endpoint=url, context_length=N_CTX, **kw)


@pytest.fixture(scope="module")
def server():
    s = LlamaServer().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def remote(server) -> Engine:
    return load_engine(remote_settings(server.url))


def final(states):
    return list(states)[-1]


# -- connecting ----------------------------------------------------------------------------------

def test_the_engine_is_detected_named_and_counts_with_its_tokenizer(remote, llama_engine):
    b = remote.backend
    assert b.name == "llama-cpp-python server" and b.model_name == SERVED_NAME
    assert b.context_length == N_CTX  # the server does not report it: --context-length
    prompt = render_prompt(load_format("think"), "reasoning", QUESTION, "")
    assert b.count_tokens(prompt) == llama_engine.backend.count_tokens(prompt)  # /extras/tokenize
    # top_k and repeat_penalty both reach llama-cpp-python; only the repeat caveat is left
    assert b.notes(GREEDY) == (NO_REPEAT_PROMISE,)


@pytest.mark.parametrize("endpoint,expected", [
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000"),
    ("https://engine.example/v1/", "https://engine.example"),
])
def test_endpoint_forms(endpoint, expected):
    assert base_url(endpoint) == expected


def test_an_endpoint_that_is_not_a_url_is_refused():
    with pytest.raises(LoadError, match="not an http"):
        base_url("127.0.0.1:8000")


def test_server_absent_at_start_is_a_plain_load_error():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(LoadError, match=f"cannot reach the engine at {url}.*is it running"):
        load_engine(remote_settings(url))


def test_app_exits_2_with_the_message_when_the_engine_is_unreachable():
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, "app.py", "--backend", "openai", "--endpoint", url,
         "--port", str(free_port())], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"error: cannot reach the engine at {url}" in done.stderr


def test_openai_backend_needs_an_endpoint(capsys):
    with pytest.raises(SystemExit):
        parse_app_settings(["--backend", "openai"], environ={})
    assert "needs --endpoint" in capsys.readouterr().err


def test_a_wrong_model_name_lists_the_served_models(server):
    with pytest.raises(LoadError, match=f"'gpt-9' is not served. Served: {SERVED_NAME}"):
        load_engine(remote_settings(server.url, served_model="gpt-9"))


# -- runs ----------------------------------------------------------------------------------------

def test_generate_streams_reasoning_then_response_like_the_in_process_model(remote, llama_engine):
    """Same GGUF, same llama.cpp, greedy: the served run writes what the in-process run writes."""
    here = final(Runner(llama_engine).generate(QUESTION, "", "vanilla", "alpaca", "", GREEDY))
    states = list(Runner(remote).generate(QUESTION, "", "vanilla", "alpaca", "", GREEDY))
    assert len(states) >= 3, "streamed in several updates"
    assert states[-1].response == here.response and states[-1].response.strip()
    stats = states[-1].stats
    assert "✅ done" in stats and f"{SERVED_NAME} on llama-cpp-python server" in stats
    assert f"prompt {here.timings[-1].prompt_tokens} tokens" in stats


def test_regenerate_sends_the_edited_reasoning_verbatim(remote):
    edited = "Jack has only 4 pears,  so eating 5 is impossible.\n"
    state = final(Runner(remote).regenerate(QUESTION, "", edited, "alpaca", GREEDY))
    assert state.reasoning == edited and state.response.strip()
    assert state.prompt == render_prompt(load_format("alpaca"), "special", QUESTION, "", edited)


def test_stop_closes_the_stream_keeps_the_partial_text_and_frees_the_server(remote):
    runner = Runner(remote)
    long = GenerationSettings(max_new_tokens=1500, temperature=0.0, seed=0)
    states = []
    for state in runner.generate("Write a very long story about a dragon.", "", "vanilla", "alpaca",
                                 "", long, session="s1"):
        states.append(state)
        if len(states) == 2:
            assert runner.stop("s1")
    assert "⏹ stopped" in states[-1].stats and states[-1].response.strip()
    assert states[-1].timings[-1].new_tokens < 200
    assert runner._cancels == {}, "the run's cancel flag is dropped when it ends"
    # The server stopped generating: the next request is answered, not queued behind 1,500 tokens
    # (llama-cpp-python serves one request at a time).
    state = final(runner.generate(QUESTION, "", "vanilla", "alpaca", "", GREEDY))
    assert "✅ done" in state.stats


def test_stop_strings_end_the_run_at_the_string(remote):
    full = final(Runner(remote).generate(QUESTION, "", "vanilla", "alpaca", "", GREEDY)).response
    words = full.split()
    stop = words[len(words) // 2]
    timing = Timing()
    prompt = render_prompt(load_format("alpaca"), "vanilla", QUESTION, "")
    text = "".join(remote.stream(prompt, GREEDY, threading.Event(), (stop,), timing))
    assert timing.ended_by == "stop string"
    assert text.strip() == full[: full.index(stop)].strip()


def test_a_seed_repeats_a_sampled_run_exactly(remote):
    sampled = GenerationSettings(max_new_tokens=32, temperature=1.0, top_p=0.95, seed=1234)
    runs = [final(Runner(remote).generate(QUESTION, "", "vanilla", "alpaca", "", sampled)).response
            for _ in range(2)]
    other = final(Runner(remote).generate(
        QUESTION, "", "vanilla", "alpaca", "",
        GenerationSettings(max_new_tokens=32, temperature=1.0, top_p=0.95, seed=99))).response
    assert runs[0] == runs[1] and runs[0] != other


def test_an_over_long_prompt_is_refused_with_the_counts(remote):
    long_question = "pears " * 3000
    with pytest.raises(UserError, match=r"The prompt is [\d,]+ tokens.*context of 2,048 tokens"):
        final(Runner(remote).generate(long_question, "", "vanilla", "alpaca", "", GREEDY))


def test_concurrent_sessions_stay_isolated_and_stop_only_their_own(remote):
    runner = Runner(remote)
    questions = {f"s{i}": f"What is {i} plus {i}?" for i in range(3)}
    alone = {s: final(runner.generate(q, "", "vanilla", "alpaca", "", GREEDY)).response
             for s, q in questions.items()}
    results, errors = {}, []
    victim = "s-long"

    def run(session, question, settings):
        try:
            results[session] = final(runner.generate(question, "", "vanilla", "alpaca", "",
                                                     settings, session=session))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(s, q, GREEDY)) for s, q in questions.items()]
    threads.append(threading.Thread(target=run, args=(
        victim, "Write a very long story.", GenerationSettings(max_new_tokens=1500, seed=0))))
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while victim not in runner._cancels and time.monotonic() < deadline:
        time.sleep(0.05)
    runner.stop(victim)
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert {s: results[s].response for s in questions} == alone
    assert all("✅ done" in results[s].stats for s in questions)
    assert "⏹ stopped" in results[victim].stats
    assert runner._cancels == {}


def test_settings_the_engine_has_no_field_for_are_named_in_the_stats(server):
    """A generic OpenAI-compatible dialect (no top_k, no repetition penalty, no tokenize) against
    the same real server: the run works, and the stats say what was ignored and estimated."""
    real = load_engine(remote_settings(server.url)).backend
    generic = OpenAIBackend(real.client, real.url, DIALECTS["openai"], real.served,
                            real.context_length, real.chat)
    state = final(Runner(Engine(generic)).generate(
        QUESTION, "", "vanilla", "alpaca", "",
        GenerationSettings(max_new_tokens=16, top_k=40, repetition_penalty=1.1)))
    assert "ignores top_k, repetition_penalty" in state.stats
    assert "prompt tokens estimated" in state.stats


def test_a_stream_that_ends_without_a_reason_is_an_error_not_a_silent_empty_answer(server):
    """Told a context larger than the server's, the app sends a prompt the server cannot take:
    llama-cpp-python then answers 200 with an empty stream (its error goes only to its log)."""
    engine = load_engine(AppSettings(backend="openai", endpoint=server.url, context_length=16384))
    with pytest.raises(UserError, match=r"ended the stream after 0 tokens without saying why"):
        final(Runner(engine).generate("pears " * 3000, "", "vanilla", "alpaca", "", GREEDY))


# -- faults mid-run ------------------------------------------------------------------------------

@pytest.fixture
def own_server():
    """A server this test may kill or freeze."""
    s = LlamaServer().start()
    yield s
    if s.process.poll() is None:
        s.resume()  # a stopped process would not see SIGTERM
    s.stop()


def test_server_killed_mid_stream_keeps_the_partial_text_and_the_next_run_reconnects(own_server):
    engine = load_engine(remote_settings(own_server.url))
    runner = Runner(engine)
    states = []
    with pytest.raises(UserError, match=r"connection to the engine .* broke after \d+ tokens"):
        for state in runner.generate("Write a very long story about a dragon.", "", "vanilla",
                                     "alpaca", "", GenerationSettings(max_new_tokens=1500), "k"):
            states.append(state)
            if len(states) == 2:
                own_server.kill()
    assert states[-1].response.strip(), "the partial text streamed before the crash is kept"
    assert runner._cancels == {}
    with pytest.raises(UserError, match="cannot reach the engine"):  # down: plain message, no hang
        final(runner.generate(QUESTION, "", "vanilla", "alpaca", "", GREEDY))
    own_server.start()  # the same engine back on the same address
    state = final(runner.generate(QUESTION, "", "vanilla", "alpaca", "", GREEDY))
    assert "✅ done" in state.stats and state.response.strip()


def test_a_stalled_engine_times_out_naming_it(own_server):
    # 20 s: long enough that a busy 2-core machine does not look stalled before the pause.
    engine = load_engine(remote_settings(own_server.url, request_timeout=20.0))
    states = []
    with pytest.raises(UserError, match=r"sent nothing for 20 s after \d+ tokens: it stalled"):
        for state in Runner(engine).generate("Write a very long story.", "", "vanilla", "alpaca",
                                             "", GenerationSettings(max_new_tokens=1500)):
            states.append(state)
            if state.response.strip() and not own_server.paused:
                own_server.pause()
                paused = time.monotonic()
    assert time.monotonic() - paused < 60 and states[-1].response.strip()


def test_an_error_status_is_shown_briefly_with_the_engines_words():
    """The engine restarted with a new API key: the next run gets its 401 and its words."""
    port = free_port()
    first = LlamaServer(port=port, api_key="key-1").start()
    try:
        with pytest.raises(LoadError, match="answered GET /v1/models with 401: Invalid API key"):
            load_engine(remote_settings(first.url))
        engine = load_engine(remote_settings(first.url, api_key="key-1"))
        assert final(Runner(engine).generate(QUESTION, "", "vanilla", "alpaca", "", GREEDY)).response
    finally:
        first.stop()
    second = LlamaServer(port=port, api_key="key-2").start()
    try:
        with pytest.raises(UserError, match=r"answered POST /extras/tokenize with 401: Invalid API key$"):
            final(Runner(engine).generate(QUESTION, "", "vanilla", "alpaca", "", GREEDY))
    finally:
        second.stop()


# -- bounded per-session state ---------------------------------------------------------------------

def test_cancel_flags_and_finished_runs_stay_bounded_over_many_sessions():
    runner = Runner(Engine(ScriptedBackend(pieces=["a", "."])))
    for i in range(2000):
        final(runner.generate("Q", "", "vanilla", "alpaca", "", GREEDY, session=f"s{i}"))
    assert runner._cancels == {}
    assert len(runner._finished) <= 256


def test_engine_error_mid_stream_becomes_a_user_message_and_keeps_earlier_states():
    class Failing(ScriptedBackend):
        def stream(self, prompt, settings, cancel, session=""):
            yield from super().stream(prompt, settings, cancel, session)
            raise EngineError("the engine (test) broke after 3 tokens")

    runner = Runner(Engine(Failing(pieces=["a ", "b ", "c"])))
    states = []
    with pytest.raises(UserError, match="broke after 3 tokens"):
        for state in runner.generate("Q", "", "vanilla", "alpaca", "", GREEDY, session="x"):
            states.append(state)
    assert runner._cancels == {}


# -- counting without the engine's tokenize endpoint (--tokenizer) -------------------------------
# Last in the file: these runs leave prompts in the server's cache, and a greedy run that reuses a
# cached prefix may round differently from a fresh one (test_generate_streams_… compares with the
# in-process model).

@pytest.fixture
def no_tokenize_endpoint(monkeypatch):
    """The real server, as an engine without a tokenize endpoint: the app is told of none to try
    (llama-cpp-python's server always has one; Ollama-like and generic servers do not)."""
    monkeypatch.setitem(DIALECTS, "llama-cpp-python",
                        dataclasses.replace(DIALECTS["llama-cpp-python"], tokenize=()))


def test_without_a_tokenize_endpoint_the_local_tokenizer_counts_and_says_so(
        server, llama_engine, no_tokenize_endpoint):
    lines = []
    engine = load_engine(remote_settings(server.url, tokenizer="embedded"),
                         lambda stage, fraction: lines.append(stage))
    b = engine.backend
    prompt = render_prompt(load_format("think"), "reasoning", QUESTION, "")
    assert b.count_tokens(prompt) == llama_engine.backend.count_tokens(prompt)  # exact, not estimated
    said = "prompt tokens counted by the local tokenizer SmolLM2-135M-Instruct"
    assert any(said in line for line in lines), lines  # the loading line names it
    state = final(Runner(engine).generate(QUESTION, "", "vanilla", "alpaca", "", GREEDY))
    assert said in state.stats and "estimated" not in state.stats
    with pytest.raises(UserError, match=r"The prompt is [\d,]+ tokens.*context of 2,048"):
        final(Runner(engine).generate("pears " * 3000, "", "vanilla", "alpaca", "", GREEDY))


def test_without_a_tokenize_endpoint_or_a_tokenizer_counts_are_marked_estimates(
        server, no_tokenize_endpoint):
    engine = load_engine(remote_settings(server.url))
    assert engine.backend.local_tokenizer is None
    state = final(Runner(engine).generate(QUESTION, "", "vanilla", "alpaca", "", GREEDY))
    assert "prompt tokens estimated" in state.stats


def test_a_tokenizer_is_not_loaded_where_the_engine_counts(server):
    lines = []
    engine = load_engine(remote_settings(server.url, tokenizer="embedded"),
                         lambda stage, fraction: lines.append(stage))
    assert engine.backend.local_tokenizer is None
    assert any("counted by the engine (/extras/tokenize); --tokenizer embedded not used" in line
               for line in lines), lines


@pytest.mark.parametrize("spec,message", [
    ("/nowhere/model.gguf", r"--tokenizer '/nowhere/model.gguf': GGUF file .* does not exist"),
    (str(ROOT / "README.md"), r"--tokenizer '.*README.md': .* is neither a .gguf file nor a model"),
])
def test_a_tokenizer_that_cannot_be_loaded_stops_the_start(server, no_tokenize_endpoint, spec,
                                                           message):
    with pytest.raises(LoadError, match=message):
        load_engine(remote_settings(server.url, tokenizer=spec))
