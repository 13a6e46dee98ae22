#!/usr/bin/env bash
# Prepares, on this CPU machine (it reaches PyPI), everything `bench/gpu.sh` needs on a lent GPU
# machine, which reaches no network. Two git-ignored folders, to be named in the device run's carry:
#   .whl/         Python 3.12 wheels missing there: unsloth & co. (slimmed to ~10 MiB), gguf,
#                 pytest, rapidfuzz (the word diff the ablation sweep measures its responses with)
#   .gpu_assets/  smollm2-tokenizer/   SmolLM2's real tokenizer, exported from the embedded GGUF;
#                                      random-weight models of real shapes are built with it there
#                                      (bench/make_random_model.py)
#                 llama.cpp-src.tar.xz the llama.cpp sources that the pinned llama-cpp-python sdist
#                                      vendors, less docs, vocabularies and the server's web UI
#                                      (~6 MB): the `peer` suite builds llama-bench and
#                                      llama-quantize from them with CUDA
#                 build-tools/         the cmake and ninja wheels that build needs (~30 MB)
# Together they stay under the 64 MiB a device run can carry. Run time: 1-3 minutes.
#
# usage: bash bench/prepare_gpu_assets.sh [PYTHON_WITH_TRANSFORMERS]   (default .venv/bin/python,
#        else /work/main/.venv/bin/python); SLIM=path/to/slim_wheels.py to override the slimmer.
# then:  run(command="bash bench/gpu.sh SUITE...", carry=[".whl", ".gpu_assets"])
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
[ -x "$PY" ] || PY=/work/main/.venv/bin/python
SLIM=${SLIM:-../shared/gpu/slim_wheels.py}
mkdir -p .whl .gpu_assets/build-tools
dl() {  # DIR PACKAGE==VERSION...: wheels for CPython 3.12 on x86_64 Linux, what the GPU machine runs
    local dir=$1; shift
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_31_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$dir" "$@"
}
dl .whl unsloth==2026.10.9 unsloth_zoo==2026.10.9 bitsandbytes==0.50.2 trl==1.15.0 datasets==4.8.5 \
   multiprocess==0.70.19 dill==0.4.1 gguf==0.19.0 pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 \
   rapidfuzz==3.14.6 llguidance==1.9.1
if [ -f "$SLIM" ]; then  # drop the parts never loaded on a CUDA 13 box (unsloth's studio app, other CUDA libs)
    for w in .whl/unsloth-2026.10.9-*.whl .whl/bitsandbytes-*.whl; do
        python3 "$SLIM" "$w" /tmp/slim && mv "/tmp/slim/$(basename "$w")" "$w"
    done
fi
dl .gpu_assets/build-tools cmake==4.4.5 ninja==1.13.2

PYTHONPATH=. "$PY" - <<'PY'
from pathlib import Path
from transformers import AutoTokenizer
from bonsai_ui.engine.source import embedded_gguf
gguf = embedded_gguf()
tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
tok.eos_token = "<|im_end|>"  # transformers' GGUF conversion picks <|im_start|>
tok.clean_up_tokenization_spaces = False
tok.save_pretrained(".gpu_assets/smollm2-tokenizer")
print("tokenizer:", len(tok), "tokens, eos", tok.eos_token)
PY

# llama.cpp as the installed llama-cpp-python vendors it: the same sources the CPU engine runs
if [ ! -f .gpu_assets/llama.cpp-src.tar.xz ]; then
    VERSION=$("$PY" -c "import llama_cpp; print(llama_cpp.__version__)")
    tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$tmp"
    tar xzf "$tmp/llama_cpp_python-$VERSION.tar.gz" -C "$tmp"
    src="$tmp/llama_cpp_python-$VERSION/vendor/llama.cpp"
    # not needed for llama-bench and llama-quantize (the server and its web UI are not built)
    rm -rf "$src/docs" "$src/models" "$src/media" "$src/.github" "$src/benches" "$src/tools/ui"
    echo "$VERSION" > "$src/LLAMA_CPP_PYTHON_VERSION"
    tar cJf .gpu_assets/llama.cpp-src.tar.xz -C "$(dirname "$src")" llama.cpp
    rm -rf "$tmp"
fi
du -sh .whl .gpu_assets .gpu_assets/*
