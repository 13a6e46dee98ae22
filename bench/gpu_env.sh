# Sourced by the GPU scripts (gpu_issue8.sh, gpu_session4.sh): from the repository root, the carried
# wheels installed to /tmp/site, the offline switches, $OUT made, the card named in $OUT/gpu.txt, and
# build NAME: a random-weight model of that shape in /tmp/NAME (bench/make_random_model.py).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-bench/results/tmp}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
build() { [ -f "/tmp/$1/config.json" ] || python3 bench/make_random_model.py --shape "$1" \
    --tokenizer .gpu_assets/smollm2-tokenizer --out "/tmp/$1" > "$OUT/build-$1.log" 2>&1 || exit 1; }
T0=$(date +%s)
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
# the 32B shape, quantized on the GPU as it is made (its bf16 folder would not fit the disk)
build32() { [ -f /tmp/qwen2.5-32b-nf4/config.json ] || timeout 200 python3 bench/make_random_model.py --shape qwen2.5-32b \
    --quantize nf4 --tokenizer .gpu_assets/smollm2-tokenizer --out /tmp/qwen2.5-32b-nf4 > "$OUT/build-32b.log" 2>&1 \
    || { say "build 32b failed"; tail -5 "$OUT/build-32b.log"; }; }
