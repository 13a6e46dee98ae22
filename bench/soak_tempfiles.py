"""Soak: do 1,000 uploads and 1,000 exports keep the temporary folder bounded?

The app runs with a temporary folder of its own (GRADIO_TEMP_DIR), on the scripted stand-in of
the tests (no run is made: the model plays no part in temporary files). Each
step makes one upload over plain HTTP (``/gradio_api/upload``, as a script with no page would:
a distinct 20 kB file, so each gets a folder of its own) and one export by clicking Export in
headless Chromium (two files, Alpaca and chat, of a 50-attempt history of ~2 kB attempts). Every
``--sample`` steps it counts the folder's files, bytes and folders; after the last step it waits
``max-age + 2 × every`` seconds and counts again.

usage: python bench/soak_tempfiles.py [--steps 1000] [--max-age 10] [--every 2] [--out FILE]
Run once with a short max-age (cleanup visible within the soak) and once with cleanup held off
(``--max-age 100000``) for the unbounded growth it prevents.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, LaunchedApp, ScriptedBackend  # noqa: E402

from bonsai_ui.engine import Engine  # noqa: E402


def folder_stats(folder: Path) -> dict:
    files = dirs = size = 0
    for _, subdirs, names in os.walk(folder):
        dirs += len(subdirs)
        for name in names:
            files += 1
            try:
                size += (Path(_) / name).stat().st_size
            except OSError:
                pass
    return {"files": files, "folders": dirs, "bytes": size}


def history_file(directory: Path) -> Path:
    row = {"instruction": "Question {n}: Jack has {n} pears and eats {m}. How many are left?",
           "input": "", "reasoning": "Step: Jack counts his pears one by one. " * 50, "output": "None."}
    lines = [json.dumps({k: v.format(n=n, m=n + 1) for k, v in row.items()}) for n in range(50)]
    path = directory / "history.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--max-age", type=int, default=10)
    parser.add_argument("--every", type=int, default=2)
    parser.add_argument("--sample", type=int, default=50)
    parser.add_argument("--label", default="", help="what this run is (e.g. the code measured)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/soak_tempfiles.jsonl")
    args = parser.parse_args()

    from playwright.sync_api import expect, sync_playwright

    work = Path(tempfile.mkdtemp(prefix="bonsai-soak-"))
    folder = work / "gradio"
    os.environ["GRADIO_TEMP_DIR"] = str(folder)  # read by Gradio when the app is made
    app = LaunchedApp(Engine(ScriptedBackend()), ["--temp-max-age", str(args.max_age),
                                                  "--temp-cleanup-every", str(args.every)])
    samples, started = [], time.perf_counter()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.goto(app.url)
            expect(page.locator("#model-status")).to_contain_text("🟢", timeout=60_000)
            page.get_by_role("tab", name="Export / import").click()
            with page.expect_file_chooser() as chooser:
                page.locator("#import").click()
            chooser.value.set_files(history_file(work))
            expect(page.locator("#workbench-message")).to_contain_text("Imported 50", timeout=30_000)
            link = page.locator('#export-files a[download^="bonsai-alpaca-"]')
            previous = None
            for step in range(1, args.steps + 1):
                response = httpx.post(f"{app.url}gradio_api/upload", timeout=60,
                                      files={"files": (f"upload-{step}.jsonl", os.urandom(10_000).hex())})
                response.raise_for_status()
                page.locator("#export").click()
                page.wait_for_function(  # the new export's link points into a new folder
                    "([sel, old]) => { const a = document.querySelector(sel);"
                    " return a && a.getAttribute('href') !== old; }",
                    arg=['#export-files a[download^="bonsai-alpaca-"]', previous], timeout=30_000)
                previous = link.get_attribute("href")
                if step % args.sample == 0 or step == args.steps:
                    samples.append({"step": step, "s": round(time.perf_counter() - started, 1),
                                    **folder_stats(folder)})
                    print(json.dumps(samples[-1]), flush=True)
            browser.close()
        soak_s = time.perf_counter() - started
        time.sleep(args.max_age + 2 * args.every + 1)
        after = folder_stats(folder)
    finally:
        app.close()
    result = {"bench": "soak_tempfiles", "label": args.label, "steps": args.steps, "max_age_s": args.max_age,
              "every_s": args.every, "soak_s": round(soak_s, 1),
              "steps_per_s": round(args.steps / soak_s, 2), "samples": samples,
              "peak": {k: max(s[k] for s in samples) for k in ("files", "folders", "bytes")},
              "after_wait": after, "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs, Python {platform.python_version()}"}
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}))
    with args.out.open("a", encoding="utf-8") as out:
        out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
