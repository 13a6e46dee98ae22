"""Real engines on a loopback port, serving the embedded GGUF, for ``--backend openai`` in the
tests and the benchmark: the app talks HTTP to them exactly as it would to vLLM on a GPU box.

``LlamaServer``: llama-cpp-python's own OpenAI-compatible server (always installed: the tests'
engine). ``--interrupt_requests False``: by default that server cuts a streaming request short as
soon as another one arrives, which would make concurrent sessions cut each other off.

``LlamaCppServer``: llama.cpp's own ``llama-server``, the batching engine (parallel slots,
continuous batching), where a binary is at hand: ``$BONSAI_LLAMA_SERVER``, else ``llama-server`` on
the PATH (``bash bench/build_llama_server.sh`` builds one from the sources llama-cpp-python
vendors). Tests that need it are skipped without it; the same items stay covered through
``LlamaServer``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bonsai_ui.engine.source import embedded_gguf

SERVED_NAME = "smollm2-135m"
N_CTX = 2048  # the server's context; it does not report it, so the app is told --context-length
START_TIMEOUT_S = 120.0  # a cold start on 2 busy cores: import FastAPI + load 100 MB of GGUF


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def llama_server_binary() -> str | None:
    """llama.cpp's llama-server: ``$BONSAI_LLAMA_SERVER``, else ``llama-server`` on the PATH."""
    path = os.environ.get("BONSAI_LLAMA_SERVER") or shutil.which("llama-server")
    return path if path and os.access(path, os.X_OK) else None


class LlamaServer:
    NAME = "llama_cpp.server"

    def __init__(self, port: int | None = None, n_ctx: int = N_CTX, threads: int | None = None,
                 log: Path | None = None, api_key: str | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.n_ctx = n_ctx
        self.threads = threads or os.cpu_count() or 2
        self.log = log
        self.api_key = api_key
        self.process: subprocess.Popen | None = None
        self.paused = False

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_gguf()),
               "--model_alias", SERVED_NAME, "--host", "127.0.0.1", "--port", str(self.port),
               "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads),
               "--interrupt_requests", "False", "--verbose", "False"]
        return cmd + (["--api_key", self.api_key] if self.api_key else [])

    def start(self) -> "LlamaServer":
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.NAME} exited with {self.process.returncode}")
            try:
                headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
                if httpx.get(self.url + "/v1/models", headers=headers, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{self.NAME} did not answer on {self.url} in {START_TIMEOUT_S:.0f} s")

    def kill(self) -> None:
        """SIGKILL: the engine dies mid-whatever, as a crashed or OOM-killed server would."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)  # a stalled engine: connected, silent
        self.paused = True

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


class LlamaCppServer(LlamaServer):
    """llama.cpp's llama-server with ``parallel`` slots of ``n_ctx`` tokens each (continuous
    batching is on by default), serving the embedded GGUF under the same name."""

    NAME = "llama-server"

    def __init__(self, binary: str, parallel: int = 4, extra: tuple[str, ...] = (), **kw):
        super().__init__(**kw)
        self.binary, self.parallel, self.extra = binary, parallel, tuple(extra)

    def command(self) -> list[str]:
        # -c is the whole KV cache, shared by the slots: each slot gets n_ctx, as /props reports.
        cmd = [self.binary, "-m", str(embedded_gguf()), "--alias", SERVED_NAME,
               "--host", "127.0.0.1", "--port", str(self.port), "-np", str(self.parallel),
               "-c", str(self.n_ctx * self.parallel), "-t", str(self.threads), *self.extra]
        return cmd + (["--api-key", self.api_key] if self.api_key else [])
