"""``--backend openai`` against llama.cpp's own llama-server: the batching engine (parallel slots,
continuous batching) on loopback, serving the embedded GGUF.

The binary is found as ``llama_server.llama_server_binary`` says: ``$BONSAI_LLAMA_SERVER``, else
``llama-server`` on the PATH (``bash bench/build_llama_server.sh`` builds one from the sources
llama-cpp-python vendors). Without it these tests are skipped, saying so; every item they check is
also checked against llama-cpp-python's server (test_openai_backend.py, test_openai_app.py), which
is always installed. What only llama-server has is checked here: detection through ``/props``, its
context and chat template from there, ``/tokenize``, runs streaming at once in its slots, prefix
reuse reported as ``cache_n``, a Stop that frees the slot.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from bonsai_ui.engine import load_engine
from bonsai_ui.engine.openai_backend import NO_REPEAT_PROMISE
from bonsai_ui.core.prompts import load_format, render_prompt
from bonsai_ui.editor.runs import Runner
from bonsai_ui.core.settings import AppSettings, GenerationSettings
from llama_server import N_CTX, SERVED_NAME, LlamaCppServer, free_port, llama_server_binary

BINARY = llama_server_binary()
pytestmark = pytest.mark.skipif(
    BINARY is None, reason="no llama-server binary: set BONSAI_LLAMA_SERVER or put llama-server "
    "on the PATH (bash bench/build_llama_server.sh builds one); the same items run against "
    "llama-cpp-python's server in test_openai_backend.py")

ROOT = Path(__file__).resolve().parent.parent
SLOTS = 4
QUESTION = "Jack has 4 pears and eats 5 of them. How many pears are left?"
GREEDY = GenerationSettings(max_new_tokens=48, temperature=0.0, seed=0)


@pytest.fixture(scope="module")
def server():
    s = LlamaCppServer(BINARY, parallel=SLOTS).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def remote(server):
    return load_engine(AppSettings(backend="openai", endpoint=server.url, parallel=SLOTS))


def final(states):
    return list(states)[-1]


def test_detected_through_props_with_its_context_template_and_tokenizer(remote, llama_engine):
    b = remote.backend
    assert b.name.startswith("llama.cpp llama-server") and b.model_name == SERVED_NAME
    assert b.context_length == N_CTX  # a slot's context, from /props (no --context-length given)
    assert b.chat.template and "<|im_start|>" in b.chat.template  # SmolLM2's, from /props
    prompt = render_prompt(load_format("think"), "reasoning", QUESTION, "", chat=b.chat)
    assert b.count_tokens(prompt) == llama_engine.backend.count_tokens(prompt)  # /tokenize
    assert b.counted_by == "prompt tokens counted by the engine (/tokenize)"
    assert b.notes(GREEDY) == (NO_REPEAT_PROMISE,)  # top_k, repeat_penalty: all reach it


def test_regenerate_sends_the_edited_reasoning_verbatim_and_reuses_the_prefix(remote):
    runner = Runner(remote)
    first = final(runner.generate(QUESTION, "", "reasoning", "alpaca", "", GREEDY))
    assert "✅ done" in first.stats and (first.reasoning or first.response)
    edited = "Jack has only 4 pears, so he cannot eat 5.\n"
    state = final(runner.regenerate(QUESTION, "", edited, "alpaca", GREEDY))
    assert state.prompt.endswith(render_prompt(load_format("alpaca"), "special", QUESTION, "",
                                               edited)[-200:])
    assert state.response and "reused from cache" in state.stats  # llama-server's cache_n


def test_runs_stream_at_once_in_its_slots_and_stop_only_their_own(remote, server):
    """Four sessions at once: all four are streaming before any has finished (the slots batch
    them), and Stop in one session ends that run only."""
    runner = Runner(remote)
    spans, results, errors = {}, {}, []
    settings = GenerationSettings(max_new_tokens=96, temperature=0.0, seed=0)

    def user(session):
        try:
            for state in runner.generate(f"Write a long story about pear number {session}.", "",
                                         "vanilla", "alpaca", "", settings, session):
                t = state.timings[-1]
                if t.first_token:
                    spans[session] = (t.first_token, t.last_token)
                if session == "s0" and t.new_tokens >= 8:
                    runner.stop(session)
                results[session] = state
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=user, args=(f"s{i}",)) for i in range(SLOTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert "⏹ stopped" in results["s0"].stats
    assert all("✅ done" in results[f"s{i}"].stats for i in range(1, SLOTS))
    others = [spans[f"s{i}"] for i in range(1, SLOTS)]
    assert max(first for first, _ in others) < min(last for _, last in others)  # overlapped
    assert remote.idle
    deadline = time.monotonic() + 30  # the stopped run's slot is freed: the connection closed
    while any(s.get("is_processing") for s in httpx.get(server.url + "/slots").json()):
        assert time.monotonic() < deadline, "a slot still works on a closed request"
        time.sleep(0.2)


def test_a_seed_repeats_a_sampled_run(remote):
    sampled = GenerationSettings(max_new_tokens=32, temperature=1.0, top_p=0.95, seed=7)
    runs = [final(Runner(remote).generate(QUESTION, "", "vanilla", "alpaca", "", sampled)).response
            for _ in range(2)]
    assert runs[0] == runs[1] and runs[0]


def test_the_app_serves_through_llama_server(server):
    from gradio_client import Client

    port = free_port()
    proc = subprocess.Popen([sys.executable, "app.py", "--backend", "openai", "--endpoint",
                             server.url, "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(240):
            try:
                client = Client(url, verbose=False)
                result = client.predict(QUESTION, "", "vanilla", "alpaca", "", 16, 0.0, 0.95, 50,
                                        1.1, 0, api_name="/generate")
                break
            except Exception as error:  # noqa: BLE001 - not up yet, or the engine check runs
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                assert "still loading" in str(error) or "onnect" in str(error), error
                time.sleep(0.5)
        assert f"{SERVED_NAME} on llama.cpp llama-server" in result[2] and result[1]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
