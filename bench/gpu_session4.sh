#!/usr/bin/env bash
# GPU runs of session 4 (issues 8 and 11), one lease a stage; every log and JSON line under $OUT.
#   bash bench/gpu_session4.sh call1   # 7B: final code vs the code before (same lease), profile,
#                                      # 7B seeded repeat, 32B built pre-quantized + benched
#   bash bench/gpu_session4.sh call2   # the fused step: repeats on every static path, GPU tests, 7B speed
#   bash bench/gpu_session4.sh call3   # 32B end to end, the NF4 kernel per shape, 7B speed, sampling profile
#   bash bench/gpu_session4.sh call4   # sampling after the host-wait fix
# Needs the carried .whl and .gpu_assets (bench/prepare_gpu_assets.sh); .baseline/ as gpu_issue8.sh.
source "$(dirname "$0")/gpu_env.sh"
B7="python3 bench/bench.py --config unsloth-4bit --model /tmp/qwen2.5-7b --label qwen2.5-7b --prompt-tokens 1271"
case "$1" in
call1)
    build qwen2.5-7b; say built 7b
    timeout 150 $B7 --skip static,plain --reuse-lengths 2000 --out "$OUT/speed.jsonl" > "$OUT/speed-new.log" 2>&1; say new; tail -1 "$OUT/speed-new.log" | cut -c1-600
    (cd .baseline && timeout 80 python3 bench/bench.py --config unsloth-4bit --model /tmp/qwen2.5-7b --label qwen2.5-7b-before \
        --prompt-tokens 1271 --skip static,plain,ceiling,sampling,reuse --out "$OUT/speed.jsonl" > "$OUT/speed-old.log" 2>&1); say old; grep decode_tok_s "$OUT/speed-old.log" | tail -1 | cut -c1-600
    timeout 60 python3 bench/profile_step.py --model /tmp/qwen2.5-7b --label qwen2.5-7b --out "$OUT/profile.jsonl" > "$OUT/profile-bnb.log" 2>&1; say profile
    timeout 60 python3 bench/profile_step.py --model /tmp/qwen2.5-7b --label qwen2.5-7b --nf4-kernel on --out "$OUT/profile.jsonl" > "$OUT/profile-nf4.log" 2>&1; say profile nf4
    timeout 200 python3 bench/repeat_check.py --model /tmp/qwen2.5-7b --label qwen2.5-7b --config unsloth-4bit \
        --decoders static --modes seeded,page-defaults --out "$OUT/repeat.jsonl" > "$OUT/r-7b-seeded.log" 2>&1 &
    timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_nf4_gpu.py > "$OUT/nf4_gpu_tests.log" 2>&1 &
    build32; say built 32b; tail -2 "$OUT/build-32b.log"
    wait; say repeat done; tail -3 "$OUT/nf4_gpu_tests.log"
    timeout 240 python3 bench/bench.py --config unsloth-4bit --model /tmp/qwen2.5-32b-nf4 --label qwen2.5-32b --prompt-tokens 1271 \
        --new-tokens 128 --skip static,sampling --reuse-lengths 2000 --started-at "$(date +%s.%N)" \
        --out "$OUT/speed-32b.jsonl" > "$OUT/speed-32b.log" 2>&1; say 32b; tail -1 "$OUT/speed-32b.log" | cut -c1-1500 ;;
