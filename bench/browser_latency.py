"""How soon does the page show streamed text, and does that grow with the length of the text?

A scripted backend writes 4,000 pieces; each carries the wall-clock millisecond at which it was
emitted ("⟨1732556412345⟩"). In headless Chromium, a MutationObserver on the Response pane notes
when each stamp first appears. Latency = shown − emitted, which includes the app's batching
(~15 updates/s), Gradio's transport and the browser's rendering. Reported per 500-piece window, so
growth with the length of the output shows. Needs Debian's Chromium (/usr/bin/chromium) and
Playwright, as the browser tests do. ~1 minute.

usage: python bench/browser_latency.py [--pieces 4000] [--rate 200] [--out FILE]
Results: bench/results/browser-latency-*.json; docs/benchmarks.md, "The page".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("BONSAI_MAX_NEW_TOKENS", "4096")  # the page's default, so no slider to drag

from conftest import LaunchedApp, ScriptedBackend  # noqa: E402

from bonsai_ui.engine import Engine  # noqa: E402
from bonsai_ui.engine.protocol import worker_stream  # noqa: E402

OBSERVER = """
() => {
  window.__seen = {};
  const re = /⟨(\\d+)⟩/g;
  const box = document.querySelector('#response-box');
  new MutationObserver(() => {
    const now = Date.now();
    for (const m of box.innerText.matchAll(re)) if (!(m[1] in window.__seen)) window.__seen[m[1]] = now;
  }).observe(box, {childList: true, subtree: true, characterData: true});
}
"""


class StampingBackend(ScriptedBackend):
    """Writes ``n`` pieces at ``rate`` per second, each stamped with its emission time."""

    def __init__(self, n: int, rate: float):
        super().__init__()
        self.n, self.rate = n, rate

    def stream(self, prompt, settings, cancel, session=""):
        def work(emit):
            for i in range(1, self.n + 1):
                if cancel.is_set():
                    return
                time.sleep(1 / self.rate)
                emit(f" ⟨{int(time.time() * 1000)}⟩", i)

        return worker_stream(work, cancel)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pieces", type=int, default=4000)
    ap.add_argument("--rate", type=float, default=200.0, help="pieces per second")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "tmp" / "browser-latency.json"))
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    backend = StampingBackend(args.pieces, args.rate)
    backend.context_length = 10**6
    app = LaunchedApp(Engine(backend))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                              "--disable-component-update", "--no-first-run"])
            page = browser.new_page()
            page.goto(app.url)
            page.locator("#question textarea").fill("latency")
            page.locator("#mode").get_by_text("vanilla", exact=False).first.click()
            page.evaluate(OBSERVER)
            page.locator("#generate").click()
            page.wait_for_function("() => document.querySelector('#stats').innerText.includes('done')",
                                   timeout=(args.pieces / args.rate + 60) * 1000)
            seen = page.evaluate("() => window.__seen")
            browser.close()
    finally:
        app.close()
    lat = sorted((int(shown) - int(stamp), int(stamp)) for stamp, shown in seen.items())
    by_time = sorted(lat, key=lambda x: x[1])
    windows = []
    for start in range(0, len(by_time), 500):
        chunk = [d for d, _ in by_time[start:start + 500]]
        windows.append({"pieces": f"{start + 1}-{start + len(chunk)}",
                        "p50_ms": statistics.median(chunk),
                        "p95_ms": sorted(chunk)[int(0.95 * (len(chunk) - 1))]})
    all_ms = [d for d, _ in lat]
    result = {"machine": f"{platform.node()} {platform.machine()}", "when": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
              "pieces": args.pieces,
              "seen": len(all_ms), "rate_per_s": args.rate,
              "p50_ms": statistics.median(all_ms), "p95_ms": all_ms[int(0.95 * (len(all_ms) - 1))],
              "windows": windows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
