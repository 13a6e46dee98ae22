"""Shared fixtures: the real engines on the embedded model, a scripted stand-in, launched apps.

The real model is the default everywhere; the scripted backend exists only where a test needs
exact text (markers split at chosen places, HTML in the output, a failure at token k).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
import threading
import time
from dataclasses import dataclass, field

import pytest
import torch

# Without a GPU, Triton kernels (the NF4 gemv) run in Triton's interpreter. It must be chosen before
# anything imports triton (bitsandbytes does), which jits its own library functions at import.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from bonsai_ui.engine import Engine, load_engine  # noqa: E402
from bonsai_ui.engine.protocol import worker_stream  # noqa: E402
from bonsai_ui.core.prompts import ChatTemplate  # noqa: E402
from bonsai_ui.core.settings import AppSettings, GenerationSettings, parse_app_settings  # noqa: E402

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def llama_engine() -> Engine:
    """The embedded model as ``python app.py`` loads it, with no options."""
    return load_engine(app_settings([]))


@pytest.fixture(scope="session")
def hf_engine() -> Engine:
    return load_engine(AppSettings(backend="transformers", context_length=4096))


@pytest.fixture(scope="session")
def static_engine(hf_engine) -> Engine:
    """The transformers backend with the static-cache decoder (the GPU's default loop, run eagerly
    on the CPU), sharing hf_engine's weights instead of loading them twice."""
    b = hf_engine.backend
    backend = type(b)(b.model, b.tokenizer, b.model_name, b.context_length, b.eos_token_ids)
    backend.use_decoder("static")
    return Engine(backend)


@pytest.fixture(params=["llama.cpp", "transformers", "static"])
def engine(request) -> Engine:
    """Every CPU decoding path, on the embedded SmolLM2-135M-Instruct."""
    names = {"llama.cpp": "llama_engine", "transformers": "hf_engine", "static": "static_engine"}
    return request.getfixturevalue(names[request.param])


@dataclass
class ScriptedBackend:
    """A stand-in model that writes given pieces, one per token, for UI mechanics needing exact text."""

    pieces: list[str] = field(default_factory=list)
    delay: float = 0.0
    fail_at: int | None = None  # raise RuntimeError when this token is reached
    name: str = "scripted"
    model_name: str = "scripted stand-in"
    context_length: int = 2048
    chat: ChatTemplate = field(default_factory=lambda: ChatTemplate(None))
    prompts: list[str] = field(default_factory=list)
    script: list[list[str]] | None = None  # one list of pieces per call, in order

    def count_tokens(self, prompt: str) -> int:
        return len(prompt.split())

    def stream(self, prompt: str, settings: GenerationSettings, cancel: threading.Event, session=""):
        self.prompts.append(prompt)
        pieces = self.script.pop(0) if self.script else self.pieces

        def work(emit):
            for i, piece in enumerate(pieces[: settings.max_new_tokens], start=1):
                if cancel.is_set():
                    return
                if self.fail_at == i:
                    raise RuntimeError(f"scripted failure at token {i}")
                time.sleep(self.delay)
                emit(piece, i)

        return worker_stream(work, cancel)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LaunchedApp:
    """The app exactly as ``python app.py ARGV`` composes it (``bonsai_ui.app.compose``), served on a
    free port, with ``engine`` as its model: the embedded model loaded once for the whole suite
    from the same options, or a stand-in where a test needs exact text. Nothing else differs from
    what a user launches.

    ``stored``: the history a browser without one finds (the BrowserState's default value), to
    open the page on a full history without running 200 generations first."""

    def __init__(self, engine: Engine, argv: list[str] = (), stored: dict | None = None,
                 port: int | None = None):
        import gradio as gr
        from bonsai_ui.workbench import actions as wb
        from bonsai_ui.app import compose  # gradio: not on the GPU box

        self.app = compose(app_settings([*argv, "--port", str(port or free_port())]))
        self.runner, self.demo, self.settings = self.app.runner, self.app.demo, self.app.settings
        if stored is not None:
            store, = (b for b in self.demo.blocks.values()
                      if isinstance(b, gr.BrowserState) and b.storage_key == wb.HISTORY_KEY)
            store.default_value = stored
        self.app.launch(quiet=True)
        self.app.load(engine)
        self.url = self.app.url

    def close(self):
        self.app.close()


