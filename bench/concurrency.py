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

Also ``--soak N``: N short sessions through gradio_client (1 new token each; ``--soak-users``
clients at once, each starting a new session for every run, as a new visitor would), the app's
resident memory sampled along the way: per-session state must not grow with sessions. The engine is
llama-server where a binary is at hand (it serves the clients at once), else llama-cpp-python's
server. ``--soak-minutes`` stops it early, saying how far it came.

Each row records the load average and the CPU seconds of the engine, the app and the clients: on
a shared 2-core machine run it alone (``flock /tmp/bonsai-bench.lock``). The llama-server binary:
``bash bench/build_llama_server.sh`` (or ``BONSAI_LLAMA_SERVER=PATH``). ~3 minutes for the three
targets; the 10,000-session soak ~40 minutes.

usage: python bench/concurrency.py --targets llama-server in-process lcpp-server \
           --llama-server /path/to/llama-server --out bench/results/tmp/concurrency.jsonl
       python bench/concurrency.py --soak 10000 --soak-users 4 --llama-server /path/to/llama-server \
           --llama-server-args "-t 1 --poll 0" --out bench/results/tmp/soak-sessions.jsonl
Results: bench/results/concurrency-*.jsonl, soak-sessions-*.jsonl; docs/benchmarks.md, "Many users
at once" and "Sessions and memory".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
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

from llama_server import LlamaCppServer, LlamaServer, free_port, llama_server_binary  # noqa: E402

NEW_TOKENS = 128
QUESTION = "Write a long story, at least ten paragraphs, about a dragon who learns to count pears."
USERS = (1, 4, 8, 16)
START_TIMEOUT_S = 180.0
# llama-server's threads (after its own -t 2, one per core) and polling: see docs/benchmarks.md,
# "Many users at once", for the choice measured here.
SERVER_ARGS = ("-t", "2")


def start_app(args: list[str]) -> tuple[subprocess.Popen, str]:
    """``python app.py ARGS`` on a free port; returns once the model is ready."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), *args],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/"
    _wait_healthy(url, proc)
    one_user(url, max_new_tokens=4)  # waits for the model (the page is served before it loads)
    return proc, url


def one_user(url: str, max_new_tokens: int = NEW_TOKENS, question: str = QUESTION,
             client=None) -> dict:
    from gradio_client import Client

    client = client or Client(url, verbose=False)
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


def cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system, all threads) a process has used: ``pid``'s, else this one's."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def batch(url: str, users: int, pids: dict[str, int | None] | None = None) -> dict:
    """``pids``: the processes whose CPU time the batch is charged with (app, engine; the
    clients are this process)."""
    pids = {"clients": None, **(pids or {})}
    cpu_before = {name: cpu_s(pid) for name, pid in pids.items()}
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
    cpu = {name: round(cpu_s(pid) - cpu_before[name], 2) for name, pid in pids.items()}
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
            "totals_s": [round(r["total_s"], 2) for r in ok], "cpu_s": cpu}


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


def soak(url: str, pid: int, sessions: int, users: int, minutes: float, emit) -> None:
    from gradio_client import Client

    done, errors, samples = [0], [0], []
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + minutes * 60 if minutes else float("inf")
    every = max(sessions // 20, 1)

    def sample():
        samples.append((done[0], round(rss_mb(pid), 1)))
        emit({"soak_sessions": done[0], "app_rss_mb": samples[-1][1], "errors": errors[0],
              "elapsed_s": round(time.perf_counter() - started, 1), "load_avg": os.getloadavg()})

    def user():
        client = Client(url, verbose=False)
        while True:
            with lock:
                if done[0] + errors[0] >= sessions or time.perf_counter() > deadline:
                    return
                i = done[0] + errors[0]
            client.reset_session()  # a new session hash: to the app, a new visitor
            r = one_user(url, max_new_tokens=1, question=f"Say one word ({i}).", client=client)
            with lock:
                if "error" in r:
                    errors[0] += 1
                    emit({"soak_error": r["error"], "session": i})
                else:
                    done[0] += 1
                if done[0] % every == 0:
                    sample()

    sample()
    threads = [threading.Thread(target=user) for _ in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sample()
    emit({"soak_done": done[0], "asked": sessions, "errors": errors[0],
          "stopped_early": done[0] + errors[0] < sessions, "users": users,
          "wall_s": round(time.perf_counter() - started, 1), "rss_mb": samples})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", nargs="*", default=["in-process", "lcpp-server"])
    ap.add_argument("--llama-server", help="path of a llama-server binary (target llama-server)")
    ap.add_argument("--llama-server-args", default=" ".join(SERVER_ARGS),
                    help="llama-server's threads and polling (default: %(default)s)")
    ap.add_argument("--users", nargs="*", type=int, default=list(USERS))
    ap.add_argument("--soak", type=int, default=0, help="sessions of the soak")
    ap.add_argument("--soak-users", type=int, default=4, help="soak clients at once")
    ap.add_argument("--soak-minutes", type=float, default=0, help="stop the soak after this long")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
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
            binary = args.llama_server or llama_server_binary()
            if not binary:
                raise SystemExit("target llama-server: give --llama-server PATH or set "
                                 "BONSAI_LLAMA_SERVER (bash bench/build_llama_server.sh builds it)")
            # 16 slots of 1,024 tokens each (a prompt here is ~60, plus 128 new); batching is on.
            engine = LlamaCppServer(binary, parallel=max(args.users), n_ctx=1024,
                                    extra=shlex.split(args.llama_server_args)).start()
            emit({"llama_server_args": engine.command()[1:]})
            app_args = ["--backend", "openai", "--endpoint", engine.url,
                        "--parallel", str(max(args.users))]
        else:
            raise SystemExit(f"unknown target {target}")
        app, url = start_app(app_args)
        try:
            for users in args.users:
                pids = {"app": app.pid, "engine": engine.process.pid if engine else None}
                emit({"target": target, **batch(url, users, {k: v for k, v in pids.items() if v}),
                      "load_avg": os.getloadavg()})
        finally:
            app.terminate()
            app.wait()
            if engine is not None:
                engine.stop()
    if args.soak:
        binary = args.llama_server or llama_server_binary()
        engine = (LlamaCppServer(binary, parallel=args.soak_users, extra=shlex.split(args.llama_server_args))
                  if binary else LlamaServer()).start()
        emit({"soak_engine": engine.NAME})
        app, url = start_app(["--backend", "openai", "--endpoint", engine.url,
                              "--context-length", "2048", "--parallel", str(args.soak_users)])
        try:
            soak(url, app.pid, args.soak, args.soak_users, args.soak_minutes, emit)
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


if __name__ == "__main__":
    main()
