"""The app with ``--backend openai`` in front of a real engine (llama-cpp-python's server on
loopback): as `python app.py` starts it, through gradio_client with many users, and in Chromium."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from llama_server import N_CTX, SERVED_NAME, LlamaServer, free_port

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "I have 3 cats. How many legs do my cats have in total?"
EDITED = "Each cat has 4 legs.\nThere are 3 cats, so 3 × 4 = 12 legs.\n"


@pytest.fixture(scope="module")
def server():
    s = LlamaServer().start()
    yield s
    s.stop()


def launch(server, *extra: str) -> tuple[subprocess.Popen, str]:
    """``python app.py --backend openai --endpoint …``, as a user starts it; ready when the model is."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--backend", "openai", "--endpoint", server.url,
         "--context-length", str(N_CTX), "--port", str(port), *extra],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("the app did not start")


@pytest.fixture(scope="module")
def app(server):
    proc, url = launch(server, "--parallel", "4", "--queue-size", "2")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def submit(client: Client, question=QUESTION, max_new_tokens=32):
    return client.submit(question, "", "vanilla", "alpaca", "", max_new_tokens, 0.0, 0.95, 50, 1.1, 0,
                         api_name="/generate")


def wait_ready(url: str) -> None:
    """The page is served before the engine check finishes: wait for the first run to go through."""
    client = Client(url, verbose=False)
    for _ in range(240):
        try:
            submit(client, max_new_tokens=1).result()
            return
        except Exception as error:  # noqa: BLE001
            assert "still loading" in str(error), error
            time.sleep(0.5)


def test_many_users_at_once_each_get_their_own_answer(app):
    wait_ready(app)
    questions = [f"What is {i} plus {i}?" for i in range(4)]
    alone = {q: submit(Client(app, verbose=False), q).result()[1] for q in questions}
    results = {}

    def user(q):
        results[q] = submit(Client(app, verbose=False), q).result()

    threads = [threading.Thread(target=user, args=(q,)) for q in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert {q: r[1] for q, r in results.items()} == alone
    assert all(f"{SERVED_NAME} on llama-cpp-python server" in r[2] for r in results.values())


@pytest.fixture(scope="module")
def crowded():
    """An app with one run at a time and one place in its queue, before an engine that stalls on
    demand (SIGSTOP): while it is stopped, one run holds the engine and one waits, so the queue is
    exactly full for as long as a test needs."""
    engine, proc = LlamaServer().start(), None
    try:  # a failed start must not leave the server and the app running
        proc, url = launch(engine, "--parallel", "1", "--queue-size", "1", "--request-timeout", "600")
        wait_ready(url)
        yield engine, url
    finally:
        if engine.paused:
            engine.resume()
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        engine.stop()


def wait_status(job, *names: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while job.status().code.name not in names:
        assert time.monotonic() < deadline, f"{job.status().code.name}, waited for {names}"
        time.sleep(0.1)


def fill_the_queue(url: str) -> list:
    """One run holding the (stopped) engine, one waiting for it."""
    running = submit(Client(url, verbose=False), "Count to three.", 8)
    wait_status(running, "PROCESSING", "ITERATING")
    waiting = submit(Client(url, verbose=False), "Count to four.", 8)
    wait_status(waiting, "IN_QUEUE")
    return [running, waiting]


def test_beyond_the_queue_visitors_get_our_busy_message_and_it_serves_again(crowded):
    engine, url = crowded
    engine.pause()
    jobs = fill_the_queue(url)
    with pytest.raises(Exception) as refused:  # gradio_client's ValidationError
        submit(Client(url, verbose=False), "One more question.", 8).result()
    message = str(refused.value)
    assert "The app is busy: 1 runs are already waiting" in message and "try again" in message
    assert "混雑しています" in message and "Queue is full" not in message
    engine.resume()
    assert all("✅ done" in job.result()[2] for job in jobs)  # the queued runs were kept
    assert "✅ done" in submit(Client(url, verbose=False), "One more question.", 8).result()[2]


# -- in the browser --------------------------------------------------------------------------------

@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


def test_generate_edit_regenerate_and_stop_in_the_browser(app, page):
    from playwright.sync_api import expect

    from test_browser import question, reasoning, response_text, set_max_new_tokens, wait_stats

    wait_ready(app)
    page.goto(app)
    expect(page.locator("#model-status")).to_contain_text("🟢", timeout=60_000)
    set_max_new_tokens(page, 48)
    question(page).fill(QUESTION)
    page.locator("#generate").click()
    first = wait_stats(page, "done", timeout=90_000)
    assert f"{SERVED_NAME} on llama-cpp-python server" in first
    assert reasoning(page).input_value().strip() and response_text(page)
    before = response_text(page)

    reasoning(page).fill(EDITED)
    page.locator("#regenerate").click()
    second = wait_stats(page, "done", previous=first, timeout=90_000)
    assert response_text(page) and response_text(page) != before
    assert reasoning(page).input_value() == EDITED

    set_max_new_tokens(page, 1500)
    question(page).fill("Write a very long story about a dragon.")
    page.locator("#generate").click()
    expect(page.locator("#reasoning textarea")).not_to_have_value("", timeout=60_000)
    page.locator("#stop").click()
    stopped = wait_stats(page, "stopped", previous=second, timeout=30_000)
    assert "llama-cpp-python server" in stopped


def test_a_full_queue_shows_our_busy_message_under_the_question_and_keeps_it(crowded, page):
    from playwright.sync_api import expect

    from test_browser import question

    engine, url = crowded
    page.goto(url)
    expect(page.locator("#model-status")).to_contain_text("🟢", timeout=60_000)
    engine.pause()
    jobs = fill_the_queue(url)
    try:
        question(page).fill("A question that must survive.")
        page.locator("#generate").click()
        expect(page.get_by_text("The app is busy: 1 runs are already waiting")).to_be_visible(
            timeout=30_000)
        assert question(page).input_value() == "A question that must survive."
        assert "currently busy" not in page.content()  # not Gradio's own toast
    finally:
        engine.resume()
    for job in jobs:
        job.result()
