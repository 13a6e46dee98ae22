"""Does every workbench click answer at once with a full history? (issue 14)

200 attempts whose reasoning and response are ~3,000 tokens each (bench/long_history.py), English
or Japanese, are put in the page as if read from the browser's storage. Then, in Chromium, 20
clicks each of ★, ✗, save note, ↩ restore and a new Compare pick (and of a click that starts no
event: the method's floor). Latency is measured in the page:
from the click's mousedown (a capturing listener) to the first animation frame in which the change
shows (polled every frame), so it includes the server, Gradio's transport and the rendering.
Server figures: the server's CPU time across each click (``server_cpu``: every thread of this
process but the main one, where this script's Playwright client runs; read from the kernel's
per-thread schedstat, in nanoseconds), the whole process's (``cpu``: server and client; Chromium
is apart), and Gradio's process_api wall time per event (preprocess, function, postprocess), by
function name. Chromium's figures: its page's main thread per click (CDP
Performance metrics: all tasks, and their script, style and layout parts), median. A finished run is recorded 5 times at 200 attempts.

usage: python bench/workbench_latency.py [--lang en|ja|both] [--clicks 20] [--kinds star,note,...]
                                        [--out bench/results/workbench_latency.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from long_history import ROOT, make_history  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, LaunchedApp, ScriptedBackend  # noqa: E402

import gradio as gr  # noqa: E402

from bonsai_ui import diffing, workbench as wb  # noqa: E402
from bonsai_ui.engine import Engine  # noqa: E402
from bonsai_ui.ui import settle  # noqa: E402

# Arms a watcher: t0 at the next mousedown anywhere (capturing, so before the page's handlers),
# then polls once per animation frame until ``until`` holds; resolves to the milliseconds between.
ARM = """([until, arg, limit]) => {
  const check = new Function('arg', 'return (' + until + ')');
  window.__t0 = null;
  document.addEventListener('mousedown', () => { window.__t0 = performance.now(); },
                            {capture: true, once: true});
  window.__watch = new Promise((resolve) => {
    const started = performance.now();
    const poll = () => {
      let ok = false;
      try { ok = window.__t0 !== null && check(arg); } catch (e) {}
      if (ok) return resolve(performance.now() - window.__t0);
      if (performance.now() - started > limit) return resolve(-1);
      requestAnimationFrame(poll);
    };
    requestAnimationFrame(poll);
  });
}"""
KINDS = ("no-op click", "star", "reject", "note", "restore", "compare pick", "record")
LIMIT_MS = 120_000  # before this work a star took 15 s at this size
SHOWN_PAIR = ("document.querySelector('#compare-summary').innerText.trim() === arg[0] && "
              "['reasoning', 'response'].every((part, i) => document.querySelectorAll("
              "`#diff-${part} ins, #diff-${part} del`).length === arg[i + 1])")
CELL = "document.querySelector(`#attempts [data-testid=cell-${arg[0]}-${arg[1]}]`).innerText.trim() === arg[2]"


class Timed:
    """Gradio's process_api wall time per event, by function name."""

    def __init__(self, demo: gr.Blocks):
        self.ms: dict[str, list[float]] = defaultdict(list)
        original = demo.process_api

        async def process_api(block_fn, *args, **kwargs):
            start = time.perf_counter()
            try:
                return await original(block_fn, *args, **kwargs)
            finally:
                fn = demo.fns[block_fn] if isinstance(block_fn, int) else block_fn
                self.ms[fn.name].append((time.perf_counter() - start) * 1000)

        demo.process_api = process_api


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1)


# Chromium's own accounting of the page's main thread (CDP Performance.getMetrics, seconds):
# all its tasks, and the script, style and layout parts of them.
MAIN_THREAD = {"TaskDuration": "main_ms", "ScriptDuration": "script_ms", "RecalcStyleDuration": "style_ms",
               "LayoutDuration": "layout_ms"}


def main_thread(cdp) -> dict[str, float]:
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return {key: metrics[name] * 1000 for name, key in MAIN_THREAD.items()}


