#!/usr/bin/env bash
# On the GPU machine (no network; prepare .whl and .gpu_assets here first with
# bench/prepare_gpu_assets.sh): install the carried wheels, build random-weight models of real
# shapes, run the GPU tests, and benchmark. Results land in $OUT (the device tool) or bench/results.
#   bash bench/gpu_check.sh tests                      # tests/test_gpu.py on a Qwen2.5-0.5B shape
#   bash bench/gpu_check.sh bench SHAPE CONFIG...      # e.g. bench qwen2.5-7b unsloth-4bit transformers-bf16
#   bash bench/gpu_check.sh probe SHAPE                # where the time to first token goes
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

build() {  # build SHAPE once into /tmp
    [ -f "/tmp/$1/config.json" ] || python3 bench/make_random_model.py --shape "$1" \
        --tokenizer .gpu_assets/smollm2-tokenizer --out "/tmp/$1" || exit 1
}

case "${1:-tests}" in
tests)
    build qwen2.5-0.5b
    BONSAI_GPU_MODEL=/tmp/qwen2.5-0.5b python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py \
        2>&1 | tee "$OUT/gpu_tests.log"
    ;;
bench)
    shape=$2; shift 2
    build "$shape"
    for config in "$@"; do
        timeout 400 python3 bench/bench.py --config "$config" --model "/tmp/$shape" --label "$shape" \
            --started-at "$(date +%s.%N)" --out "$OUT/gpu_results.jsonl" ${BENCH_ARGS:-} 2>&1 \
            | grep '^{' | tail -n 1
    done
    ;;
probe)  # where the time to first token goes (bench/ttft_probe.py)
    build "$2"
    timeout 300 python3 bench/ttft_probe.py --model "/tmp/$2" 2>&1 | grep -v -i warn | tee "$OUT/ttft_probe_$2.txt"
    ;;
esac