call2)  # the fused decode step: every static path identical? GPU tests; 7B speed vs the code before
    build qwen2.5-0.5b; build qwen2.5-7b; say built
    M=/tmp/qwen2.5-0.5b; R="python3 bench/repeat_check.py --label qwen2.5-0.5b --decoders static --out $OUT/repeat.jsonl"
    BONSAI_GPU_MODEL=$M timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py > "$OUT/gpu_tests.log" 2>&1 &
    timeout 240 $R --model $M --config unsloth-4bit --modes greedy,seeded,seeded-top-p > "$OUT/r-unsloth.log" 2>&1 &
    timeout 240 $R --model $M --config transformers-bf16 --modes greedy,seeded > "$OUT/r-bf16.log" 2>&1 &
    timeout 240 $R --model $M --config transformers-nf4 --modes greedy,seeded > "$OUT/r-nf4.log" 2>&1 &
    timeout 240 python3 bench/repeat_check.py --model /tmp/qwen2.5-7b --label qwen2.5-7b --config unsloth-4bit \
        --decoders static --modes greedy,seeded --out "$OUT/repeat.jsonl" > "$OUT/r-7b.log" 2>&1 &
    wait; say correctness done; grep -h '"identical"' "$OUT"/r-*.log | cut -c1-220; tail -12 "$OUT/gpu_tests.log"
    timeout 110 $B7 --skip static,plain --reuse-lengths 2000 --out "$OUT/speed.jsonl" > "$OUT/speed-new.log" 2>&1; say new; tail -1 "$OUT/speed-new.log" | cut -c1-2500
    (cd .baseline && timeout 60 python3 bench/bench.py --config unsloth-4bit --model /tmp/qwen2.5-7b --label qwen2.5-7b-before \
        --prompt-tokens 1271 --skip static,plain,ceiling,sampling,reuse --out "$OUT/speed.jsonl" > "$OUT/speed-old.log" 2>&1); say old; grep -o '"stream": {[^}]*}' "$OUT/speed-old.log" | tail -1
    timeout 50 python3 bench/profile_step.py --model /tmp/qwen2.5-7b --label qwen2.5-7b --out "$OUT/profile.jsonl" > "$OUT/profile.log" 2>&1; say profile; head -14 "$OUT/profile.log" ;;
call3)  # 32B end to end with the fused step (cold start, first request, decode, the seed's generate,
    # regenerate, peak memory, ceiling); the NF4 Triton kernel per layer shape; 7B vs the code before
    build qwen2.5-7b & build32; wait; say built
    timeout 150 python3 bench/nf4_bench.py "$OUT/nf4_bench.jsonl" > "$OUT/nf4_bench.log" 2>&1; say nf4 bench; tail -4 "$OUT/nf4_bench.log" | cut -c1-600
    S32="python3 bench/bench.py --config unsloth-4bit --model /tmp/qwen2.5-32b-nf4 --label qwen2.5-32b --prompt-tokens 1271 --new-tokens 128"
    timeout 170 $S32 --skip static,sampling --reuse-lengths 2000 --started-at "$(date +%s.%N)" --out "$OUT/speed-32b.jsonl" > "$OUT/speed-32b.log" 2>&1
    say 32b; tail -1 "$OUT/speed-32b.log" | cut -c1-2500
    timeout 70 $S32 --skip static,sampling,plain,reuse,ceiling --decode-kernels off --out "$OUT/speed-32b.jsonl" > "$OUT/speed-32b-off.log" 2>&1
    say 32b off; grep -o '"stream": {[^}]*}' "$OUT/speed-32b-off.log" | tail -1
    timeout 80 $B7 --skip static,plain,reuse --out "$OUT/speed.jsonl" > "$OUT/speed-new.log" 2>&1; say 7b new; grep -o '"stream": {[^}]*}\|"sampling_decode_tok_s": {.*}}' "$OUT/speed-new.log" | tail -2
    (cd .baseline && timeout 60 python3 bench/bench.py --config unsloth-4bit --model /tmp/qwen2.5-7b --label qwen2.5-7b-before \
        --prompt-tokens 1271 --skip static,plain,ceiling,sampling,reuse --out "$OUT/speed.jsonl" > "$OUT/speed-old.log" 2>&1); say old; grep -o '"stream": {[^}]*}' "$OUT/speed-old.log" | tail -1
    timeout 50 python3 bench/profile_step.py --model /tmp/qwen2.5-7b --label qwen2.5-7b --out "$OUT/profile.jsonl" > "$OUT/profile.log" 2>&1; say profile
    python3 -c "import json;r=json.loads(open('$OUT/profile.jsonl').readline());print(json.dumps(r['sampling_page_sampled']))" ;;
call4)  # sampling after the host-sync fix: the sampling section alone, 7B
    build qwen2.5-7b; say built
    timeout 100 $B7 --skip static,plain,reuse,ceiling --out "$OUT/speed.jsonl" > "$OUT/speed-sampling.log" 2>&1; say 7b; grep -o '"stream": {[^}]*}\|"sampling_decode_tok_s": {.*}}' "$OUT/speed-sampling.log" | tail -2 ;;
esac
say end
tar czf /tmp/results.tgz -C "$OUT" . && rm -rf "$OUT"/* && mv /tmp/results.tgz "$OUT"/
