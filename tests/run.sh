#!/usr/bin/env bash
# Sets up everything the tests need, then runs them: a virtual environment (.venv, or $VENV), the
# Python packages, and Debian's Chromium for the browser tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

if ! command -v chromium >/dev/null 2>&1; then
    echo "== installing Debian's chromium for the browser tests"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    python3 -m venv "$VENV"
fi
echo "== installing requirements (the first time builds llama-cpp-python: about 10 minutes on 2 cores)"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r requirements-test.txt

# pip keeps one built wheel per source release whatever its build options, so a llama-cpp-python
# built earlier for this machine's own CPU would be reused: rebuild it with the pinned set if so.
if [ "$(uname -m)" = x86_64 ] && ! "$VENV/bin/python" -c "import sys, llama_cpp
from bonsai_ui.engine.llamacpp_backend import cpu_features, is_pinned
sys.exit(not is_pinned(cpu_features(llama_cpp.llama_print_system_info().decode())))"; then
    echo "== rebuilding llama-cpp-python with the pinned instruction set (requirements-cpu.txt)"
    pinned=$(mktemp)
    grep '^llama-cpp-python' requirements-cpu.txt >"$pinned"
    "$VENV/bin/python" -m pip install -q --no-cache-dir --force-reinstall --no-deps -r "$pinned"
    rm -f "$pinned"
fi

echo "== running the tests"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
exec "$VENV/bin/python" -m pytest "$@"
