#!/usr/bin/env bash
# llama.cpp's own llama-server (parallel slots, continuous batching), built from the llama.cpp
# sources that the pinned llama-cpp-python vendors, for the batching row of bench/concurrency.py
# and the llama-server tests (tests/llama_server.py finds it through BONSAI_LLAMA_SERVER).
#
# Only the server's own code is compiled (llama-common, the server, cpp-httplib: ~75 files); the
# model code and the kernels (libllama, libggml*, libmtmd: ~120 more files) are the shared libraries
# llama-cpp-python built from the very same sources and installed in the venv. Why: a full build
# needs over an hour on 2 busy cores, and linking the same
# libraries means all three rows of the benchmark run the same kernels, so the rows differ only in
# how requests are served. The binary finds the libraries through its rpath.
#
# usage: bash bench/build_llama_server.sh [WORK_DIR] [OUT_BINARY]
#   defaults: /tmp/llama_server_build  /work/notes/llama-server
# Run time: ~30 minutes on 2 cores (CPU). Not a benchmark itself: its binary serves the llama-server
# rows of docs/benchmarks.md, "Many users at once" and "Sessions and memory".
set -euo pipefail

WORK=${1:-/tmp/llama_server_build}
OUT=${2:-/work/notes/llama-server}
PY=${PYTHON:-$(dirname "$0")/../.venv/bin/python}
[ -x "$PY" ] || PY=/work/main/.venv/bin/python
VERSION=$("$PY" -c "import llama_cpp; print(llama_cpp.__version__)")
LIB=$("$PY" -c "import llama_cpp, pathlib; print(pathlib.Path(llama_cpp.__file__).parent / 'lib')")
JOBS=${JOBS:-2}

mkdir -p "$WORK"
cd "$WORK"
if [ ! -d "llama_cpp_python-$VERSION" ]; then
  "$PY" -m pip download "llama-cpp-python==$VERSION" --no-binary :all: --no-deps -d . -q
  tar xzf "llama_cpp_python-$VERSION.tar.gz"
fi
SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
BUILD="$SRC/build"

# Configure only: compile_commands.json gives each file's exact compiler command. No web UI (it
# would be downloaded from a Hugging Face bucket or built with npm); the server answers the API.
nice -n 19 cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
  -DLLAMA_BUILD_SERVER=ON -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF >/dev/null
nice -n 19 cmake --build "$BUILD" --target llama-ui-assets vendor-hash cpp-httplib -j"$JOBS"

# Every object of the server's own targets, compiled with the command CMake wrote for it.
"$PY" - "$BUILD" > "$WORK/compile.sh" <<'EOF'
import json, shlex, sys
build = sys.argv[1]
mine = ("/common/", "/tools/server/", "/tools/ui/ui.cpp", "/build-info.cpp")
for c in json.load(open(f"{build}/compile_commands.json")):
    if any(k in c["file"] for k in mine) and "/tools/mtmd/" not in c["file"]:
        out = c["command"].split(" -o ", 1)[1].split()[0]
        print(f"cd {shlex.quote(c['directory'])} && [ -s {out} ] || {c['command']}")
EOF
tr '\n' '\0' < "$WORK/compile.sh" | nice -n 19 xargs -0 -P"$JOBS" -I{} bash -c '{}'

objects() { find "$BUILD/$1" -name '*.o' | sort; }
nice -n 19 c++ -O3 -o "$OUT" \
  $(objects tools/server/CMakeFiles) $(objects common/CMakeFiles) $(objects tools/ui/CMakeFiles) \
  "$BUILD/vendor/hash/libvendor-hash.a" "$BUILD/vendor/cpp-httplib/libcpp-httplib.a" \
  -L"$LIB" -lmtmd -lllama -lggml -lggml-cpu -lggml-base -Wl,-rpath,"$LIB" -ldl -lpthread
"$OUT" --version
echo "built $OUT (llama.cpp vendored by llama-cpp-python $VERSION, libraries from $LIB)"
