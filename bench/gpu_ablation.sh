#!/usr/bin/env bash
# The ablation sweep on the GPU (issue 12): reuse against full re-encodes through the app's own
# Ablator, on a random-weight Qwen2.5-7B shape with the Unsloth backend (NF4), the default
# configuration (20 sentences of ~30 tokens) and the long-reasoning one (~80 tokens a sentence).
# Needs the carried .whl (with rapidfuzz, for the word diff) and .gpu_assets: bench/prepare_gpu_assets.sh.
#   run(command="bash bench/gpu_ablation.sh", carry=[".whl", ".gpu_assets"])
# At ~216 decode tok/s (docs/benchmarks.md, H100) a sweep of 21 x 128 tokens is ~15 s; the build of
# the 7B folder and the model load take most of the call.
source "$(dirname "$0")/gpu_env.sh"
build qwen2.5-7b; say built 7b
GPU=$(head -1 "$OUT/gpu.txt")
for cfg in default long; do
    extra=(); [ $cfg = long ] && extra=(--sentence-tokens 80)
    timeout 240 python3 bench/ablation_bench.py --backend unsloth --model /tmp/qwen2.5-7b --label qwen2.5-7b-random \
        --repeats 3 --machine "$GPU" --out "$OUT/gpu-ablation.jsonl" "${extra[@]}" > "$OUT/ablation-$cfg.log" 2>&1
    say "$cfg rc=$?"; tail -3 "$OUT/ablation-$cfg.log" | cut -c1-1500
done
