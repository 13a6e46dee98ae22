#!/usr/bin/env bash
# GPU runs of session 5 (issue 11: the PTX table-lookup NF4 kernel), every log and JSON under $OUT.
#   bash bench/gpu_session5.sh call1   # kernel tests, per-shape bench (7B, 32B), 7B decode on/off,
#                                      # 7B repeats with the kernel, step profile
#   bash bench/gpu_session5.sh call2   # the same after the rule change and the prefetch, 7B repeats
#   bash bench/gpu_session5.sh call3   # 32B end to end with the kernel on and off
# Needs the carried .whl and .gpu_assets (bench/prepare_gpu_assets.sh).
source "$(dirname "$0")/gpu_env.sh"
B7="python3 bench/bench.py --config unsloth-4bit --model /tmp/qwen2.5-7b --label qwen2.5-7b --prompt-tokens 1271"
case "$1" in
call1|call2)  # call1 ran this before the rule change (K tile 256, 2 programs an SM) and the prefetch
    timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_nf4_gpu.py > "$OUT/nf4_gpu_tests.log" 2>&1 &
    build qwen2.5-7b; say built 7b
    wait; say tests; tail -4 "$OUT/nf4_gpu_tests.log" | cut -c1-400
    timeout 120 python3 bench/nf4_bench.py "$OUT/nf4_bench.jsonl" > "$OUT/nf4_bench.log" 2>&1; say nf4 bench; cut -c1-330 "$OUT/nf4_bench.log"
    for k in on off; do
        timeout 75 $B7 --nf4-kernel $k --skip static,plain,ceiling,sampling,reuse --out "$OUT/speed.jsonl" > "$OUT/speed-$k.log" 2>&1
        say "7b nf4 $k"; grep -o '"stream": {[^}]*}' "$OUT/speed-$k.log" | tail -1 | cut -c1-400
    done
    timeout 150 python3 bench/repeat_check.py --model /tmp/qwen2.5-7b --label qwen2.5-7b --config unsloth-4bit --nf4-kernel on \
        --decoders static --modes greedy,seeded --out "$OUT/repeat.jsonl" > "$OUT/r-7b-nf4.log" 2>&1; say repeat; grep -h identical "$OUT/r-7b-nf4.log" | tail -2 | cut -c1-300 ;;
call3)  # 32B end to end with the kernel on and off
    build32; say built 32b
    S32="python3 bench/bench.py --config unsloth-4bit --model /tmp/qwen2.5-32b-nf4 --label qwen2.5-32b --prompt-tokens 1271 --new-tokens 128"
    timeout 200 $S32 --nf4-kernel on --skip static,sampling,reuse --started-at "$(date +%s.%N)" --out "$OUT/speed-32b.jsonl" > "$OUT/speed-32b-on.log" 2>&1
    say 32b on; tail -1 "$OUT/speed-32b-on.log" | cut -c1-2500
    timeout 80 $S32 --skip static,sampling,plain,reuse,ceiling --out "$OUT/speed-32b.jsonl" > "$OUT/speed-32b-off.log" 2>&1
    say 32b off; grep -o '"stream": {[^}]*}' "$OUT/speed-32b-off.log" | tail -1 ;;
call4)  # what holds the kernel: Nsight Compute on the 7B gate shape, ours and bitsandbytes'
    NCU=$(ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1); say "ncu: ${NCU:-none}"
    S="--section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats --section MemoryWorkloadAnalysis --section SchedulerStats"
    timeout 200 $NCU --target-processes all -k regex:'nf4_gemv' --launch-skip 3 --launch-count 1 $S python3 bench/nf4_ncu.py 18944 3584 > "$OUT/ncu-ours.txt" 2>&1; say ours
    grep -iE "Duration|Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Limit|Stall|Warp Cycles|Issued Warp|No Eligible|Active Warps|Eligible Warps|Shared Memory Config|Dynamic Shared|Static Shared" "$OUT/ncu-ours.txt" | head -40
    timeout 200 $NCU --target-processes all -k regex:'gemm_4bit|gemv_4bit|kgemm' --launch-skip 3 --launch-count 1 $S python3 bench/nf4_ncu.py 18944 3584 > "$OUT/ncu-bnb.txt" 2>&1; say bnb
    grep -iE "Duration|Throughput|Achieved Occupancy|Registers Per|Stall|Warp Cycles|Issued Warp|No Eligible|Eligible Warps" "$OUT/ncu-bnb.txt" | head -20
    tail -30 "$OUT/ncu-ours.txt" | cut -c1-250 ;;
call5)  # registers (occupancy) and warps: Nsight showed 35 % issue, 5 blocks an SM (96 registers)
    timeout 240 env NF4_BENCH_MODELS=qwen2.5-7b python3 bench/nf4_bench.py "$OUT/nf4_bench.jsonl" > "$OUT/nf4_bench.log" 2>&1; say nf4 bench; cut -c1-330 "$OUT/nf4_bench.log"
    python3 - "$OUT/nf4_bench.jsonl" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if "sweep" in r:
        print(r["layer"], "bnb", round(r["us_bnb"], 1), sorted(r["sweep"].items(), key=lambda t: t[1])[:6])
