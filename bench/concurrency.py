"""Many users at once: 1, 4, 8, 16 concurrent gradio_client users, each asking for 128 new tokens.

Three ways to serve the embedded SmolLM2-135M (Q4_1 GGUF), each behind the real app (Gradio queue,
runs, stats) on loopback:
  in-process   the default: llama.cpp inside the app, one run at a time;
  lcpp-server  app --backend openai → llama-cpp-python's server (one request at a time);
  llama-server app --backend openai → llama.cpp's llama-server with parallel slots and continuous
               batching (``--llama-server PATH``; built from the sources llama-cpp-python vendors).

Per user: time to first token (submit → first update with response text, as the client sees it),
tokens/s after the first token (from the run's own stats line: N new tokens); per batch: total
tokens/s (all users' tokens ÷ the batch's wall time) and errors. Each user is its own session
(its own Client). The prompt asks for a long story so that every run writes its 128 tokens;
the stats line reports what was actually generated.

Also ``--soak N``: N short sessions one after another through gradio_client (1 new token each),
the app's resident memory sampled along the way: per-session state must not grow with sessions.

usage: python bench/concurrency.py --targets in-process lcpp-server llama-server \
           --llama-server /path/to/llama-server --out bench/results/cpu-concurrency.jsonl
       python bench/concurrency.py --soak 2000 --out bench/results/cpu-soak.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from llama_server import LlamaServer, free_port  # noqa: E402

NEW_TOKENS = 128
QUESTION = "Write a long story about a dragon who learns to count pears."
USERS = (1, 4, 8, 16)
START_TIMEOUT_S = 180.0


def start_app(args: list[str]) -> tuple[subprocess.Popen, str]:
    """``python app.py ARGS`` on a free port; returns once the model is ready."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), *args],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/"
    _wait_healthy(url, proc)
    one_user(url, max_new_tokens=4)  # waits for the model (the page is served before it loads)
    return proc, url


def one_user(url: str, max_new_tokens: int = NEW_TOKENS, question: str = QUESTION) -> dict:
    from gradio_client import Client

    client = Client(url, verbose=False)
    started = time.perf_counter()
    first = None
    for attempt in range(600):  # the model may still be loading: the app says so, try again
        try:
            job = client.submit(question, "", "vanilla", "alpaca", "", max_new_tokens, 0.0, 0.95,
                                50, 1.1, 0, api_name="/generate")
            for update in job:
                if first is None and update[1]:
                    first = time.perf_counter()
            reasoning, response, stats, prompt = job.result()
            break
        except Exception as error:  # noqa: BLE001 - loading: retried; anything else: reported
            if "still loading" not in str(error) or attempt == 599:
                return {"error": f"{type(error).__name__}: {error}"[:300]}
            time.sleep(0.5)
            started = time.perf_counter()
    ended = time.perf_counter()
    tokens = int(re.search(r"(\d+) new tokens", stats).group(1))
    first = first or ended
    return {"ttft_s": first - started, "total_s": ended - started, "tokens": tokens,
            "tps": (tokens - 1) / (ended - first) if ended > first and tokens > 1 else None}


def batch(url: str, users: int) -> dict:
    results: list[dict] = [{} for _ in range(users)]

    def run(i):
        results[i] = one_user(url, question=f"{QUESTION} (reader {i})")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(users)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ok = [r for r in results if "error" not in r]
    ttfts = sorted(r["ttft_s"] for r in ok)

    def pct(p):
        return ttfts[min(len(ttfts) - 1, round(p * (len(ttfts) - 1)))] if ttfts else None

    tps = [r["tps"] for r in ok if r["tps"]]
    return {"users": users, "errors": users - len(ok),
            "error_samples": [r["error"] for r in results if "error" in r][:3],
            "ttft_p50_s": pct(0.5), "ttft_p95_s": pct(0.95),
            "tps_per_user_median": statistics.median(tps) if tps else None,
            "tokens": sum(r["tokens"] for r in ok), "wall_s": wall,
            "total_tps": sum(r["tokens"] for r in ok) / wall,
            "totals_s": [round(r["total_s"], 2) for r in ok]}


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "load_avg": os.getloadavg()}


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def soak(url: str, pid: int, sessions: int, emit) -> None:
    samples = []
    for i in range(sessions):
        r = one_user(url, max_new_tokens=1, question=f"Say one word ({i}).")
        if "error" in r:
            emit({"soak_error": r["error"], "session": i})
        if i % max(sessions // 10, 1) == 0 or i == sessions - 1:
            samples.append((i + 1, round(rss_mb(pid), 1)))
            emit({"soak_sessions": i + 1, "app_rss_mb": samples[-1][1]})
    emit({"soak_done": sessions, "rss_mb": samples})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", nargs="*", default=["in-process", "lcpp-server"])
    ap.add_argument("--llama-server", help="path of a llama-server binary (target llama-server)")
    ap.add_argument("--users", nargs="*", type=int, default=list(USERS))
    ap.add_argument("--soak", type=int, default=0, help="sessions of the soak (app → lcpp-server)")
    ap.add_argument("--out")
    args = ap.parse_args()
    out = open(args.out, "a") if args.out else None

    def emit(record):
        line = json.dumps(record, ensure_ascii=False)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    emit({"machine": machine(), "new_tokens": NEW_TOKENS, "when": time.strftime("%Y-%m-%d %H:%M")})
    for target in ([] if args.soak else args.targets):
        engine = None
        if target == "in-process":
            app_args = ["--backend", "llama.cpp"]
        elif target == "lcpp-server":
            engine = LlamaServer(n_ctx=4096).start()
            app_args = ["--backend", "openai", "--endpoint", engine.url, "--context-length", "4096",
                        "--parallel", "16"]
        elif target == "llama-server":
            port = free_port()
            # 16 slots of 1,024 tokens each in one unified KV cache; continuous batching is on.
            engine = subprocess.Popen([args.llama_server, "-m", str(_gguf()), "--port", str(port),
                                       "--host", "127.0.0.1", "-np", "16", "-c", "16384",
                                       "-t", str(os.cpu_count())],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait_healthy(f"http://127.0.0.1:{port}/health")
            app_args = ["--backend", "openai", "--endpoint", f"http://127.0.0.1:{port}",
                        "--parallel", "16"]
        else:
            raise SystemExit(f"unknown target {target}")
        app, url = start_app(app_args)
        try:
            for users in args.users:
                emit({"target": target, **batch(url, users), "load_avg": os.getloadavg()})
        finally:
            app.terminate()
            app.wait()
            if isinstance(engine, LlamaServer):
                engine.stop()
            elif engine is not None:
                engine.terminate()
                engine.wait()
    if args.soak:
        engine = LlamaServer().start()
        app, url = start_app(["--backend", "openai", "--endpoint", engine.url,
                              "--context-length", "2048"])
        try:
            soak(url, app.pid, args.soak, emit)
        finally:
            app.terminate()
            app.wait()
            engine.stop()


def _wait_healthy(url: str, proc: subprocess.Popen | None = None) -> None:
    import httpx

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"app exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not become healthy")


def _gguf():
    from bonsai_ui.engine.source import embedded_gguf

    return embedded_gguf()


if __name__ == "__main__":
    main()