def app_settings(argv: list[str]) -> AppSettings:
    """The settings ``python app.py ARGV`` runs with, in an environment that sets none."""
    return parse_app_settings(list(argv), environ={})


@pytest.fixture(scope="session")
def real_app(llama_engine):
    """The app on the embedded model (llama.cpp), as `python app.py` serves it."""
    app = LaunchedApp(llama_engine)
    yield app
    app.close()


@pytest.fixture
def scripted_app():
    """The app on a scripted backend; the test sets ``app.backend.script`` before acting."""
    backend = ScriptedBackend()
    app = LaunchedApp(Engine(backend))
    app.backend = backend
    yield app
    app.close()


@dataclass
class GatedBackend(ScriptedBackend):
    """The scripted stand-in whose runs wait at a gate before their first token: with one run at a
    time and one place in the queue, one run holds the model and one waits for as long as a test
    needs, so the queue is exactly full."""

    gate: threading.Event = field(default_factory=threading.Event)

    def stream(self, prompt, settings, cancel, session=""):
        inner = super().stream(prompt, settings, cancel, session)

        def gated():
            self.gate.wait(timeout=120)
            yield from inner
        return gated()


@pytest.fixture
def crowded_app():
    """An app with one run at a time and a queue of one (--queue-size 1), its queue filled by two
    /generate runs held at the gate: (app, backend, the two jobs). ``backend.gate.set()`` lets
    them go."""
    from gradio_client import Client
    from test_openai_app import wait_status

    backend = GatedBackend(pieces=["word "] * 4)
    app = LaunchedApp(Engine(backend), ["--queue-size", "1"])
    try:
        generate = ("A question", "", "vanilla", "alpaca", "", 4, 0.0, 0.95, 50, 1.1, 0)
        jobs = [Client(app.url, verbose=False).submit(*generate, api_name="/generate")]
        wait_status(jobs[0], "PROCESSING", "ITERATING")
        jobs.append(Client(app.url, verbose=False).submit(*generate, api_name="/generate"))
        wait_status(jobs[1], "IN_QUEUE")
        yield app, backend, jobs
    finally:
        backend.gate.set()
        app.close()


# -- the browser ---------------------------------------------------------------------------------

CHROMIUM = os.environ.get("BONSAI_CHROMIUM", "/usr/bin/chromium")  # Debian's; never a downloaded one
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
VIEWPORT = {"width": 1400, "height": 1000}
SCREENSHOTS = os.environ.get("BONSAI_SCREENSHOTS") == "1"  # README images, rewritten only on request
IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"


@pytest.fixture(scope="session")
def browser():
    """One Chromium for the whole run: Playwright's sync API allows one instance per thread."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (tests/run.sh installs Debian's chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# -- the app as a person launches it -------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


class ServedApp:
    """``python app.py ARGV`` in a process of its own, exactly as the README says to start it (the
    port aside: a free one), until ``close``. ``python_args`` go before ``app.py`` (``-c`` code that
    takes a library away, say)."""

    def __init__(self, argv: list[str] = (), python_args: list[str] = (), timeout: float = 120):
        import subprocess
        import sys

        import httpx

        port = free_port()
        self.url = f"http://127.0.0.1:{port}/"
        self.log = ROOT / "test-artifacts" / f"app-{port}.log"
        self.log.parent.mkdir(exist_ok=True)
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen([sys.executable, *python_args, "app.py", *argv, "--port", str(port)],
                                            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:  # the page is served first; the model loads behind it
            if self.process.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.process.returncode}:\n{self.output()}")
            if "ready in" in self.output():
                try:
                    httpx.get(self.url, timeout=5).raise_for_status()
                    break
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                self.close()
                raise TimeoutError(f"app.py did not serve a loaded model in {timeout:.0f} s:\n{self.output()}")
            time.sleep(0.25)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except Exception:  # noqa: BLE001 - it must not outlive the test
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def served_app():
    """``python app.py`` with no options: what a person who follows the README gets."""
    app = ServedApp()
    yield app
    app.close()
