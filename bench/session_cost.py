"""What a new visitor's session costs the server: Gradio's SessionState for this page, made by
Gradio's own eager copy of every block's config and by the lazy copy the app installs
(bonsai_ui/ui/gradio_sessions.py). CPU time and traced memory a session, 200 sessions each, on the
page as ``python app.py`` builds it (``bonsai_ui.app.compose``). ~30 seconds.

usage: python bench/session_cost.py [--out FILE]
Results: bench/results/session-cost-*.json; docs/benchmarks.md, "Sessions and memory".
"""

from __future__ import annotations

import json
import os
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N = 200


def measure(make) -> dict:
    started = time.process_time()
    for _ in range(N):
        make()
    cpu_ms = (time.process_time() - started) / N * 1000
    tracemalloc.start()
    kept = [make() for _ in range(N)]
    memory, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return {"cpu_ms": round(cpu_ms, 3), "kB": round(memory / N / 1024, 1)}


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="", help="also write the JSON object here")
    args = ap.parse_args()
    from gradio.state_holder import SessionState

    from bonsai_ui.app import compose
    from bonsai_ui.core.settings import parse_app_settings
    from bonsai_ui.ui import gradio_sessions

    demo = compose(parse_app_settings([])).demo  # the page python app.py serves

    def eager():
        state = SessionState.__new__(SessionState)
        gradio_sessions.EAGER["init"](state, demo)
        return state

    result = json.dumps({"blocks": len(demo.blocks), "load_avg": os.getloadavg(),
                         "gradio_eager": measure(eager), "lazy": measure(lambda: SessionState(demo))})
    print(result)
    if args.out:
        Path(args.out).write_text(result + "\n")


if __name__ == "__main__":
    main()