def server_cpu_ms() -> float:
    """CPU time of every thread of this process but the main one (the server's: uvicorn's loop,
    Gradio's and anyio's workers), from /proc/self/task/*/schedstat (ns on the CPU)."""
    main = threading.main_thread().native_id
    total = 0
    for task in Path("/proc/self/task").iterdir():
        if int(task.name) == main:
            continue
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):  # a thread that ended meanwhile
            continue
    return total / 1e6


def measure(page, click, until: str, arg, cdp) -> tuple[float, float, dict, float]:
    """(latency ms in the page, process CPU ms, main-thread ms, server CPU ms) of one click; the
    CPU and main-thread figures run until the event's last messages have settled (50 ms after the
    change shows)."""
    page.evaluate(ARM, [until, arg, LIMIT_MS])
    before = main_thread(cdp)
    cpu, server = time.process_time(), server_cpu_ms()
    click()
    latency = page.evaluate("() => window.__watch")
    if latency < 0:
        raise RuntimeError(f"the page never showed it: {until} {arg!r:.200}")
    page.wait_for_timeout(50)  # let the event's last messages settle before the next click
    cpu, server = (time.process_time() - cpu) * 1000, server_cpu_ms() - server
    after = main_thread(cdp)
    return latency, cpu, {key: after[key] - before[key] for key in after}, server