PY
    ;;
call6)  # CUDA-core sums against the tensor cores, 7B and 32B shapes; the GPU tests with them
    timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_nf4_gpu.py > "$OUT/nf4_gpu_tests.log" 2>&1; say tests; tail -3 "$OUT/nf4_gpu_tests.log" | cut -c1-300
    timeout 400 python3 bench/nf4_bench.py "$OUT/nf4_bench.jsonl" > "$OUT/nf4_bench.log" 2>&1; say nf4 bench; grep "one token" "$OUT/nf4_bench.log"
    python3 - "$OUT/nf4_bench.jsonl" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if "sweep" in r:
        print(r["model"], r["layer"], "bnb", round(r["us_bnb"], 1), sorted(r["sweep"].items(), key=lambda t: t[1])[:5])
PY
    ;;
call7)  # the CUDA-core sums by default: tests, the rule per shape, 7B decode on/off, 7B repeats
    timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_nf4_gpu.py > "$OUT/nf4_gpu_tests.log" 2>&1 &
    build qwen2.5-7b; say built 7b
    wait; say tests; tail -3 "$OUT/nf4_gpu_tests.log" | cut -c1-300
    NF4_BENCH_SWEEP_S=0 timeout 120 python3 bench/nf4_bench.py "$OUT/nf4_bench.jsonl" > "$OUT/nf4_bench.log" 2>&1; say nf4 bench; cut -c1-250 "$OUT/nf4_bench.log"
    for k in on off; do
        timeout 75 $B7 --nf4-kernel $k --skip static,plain,ceiling,sampling,reuse --out "$OUT/speed.jsonl" > "$OUT/speed-$k.log" 2>&1
        say "7b nf4 $k"; grep -o '"stream": {[^}]*}' "$OUT/speed-$k.log" | tail -1 | cut -c1-400
    done
    timeout 150 python3 bench/repeat_check.py --model /tmp/qwen2.5-7b --label qwen2.5-7b --config unsloth-4bit --nf4-kernel on \
        --decoders static --modes greedy,seeded,page-defaults --out "$OUT/repeat.jsonl" > "$OUT/r-7b-nf4.log" 2>&1; say repeat; grep -h identical "$OUT/r-7b-nf4.log" | tail -3 | cut -c1-250 ;;
call8)  # 32B end to end, the kernel on (cold start, first request, the seed's generate, decode, peak) and off
    build32; say built 32b
    S32="python3 bench/bench.py --config unsloth-4bit --model /tmp/qwen2.5-32b-nf4 --label qwen2.5-32b --prompt-tokens 1271 --new-tokens 128"
    timeout 230 $S32 --nf4-kernel on --skip static,sampling,reuse --started-at "$(date +%s.%N)" --out "$OUT/speed-32b.jsonl" > "$OUT/speed-32b-on.log" 2>&1
    say 32b on; tail -1 "$OUT/speed-32b-on.log" | cut -c1-2500
    timeout 90 $S32 --skip static,sampling,plain,reuse,ceiling --out "$OUT/speed-32b.jsonl" > "$OUT/speed-32b-off.log" 2>&1
    say 32b off; grep -o '"stream": {[^}]*}' "$OUT/speed-32b-off.log" | tail -1
    timeout 120 python3 bench/repeat_check.py --model /tmp/qwen2.5-32b-nf4 --label qwen2.5-32b --config unsloth-4bit --nf4-kernel on \
        --decoders static --modes greedy --out "$OUT/repeat.jsonl" > "$OUT/r-32b-nf4.log" 2>&1; say repeat 32b; grep -h identical "$OUT/r-32b-nf4.log" | tail -2 | cut -c1-250 ;;
call9)  # the GPU tests with the kernel on by default; 0.5B repeats on the static paths it serves
    build qwen2.5-0.5b; say built
    M=/tmp/qwen2.5-0.5b; R="python3 bench/repeat_check.py --label qwen2.5-0.5b --decoders static --nf4-kernel on --out $OUT/repeat.jsonl"
    BONSAI_GPU_MODEL=$M timeout 420 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_nf4_gpu.py > "$OUT/gpu_tests.log" 2>&1 &
    timeout 300 $R --model $M --config unsloth-4bit --modes greedy,seeded,seeded-top-p > "$OUT/r-unsloth.log" 2>&1 &
    timeout 300 $R --model $M --config transformers-nf4 --modes greedy,seeded > "$OUT/r-nf4.log" 2>&1 &
    wait; say done; grep -h '"identical"' "$OUT"/r-*.log | cut -c1-200; tail -15 "$OUT/gpu_tests.log" | cut -c1-300 ;;
esac
say end
tar czf /tmp/results.tgz -C "$OUT" . && rm -rf "$OUT"/* && mv /tmp/results.tgz "$OUT"/
