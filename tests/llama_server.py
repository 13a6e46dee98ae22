"""llama-cpp-python's own OpenAI-compatible server on a loopback port, serving the embedded GGUF.

A real engine for ``--backend openai`` in the tests and the benchmark: the app talks HTTP to it
exactly as it would to vLLM or llama-server on a GPU box. ``--interrupt_requests False``: by
default that server cuts a streaming request short as soon as another one arrives, which would make
concurrent sessions cut each other off.
"""

from __future__ import annotations

import os
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


class LlamaServer:
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

    def start(self) -> "LlamaServer":
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_gguf()),
               "--model_alias", SERVED_NAME, "--host", "127.0.0.1", "--port", str(self.port),
               "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads),
               "--interrupt_requests", "False", "--verbose", "False"]
        if self.api_key:
            cmd += ["--api_key", self.api_key]
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.process.returncode}")
            try:
                headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
                if httpx.get(self.url + "/v1/models", headers=headers, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer on {self.url} in {START_TIMEOUT_S:.0f} s")

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