def bench_language(browser, lang: str, clicks: int, kinds: set[str]) -> dict:
    history = make_history(lang=lang)
    backend = ScriptedBackend()
    backend.context_length = 10**6  # restored attempts carry max new tokens 3,072
    for attempt in range(3):  # Gradio's start-up check of localhost times out when the cores are busy
        try:
            app = LaunchedApp(Engine(backend), stored=history.to_data())
            break
        except ValueError:
            if attempt == 2:
                raise
    settle()  # as app.py does once the server runs and the model is loaded
    timed = Timed(app.demo)
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    results: dict[str, dict] = {}
    try:
        page.goto(app.url)
        page.locator("#model-status").filter(has_text="🟢").wait_for(timeout=60_000)
        page.locator("#all-questions input").check()
        page.locator("#attempts [data-testid=cell-0-1]").wait_for(timeout=60_000)
        newest = history.attempts[::-1]

        def run_clicks(name, one):
            if name not in kinds:
                return
            lat, cpu, server, chromium = [], [], [], defaultdict(list)
            for i in range(clicks):
                a, b, c, d = one(i)
                lat.append(a)
                cpu.append(b)
                server.append(d)
                for key, value in c.items():
                    chromium[key].append(value)
            results[name] = {"p50_ms": round(statistics.median(lat), 1), "p95_ms": p95(lat),
                             "max_ms": round(max(lat), 1), "cpu_p50_ms": round(statistics.median(cpu), 1),
                             "cpu_p95_ms": p95(cpu), "server_cpu_p50_ms": round(statistics.median(server), 1),
                             "server_cpu_p95_ms": p95(server),
                             "chromium_p50_ms": {k: round(statistics.median(v), 1) for k, v in chromium.items()}}
            print(lang, name, results[name], flush=True)

        def toggle(col, on, off):
            def one(i):
                row = i % 5
                cell = page.locator(f"#attempts [data-testid=cell-{row}-{col}]")
                want = off if cell.inner_text().strip() == on else on
                return measure(page, cell.click, CELL, [row, col, want], cdp)
            return one

        # The method's floor: a click on text that starts no event, seen at the next frame; its CPU
        # is this script's Playwright client alone (the server does nothing).
        run_clicks("no-op click", lambda i: measure(page, page.locator("#model-status").click, "true", None, cdp))
        run_clicks("star", toggle(1, "★", "☆"))
        run_clicks("reject", toggle(2, "✗", "·"))

        def note(i):
            row = i % 5
            page.locator(f"#attempts [data-testid=cell-{row}-6]").click()
            page.locator("#note").filter(has_text=f"Note on attempt #{len(newest) - row}").wait_for()
            text = f"note {i} メモ"
            page.locator("#note textarea, #note input").first.fill(text)
            return measure(page, page.locator("#save-note").click, CELL, [row, 8, text], cdp)

        run_clicks("note", note)

        def restore(i):
            row = i % 5  # a row other than the last click's: the stats line changes
            attempt = newest[row]
            until = ("document.querySelector('#stats').innerText.includes(`attempt #${arg[0]} restored`) && "
                     "document.querySelector('#reasoning textarea').value === arg[1]")
            return measure(page, page.locator(f"#attempts [data-testid=cell-{row}-0]").click, until,
                           [len(newest) - row, attempt.reasoning], cdp)

        run_clicks("restore", restore)

        if "compare pick" in kinds:
            page.get_by_role("tab", name="Compare").click()
            page.locator("#compare-summary").filter(has_text="A → B").wait_for(timeout=30_000)
        summary = page.locator("#compare-summary")

        def pick(i):
            # B stays the newest attempt; A goes back one attempt a click: each pick is a new pair
            # (one whose summary differs from the one shown, so that the change can be seen).
            number = len(newest) - 2 - i
            while (expected := wb.compare(history, history.attempts[number - 1].id, newest[0].id)[0]) \
                    == summary.inner_text().strip():
                number -= 1
            # Shown: the new summary and both diffs in the page, as many marked spans as segments.
            _, diff_r, diff_a = wb.compare(history, history.attempts[number - 1].id, newest[0].id)
            marked = [sum(1 for _, tag in diff if tag) for diff in (diff_r, diff_a)]
            # the app shares this process: its pick must diff, and cut both texts into tokens, not
            # hit what this script's compare() left in the caches
            wb._diff.cache_clear()
            diffing.forget_cuts()
            page.locator("#compare-a input").click()
            option = page.get_by_role("option").filter(has_text=f"#{number} ·").first
            return measure(page, option.click, SHOWN_PAIR, [expected, *marked], cdp)

        run_clicks("compare pick", pick)

        page.get_by_role("tab", name="Attempts").click()
        if "record" not in kinds:
            return results
        before = len(timed.ms["record"])
        page.locator("#question textarea").fill("record")
        page.locator("#mode input[value=reasoning]").check()
        for i in range(5):
            backend.script = [[f"Reasoning {i}.", "\n### Response:\n", f"Answer {i}."]]
            page.locator("#generate").click()
            page.wait_for_function(f"() => document.querySelector('#attempts [data-testid=cell-0-6]')"
                                   f".innerText.trim() === 'Reasoning {i}.'", timeout=30_000)
        record = timed.ms["record"][before:]
        results["record"] = {"server_ms": [round(x, 1) for x in record], "max_ms": round(max(record), 1)}
        print(lang, "record", results["record"], flush=True)
    finally:
        results["server_ms_by_event"] = {name: {"n": len(v), "p50": round(statistics.median(v), 1),
                                                "p95": p95(v)} for name, v in timed.ms.items()}
        print(lang, "server_ms_by_event", results["server_ms_by_event"], flush=True)
        context.close()
        app.close()
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lang", choices=["en", "ja", "both"], default="both")
    ap.add_argument("--clicks", type=int, default=20)
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"a comma-separated choice of {', '.join(KINDS)}")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "workbench_latency.json"))
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    out = {"machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} vCPU",
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                    text=True).stdout.strip(),
           "started_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
           "attempts": 200, "tokens_each": 3000, "clicks": args.clicks, "results": {}}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for lang in (["en", "ja"] if args.lang == "both" else [args.lang]):
            load = os.getloadavg()[0]
            out["results"][lang] = bench_language(browser, lang, args.clicks, set(args.kinds.split(",")))
            # Other work shares this machine's 2 cores: the load average says how much.
            out["results"][lang]["load_average_1min"] = [round(load, 1), round(os.getloadavg()[0], 1)]
        browser.close()
    Path(args.out).write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
