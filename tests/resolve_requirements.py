"""Every requirements file resolves from PyPI alone, as a newcomer's pip sees it: no pip
configuration, no local wheel folder (``PIP_CONFIG_FILE=/dev/null``, ``PIP_FIND_LINKS`` unset), and
the CPU quick start brings no torch and no CUDA packages. Run by .ci/run before the tests:

    python tests/resolve_requirements.py

It asks PyPI for metadata only (``pip install --dry-run``): about a minute, nothing installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ("requirements-cpu.txt", "requirements-torch.txt", "requirements-test.txt", "requirements.txt")
# What the embedded app must not download: the transformers stack and the CUDA libraries under it.
NOT_IN_CPU_SET = ("torch", "transformers", "triton", "nvidia-", "cuda-", "accelerate", "bitsandbytes", "unsloth")


def resolve(name: str) -> list[str]:
    """The packages pip would install for ``name`` in an empty environment, as name==version."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                               "--quiet", "--report", str(report), "-r", name],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{name} does not resolve from PyPI alone:\n{done.stderr[-3000:]}")
        items = json.loads(report.read_text())["install"]
    return sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in items)


def main() -> int:
    failed = 0
    for name in FILES:
        packages = resolve(name)
        print(f"{name}: {len(packages)} packages from PyPI", flush=True)
        if name == "requirements-cpu.txt":
            heavy = [p for p in packages if p.lower().startswith(NOT_IN_CPU_SET)]
            if heavy:
                print(f"  the CPU quick start would install {', '.join(heavy)}", file=sys.stderr)
                failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
