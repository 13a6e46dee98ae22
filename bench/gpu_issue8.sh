#!/usr/bin/env bash
# The GPU runs behind docs/benchmarks.md's "Same input, same tokens" section (issue 8), in one lease:
#   bash bench/gpu_issue8.sh repeat    # 0.5B: every CUDA path, 1,000 tokens, identical? (+ probe)
#   bash bench/gpu_issue8.sh speed     # 7B: decode, sampling, regenerate; the code before (.baseline)
# Needs the carried .whl and .gpu_assets (bench/prepare_gpu_assets.sh); .baseline/ holds the code
# before issue 8 (git archive 644f2c8 bonsai_ui bench | tar -x -C .baseline) with this bench.py.
source "$(dirname "$0")/gpu_env.sh"
case "$1" in
repeat)
    build qwen2.5-0.5b; M=/tmp/qwen2.5-0.5b
    R="timeout 430 python3 bench/repeat_check.py --model $M --label qwen2.5-0.5b --out $OUT/repeat.jsonl"
    $R --config unsloth-4bit > "$OUT/r-unsloth.log" 2>&1 &
    $R --config transformers-bf16 > "$OUT/r-bf16.log" 2>&1 &
    $R --config transformers-nf4 --nf4-kernel off > "$OUT/r-nf4.log" 2>&1 &
    timeout 200 python3 bench/determinism_probe.py --out "$OUT/probe.jsonl" > "$OUT/probe.log" 2>&1
    wait ;;
speed)
    build qwen2.5-0.5b
    for flag in "" --no-cudnn; do  # the code before: identical runs, with and without cuDNN's attention
        timeout 120 python3 bench/old_path_ablation.py --root .baseline --model /tmp/qwen2.5-0.5b $flag \
            --out "$OUT/ablation.jsonl" > "$OUT/ablation$flag.log" 2>&1 &
    done
    timeout 200 python3 bench/repeat_check.py --config transformers-bf16 --model /tmp/qwen2.5-0.5b \
        --decoders static --modes seeded-top-p --out "$OUT/repeat.jsonl" > "$OUT/r-top-p.log" 2>&1 &
    timeout 100 python3 bench/determinism_probe.py --out "$OUT/probe.jsonl" > "$OUT/probe.log" 2>&1 &
    build qwen2.5-7b; wait; M=/tmp/qwen2.5-7b
    B="timeout 200 python3 bench/bench.py --config unsloth-4bit --model $M --label qwen2.5-7b --prompt-tokens 1271"
    $B --skip static --reuse-lengths 2000 --out "$OUT/speed.jsonl" > "$OUT/speed-new.log" 2>&1
    $B --skip static,plain,reuse,ceiling --nf4-kernel off --out "$OUT/speed.jsonl" > "$OUT/speed-nf4off.log" 2>&1
    (cd .baseline && timeout 150 python3 bench/bench.py --config unsloth-4bit --model $M --label qwen2.5-7b-before \
        --prompt-tokens 1271 --skip static,plain,reuse,ceiling --out "$OUT/speed.jsonl" > "$OUT/speed-old.log" 2>&1) ;;
verify)  # after the attention change: every static path again, the 7B shape, the GPU tests, speed
    build qwen2.5-0.5b; M=/tmp/qwen2.5-0.5b
    R="python3 bench/repeat_check.py --model $M --label qwen2.5-0.5b --out $OUT/repeat.jsonl"
    timeout 300 $R --config unsloth-4bit --decoders static --modes greedy,seeded,seeded-top-p > "$OUT/v-unsloth.log" 2>&1 &
    timeout 300 $R --config transformers-bf16 --decoders static > "$OUT/v-bf16.log" 2>&1 &
    timeout 300 $R --config transformers-nf4 --decoders static --modes greedy > "$OUT/v-nf4.log" 2>&1 &
    timeout 300 $R --config unsloth-4bit --decoders generate --modes seeded > "$OUT/v-unsloth-gen.log" 2>&1 &
    BONSAI_GPU_MODEL=$M timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py > "$OUT/gpu_tests.log" 2>&1 &
    build qwen2.5-7b
    timeout 260 python3 bench/repeat_check.py --model /tmp/qwen2.5-7b --label qwen2.5-7b --config unsloth-4bit \
        --decoders static --out "$OUT/repeat.jsonl" > "$OUT/v-7b.log" 2>&1
    wait; M=/tmp/qwen2.5-7b
    B="timeout 150 python3 bench/bench.py --config unsloth-4bit --model $M --label qwen2.5-7b --prompt-tokens 1271"
    $B --skip static,plain --reuse-lengths 2000 --out "$OUT/speed.jsonl" > "$OUT/speed-new.log" 2>&1
    (cd .baseline && timeout 100 python3 bench/bench.py --config unsloth-4bit --model $M --label qwen2.5-7b-before \
        --prompt-tokens 1271 --skip static,plain,ceiling --reuse-lengths 2000 --out "$OUT/speed.jsonl" > "$OUT/speed-old.log" 2>&1)
    $B --skip static,plain,reuse,ceiling,sampling --nf4-kernel on --out "$OUT/speed.jsonl" > "$OUT/speed-nf4on.log" 2>&1 ;;
final)  # attention written out (StaticDecoder._attention): every static path, 7B, speed before/after
    build qwen2.5-0.5b; M=/tmp/qwen2.5-0.5b
    R="python3 bench/repeat_check.py --model $M --label qwen2.5-0.5b --decoders static --out $OUT/repeat.jsonl"
    timeout 240 $R --config unsloth-4bit --modes greedy,seeded,seeded-top-p > "$OUT/f-unsloth.log" 2>&1 &
    timeout 240 $R --config transformers-bf16 --modes greedy,seeded > "$OUT/f-bf16.log" 2>&1 &
    timeout 240 $R --config transformers-nf4 --modes greedy,seeded > "$OUT/f-nf4.log" 2>&1 &
    BONSAI_GPU_MODEL=$M timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py \
        -k "unsloth_engine-seeded or unsloth_engine-greedy or full_re_encode or graphed" > "$OUT/gpu_tests.log" 2>&1 &
    build qwen2.5-7b
    timeout 200 python3 bench/repeat_check.py --model /tmp/qwen2.5-7b --label qwen2.5-7b --config unsloth-4bit \
        --decoders static --out "$OUT/repeat.jsonl" > "$OUT/f-7b.log" 2>&1
    wait; M=/tmp/qwen2.5-7b
    timeout 130 python3 bench/bench.py --config unsloth-4bit --model $M --label qwen2.5-7b --prompt-tokens 1271 \
        --skip static,plain --reuse-lengths 2000 --out "$OUT/speed.jsonl" > "$OUT/speed-new.log" 2>&1
    (cd .baseline && timeout 80 python3 bench/bench.py --config unsloth-4bit --model $M --label qwen2.5-7b-before \
        --prompt-tokens 1271 --skip static,plain,ceiling,sampling,reuse --out "$OUT/speed.jsonl" > "$OUT/speed-old.log" 2>&1) ;;
esac
