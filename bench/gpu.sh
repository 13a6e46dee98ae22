#!/usr/bin/env bash
# The GPU benchmarks and tests, run on a lent GPU machine that reaches no network.
#
# First, here on the CPU machine: bash bench/prepare_gpu_assets.sh   (fills .whl/ and .gpu_assets/)
# Then, on the GPU machine, from the repository root, with both folders carried:
#   bash bench/gpu.sh SUITE [SUITE...]        e.g. bash bench/gpu.sh speed repeat
#   (device tool: run(command="bash bench/gpu.sh speed", carry=[".whl", ".gpu_assets"]))
# Suites run in the order given and print as they go; every result lands in $OUT (set by the
# device tool; else bench/results/tmp) as NAME-CARD-DATE.jsonl (e.g. decode-7b-h200-2026-11-26.jsonl),
# named as bench/results/ names its files, with each process's full log under $OUT/logs/.
# Models: random weights of the real Qwen2.5 shapes with SmolLM2's tokenizer, built on the GPU into
# /tmp by bench/make_random_model.py (0.5B and 7B in bf16, 32B pre-quantized to NF4); they and any
# build are kept in /tmp while the machine stays warm, so a later call skips them.
#
# Suites (minutes on an H100/H200, models built included; one device call runs for 10 at most):
#   tests     the GPU pytest: tests/test_gpu.py + tests/test_nf4_gpu.py on the 0.5B shape      ~5
#   speed     decode speed of the app's default path (Unsloth 4-bit, static decoder, NF4 kernel,
#             fused step) at the 7B and 32B shapes, with bitsandbytes' product (--nf4-kernel off)
#             in the same call; sampling cost, regenerate after an edit, plain generate, cold start,
#             share of the copy-bandwidth ceiling (bench/bench.py)                           ~9
#             (SPEED_SHAPES="7b" or "32b" for one shape; SPEED_CONFIGS="unsloth-bf16 transformers-nf4
#             transformers-bf16" adds those configurations at 7B; BASELINE=DIR adds the 7B decode of
#             another checkout's bonsai_ui and bench, e.g. `git archive REV bonsai_ui bench | tar -x
#             -C .baseline` carried as an untracked folder, for a change's before/after in one call)
#   repeat    same input, same tokens at 1,000 new tokens: three runs, prefix reuse, a fresh
#             session; 0.5B (Unsloth, transformers NF4 and bf16) and 7B (bench/repeat_check.py)  ~5
#             (REPEAT_SHAPES="0.5b 7b 32b" adds the 32B shape, ~4 more)
#   peer      llama.cpp's CUDA build (from .gpu_assets/llama.cpp-src.tar.xz) decoding the same
#             random-weight 7B folder as GGUF Q4_K_M and Q4_0 (llama-bench -ngl 99 -fa 1 -p 0 -n 256
#             -d 1271 -r 3), and the app's bench in the same call; prints the ratios      ~10-12
#             (the build takes ~7 of them: if the call stops at its limit, run it again on the
#             warm machine; finished steps are skipped)
#   nf4       the NF4 kernel against bitsandbytes per layer shape, 7B and 32B (bench/nf4_bench.py) ~4
#   ablation  the ablation sweep with reuse against full re-encodes, 7B, two reasoning lengths
#             (bench/ablation_bench.py)                                                       ~4
#   profile   where one 7B decode step's time goes, fused step and PyTorch step (profile_step.py) ~3
#   ncu       Nsight Compute on the 7B gate_proj product: the kernel, its tensor-core path,
#             bitsandbytes (bench/nf4_ncu.py; needs ncu from the CUDA toolkit)                ~3
#   probe     which GPU operations give the same bits every time (bench/determinism_probe.py)  ~2
#   fbq       the debate's questions held to their format against free text, 20 contexts, on the
#             random-weight 7B (Unsloth 4-bit, static decoder): how many hold five questions, and
#             decode speed with the grammar's mask against without at the same token count
#             (bench/fbq_bench.py)                                                             ~6
set -uo pipefail
cd "$(dirname "$0")/.."
SUITES="tests speed repeat peer nf4 ablation profile ncu probe fbq"
if [ $# -eq 0 ]; then
    sed -n '2,/^set -uo/p' "$0" | sed '$d' | cut -c3-
    exit 2
fi
for s in "$@"; do
    case " $SUITES " in *" $s "*) ;; *) echo "unknown suite: $s (one of: $SUITES)"; exit 2 ;; esac
done

OUT=${OUT:-bench/results/tmp}
mkdir -p "$OUT/logs"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1
T0=$(date +%s)
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }

# the carried wheels, installed once a machine
if [ ! -f /tmp/site/.installed ] || [ "$(cat /tmp/site/.installed)" != "$(ls .whl)" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "installing .whl/ failed: run bench/prepare_gpu_assets.sh here and carry .whl"; exit 1; }
    ls .whl > /tmp/site/.installed
fi
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
CARD_NAME=$(head -1 "$OUT/gpu.txt" | cut -d, -f1)
CARD=$(echo "$CARD_NAME" | tr 'A-Z' 'a-z' | grep -oE '\b[a-z]{1,2}[0-9]{2,4}[a-z]?\b' | head -1)
CARD=${CARD:-gpu}
DATE=$(date -u +%F)
name() { echo "$OUT/$1-$CARD-$DATE.${2:-jsonl}"; }  # a result file, named by what, card and date
TOKENIZER=.gpu_assets/smollm2-tokenizer

# Every step that a later call skips writes under a .part name and renames when it is complete: a call
# stopped at its limit leaves a .part behind (made again next time), never a half-written model.
build() {  # SHAPE: a random-weight bf16 folder in /tmp/SHAPE (qwen2.5-0.5b, qwen2.5-7b)
    [ -f "/tmp/$1/config.json" ] && return 0
    rm -rf "/tmp/$1.part"
    python3 bench/make_random_model.py --shape "$1" --tokenizer "$TOKENIZER" --out "/tmp/$1.part" \
        > "$OUT/logs/build-$1.log" 2>&1 && mv "/tmp/$1.part" "/tmp/$1" \
        || { say "building $1 failed:"; tail -5 "$OUT/logs/build-$1.log"; return 1; }
    say "built $1: $(tail -1 "$OUT/logs/build-$1.log" | cut -c1-160)"
}
build32() {  # the 32B shape, quantized to NF4 as it is made (its bf16 folder, 62 GiB, would not fit)
    [ -f /tmp/qwen2.5-32b-nf4/config.json ] && return 0
    rm -rf /tmp/qwen2.5-32b-nf4.part
    timeout 300 python3 bench/make_random_model.py --shape qwen2.5-32b --quantize nf4 --tokenizer "$TOKENIZER" \
        --out /tmp/qwen2.5-32b-nf4.part > "$OUT/logs/build-qwen2.5-32b-nf4.log" 2>&1 \
        && mv /tmp/qwen2.5-32b-nf4.part /tmp/qwen2.5-32b-nf4 \
        || { say "building 32b failed:"; tail -5 "$OUT/logs/build-qwen2.5-32b-nf4.log"; return 1; }
    say "built 32b: $(tail -1 "$OUT/logs/build-qwen2.5-32b-nf4.log" | cut -c1-160)"
}
last_json() { grep '^{' "$1" | tail -1; }  # a bench's last JSON line holds every section

# bench.py on the app's default path: unsloth-4bit with the app's own --decoder, --nf4-kernel and
# --decode-kernels (bonsai_ui.core.settings.APP_OPTIONS), a 1,271-token prompt
BENCH="python3 bench/bench.py --config unsloth-4bit --prompt-tokens 1271"

summary_speed() {  # FILE: the default path's figures, against bitsandbytes from the same call
    python3 - "$1" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
last = {}
for r in rows:
    last[(r["label"], r.get("nf4_kernel"))] = r
for (label, kernel), r in last.items():
    if kernel != "on":
        continue
    line = [f"{label}: {r['stream']['decode_tok_s']:.1f} tok/s ({r['decoder']})"]
    off = last.get((label + "-bitsandbytes", "off"))
    if off:
        d = off["stream"]["decode_tok_s"]
        line.append(f"bitsandbytes {d:.1f} -> {r['stream']['decode_tok_s'] / d:.2f}x")
    base = [b for (name, _), b in last.items() if name == label + "-baseline"]
    if base:
        d = base[-1]["stream"]["decode_tok_s"]
        line.append(f"baseline checkout {d:.1f} -> {r['stream']['decode_tok_s'] / d:.2f}x")
    if "plain_generate" in r:
        line.append(f"plain generate {r['plain_generate']['decode_tok_s']:.1f} -> {r['speedup_vs_plain_generate']:.2f}x")
    if "share_of_ceiling_pct" in r:
        line.append(f"{r['share_of_ceiling_pct']}% of the ceiling ({r['ceiling_tok_s']} tok/s at {r['copy_bandwidth_tb_s']} TB/s)")
    for key, text in (("cold_start_s", "cold start {} s"), ("load_s", "load {} s"), ("peak_gpu_mem_gib", "peak {} GiB")):
        if key in r:
            line.append(text.format(r[key]))
    line.append(f"first request TTFT {r['first_request']['ttft_s']} s")
    for row in r.get("regenerate_ttft", []):
        line.append(f"regenerate {row['prompt_tokens']} tokens {row['edit']} edit: {row['ttft_full_s']} -> {row['ttft_reuse_s']} s ({row['speedup']}x)")
    if "sampling_decode_tok_s" in r:
        line.append("sampling vs greedy: " + ", ".join(f"{k} {v['vs_greedy_pct']}%" for k, v in r["sampling_decode_tok_s"].items() if k != "greedy"))
    print("\n    ".join(line))
PY
}

suite_tests() {
    build qwen2.5-0.5b || return 1
    BONSAI_GPU_MODEL=/tmp/qwen2.5-0.5b timeout 540 python3 -m pytest -q -p no:cacheprovider \
        tests/test_gpu.py tests/test_nf4_gpu.py > "$(name gpu-tests log)" 2>&1
    say "tests rc=$?"; tail -4 "$(name gpu-tests log)"
}

suite_speed() {
    local shape
    for shape in ${SPEED_SHAPES:-7b 32b}; do
        local out; out=$(name "decode-$shape")
        if [ "$shape" = 7b ]; then
            build qwen2.5-7b || continue
            timeout 240 $BENCH --model /tmp/qwen2.5-7b --label qwen2.5-7b --reuse-lengths 2000 --skip static \
                --started-at "$(date +%s.%N)" --out "$out" > "$OUT/logs/decode-7b.log" 2>&1
            say "7b default path rc=$?"
            timeout 120 $BENCH --model /tmp/qwen2.5-7b --label qwen2.5-7b-bitsandbytes --nf4-kernel off \
                --skip sampling,plain,static,reuse,ceiling --out "$out" > "$OUT/logs/decode-7b-bitsandbytes.log" 2>&1
            say "7b bitsandbytes rc=$?"
            if [ -n "${BASELINE:-}" ]; then  # another checkout's code on the same model, same call
                local here; here=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
                (cd "$BASELINE" && PYTHONPATH=/tmp/site:$PWD timeout 150 python3 bench/bench.py --config unsloth-4bit \
                    --model /tmp/qwen2.5-7b --label qwen2.5-7b-baseline --prompt-tokens 1271 \
                    --skip static,plain,ceiling,sampling,reuse --out "$here") > "$OUT/logs/decode-7b-baseline.log" 2>&1
                say "7b baseline ($BASELINE) rc=$?"; last_json "$OUT/logs/decode-7b-baseline.log" | cut -c1-400
            fi
            local config
            for config in ${SPEED_CONFIGS:-}; do  # other backends/precisions, one process each
                timeout 200 python3 bench/bench.py --config "$config" --model /tmp/qwen2.5-7b --label "qwen2.5-7b-$config" \
                    --prompt-tokens 1271 --skip sampling,static,reuse --out "$(name decode-7b-configs)" \
                    > "$OUT/logs/decode-7b-$config.log" 2>&1
                say "7b $config rc=$?"; last_json "$OUT/logs/decode-7b-$config.log" | python3 -c "
import json, sys
r = json.loads(sys.stdin.read() or '{}')
if r: print(f\"  {r['config']}: {r['stream']['decode_tok_s']} tok/s, plain generate {r.get('plain_generate', {}).get('decode_tok_s')}, streaming cost {r.get('streaming_overhead_pct')} %, {r.get('share_of_ceiling_pct')} % of the ceiling\")"
            done
        else
            build32 || continue
            timeout 280 $BENCH --model /tmp/qwen2.5-32b-nf4 --label qwen2.5-32b --new-tokens 128 --reuse-lengths 2000 \
                --skip sampling,static --started-at "$(date +%s.%N)" --out "$out" > "$OUT/logs/decode-32b.log" 2>&1
            say "32b default path rc=$?"
            timeout 130 $BENCH --model /tmp/qwen2.5-32b-nf4 --label qwen2.5-32b-bitsandbytes --new-tokens 128 \
                --nf4-kernel off --skip sampling,plain,static,reuse,ceiling --out "$out" > "$OUT/logs/decode-32b-bitsandbytes.log" 2>&1
            say "32b bitsandbytes rc=$?"
        fi
        [ -s "$out" ] && summary_speed "$out"
    done
}

suite_repeat() {
    local out; out=$(name repeat)
    local R="python3 bench/repeat_check.py --decoders static --out $out"
    local shapes=" ${REPEAT_SHAPES:-0.5b 7b} "
    if [[ $shapes == *" 0.5b "* ]]; then
        build qwen2.5-0.5b || return 1
        local M=/tmp/qwen2.5-0.5b
        timeout 420 $R --model $M --label qwen2.5-0.5b --config unsloth-4bit --modes greedy,seeded,seeded-top-p \
            > "$OUT/logs/repeat-0.5b-unsloth.log" 2>&1 &
        timeout 420 $R --model $M --label qwen2.5-0.5b --config transformers-nf4 --modes greedy,seeded \
            > "$OUT/logs/repeat-0.5b-transformers-nf4.log" 2>&1 &
        timeout 420 $R --model $M --label qwen2.5-0.5b --config transformers-bf16 --modes greedy,seeded \
            > "$OUT/logs/repeat-0.5b-transformers-bf16.log" 2>&1 &
    fi
    if [[ $shapes == *" 7b "* ]]; then
        build qwen2.5-7b && timeout 420 $R --model /tmp/qwen2.5-7b --label qwen2.5-7b --config unsloth-4bit \
            --modes greedy,seeded,page-defaults > "$OUT/logs/repeat-7b.log" 2>&1
    fi
    wait
    if [[ $shapes == *" 32b "* ]]; then
        build32 && timeout 420 $R --model /tmp/qwen2.5-32b-nf4 --label qwen2.5-32b --config unsloth-4bit \
            --modes greedy,seeded --new-tokens 1000 > "$OUT/logs/repeat-32b.log" 2>&1
    fi
    say "repeat done"
    [ -s "$out" ] && python3 - "$out" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if "identical" in r:
        print(f"  {r['label']} {r['config']} {r['mode']}: identical={r['identical']} "
              f"(runs {r['repeats_agree']}, reuse {r['reuse_agree']} with {r['reused_tokens']} reused, "
              f"fresh {r['fresh_agree']} of {r['new_tokens']} tokens)")
PY
}

suite_peer() {
    local src=/tmp/llama.cpp bin=/tmp/llama.cpp/build/bin out; out=$(name peer)
    [ -f .gpu_assets/llama.cpp-src.tar.xz ] || { echo "no .gpu_assets/llama.cpp-src.tar.xz: run bench/prepare_gpu_assets.sh"; return 1; }
    [ -f $src/CMakeLists.txt ] || tar xJf .gpu_assets/llama.cpp-src.tar.xz -C /tmp
    if [ ! -x $bin/llama-bench ] || [ ! -x $bin/llama-quantize ]; then
        [ -d /tmp/buildtools/cmake ] || python3 -m pip install -q --no-index --no-deps --target /tmp/buildtools \
            .gpu_assets/build-tools/*.whl
        local cmake ninja nvcc
        cmake=$(ls /tmp/buildtools/cmake/data/bin/cmake 2>/dev/null | head -1)  # the binaries, not the
        ninja=$(ls /tmp/buildtools/ninja/data/bin/ninja /tmp/buildtools/bin/ninja 2>/dev/null | head -1)  # wrappers
        nvcc=$(ls /usr/local/cuda*/bin/nvcc 2>/dev/null | head -1)
        [ -n "$cmake" ] && [ -n "$ninja" ] && [ -n "$nvcc" ] || { echo "cmake ($cmake), ninja ($ninja) or nvcc ($nvcc) missing"; return 1; }
        export CUDACXX=$nvcc PATH=$(dirname "$nvcc"):$PATH
        (   # the CUDA build of the two tools, in the background while the model is made and converted
            "$cmake" -S $src -B $src/build -G Ninja -DCMAKE_MAKE_PROGRAM="$ninja" -DCMAKE_BUILD_TYPE=Release \
                -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
                -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
            && "$cmake" --build $src/build --target llama-bench llama-quantize -j $(( $(nproc) - 3 ))
        ) > "$OUT/logs/peer-build.log" 2>&1 &
        local builder=$!
        say "building llama.cpp (CUDA) in the background"
    fi
    build qwen2.5-7b || return 1
    local gguf=/tmp/qwen2.5-7b-gguf
    mkdir -p $gguf
    if [ ! -f $gguf/q4_k_m.gguf ] || [ ! -f $gguf/q4_0.gguf ]; then
        [ -f $gguf/bf16.gguf ] || { python3 - $src /tmp/qwen2.5-7b --outtype bf16 --outfile $gguf/bf16.gguf.part \
            > "$OUT/logs/peer-convert.log" 2>&1 <<'PY' && mv $gguf/bf16.gguf.part $gguf/bf16.gguf
# llama.cpp's convert_hf_to_gguf.py with two allowances for this folder: SmolLM2's tokenizer, whose
# pre-tokenizer hash is not in the converter's list (it is SmolLM2's, so "smollm" is right), and no
# sentencepiece (a folder without tokenizer.model is then a BPE tokenizer, as it is anyway)
import runpy, sys
from pathlib import Path
src = Path(sys.argv[1])
sys.path[:0] = [str(src), str(src / "gguf-py")]
from conversion.base import TextModel
known = TextModel.get_vocab_base_pre
def vocab_base_pre(self, tokenizer):
    try:
        return known(self, tokenizer)
    except NotImplementedError:
        return "smollm"
TextModel.get_vocab_base_pre = vocab_base_pre
try:
    import sentencepiece  # noqa: F401
except ImportError:
    def no_sentencepiece(self):
        raise FileNotFoundError("tokenizer.model (sentencepiece is not installed)")
    TextModel._create_vocab_sentencepiece = no_sentencepiece
sys.argv = [str(src / "convert_hf_to_gguf.py"), *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
PY
        }
        [ -f $gguf/bf16.gguf ] || { say "conversion failed:"; tail -5 "$OUT/logs/peer-convert.log"; return 1; }
        say "converted to GGUF bf16"
        [ -n "${builder:-}" ] && { wait "$builder"; say "llama.cpp build rc=$?"; tail -2 "$OUT/logs/peer-build.log"; }
        [ -x $bin/llama-quantize ] || { say "no llama-quantize: see $OUT/logs/peer-build.log"; return 1; }
        local q
        for q in q4_k_m q4_0; do
            [ -f $gguf/$q.gguf ] || { $bin/llama-quantize $gguf/bf16.gguf $gguf/$q.gguf.part ${q^^} \
                > "$OUT/logs/peer-quantize-$q.log" 2>&1 && mv $gguf/$q.gguf.part $gguf/$q.gguf; } &
        done
        wait
        [ -f $gguf/q4_k_m.gguf ] && [ -f $gguf/q4_0.gguf ] || { say "quantization failed: see $OUT/logs/peer-quantize-*.log"; return 1; }
        rm -f $gguf/bf16.gguf  # 15 GB of disk back
        say "quantized: $(ls $gguf)"
    fi
    [ -n "${builder:-}" ] && wait "$builder" 2>/dev/null
    local q
    for q in q4_k_m q4_0; do
        timeout 200 $bin/llama-bench -m $gguf/$q.gguf -ngl 99 -fa 1 -p 0 -n 256 -d 1271 -r 3 -o jsonl \
            > "$OUT/logs/peer-llama-bench-$q.jsonl" 2> "$OUT/logs/peer-llama-bench-$q.log"
        say "llama-bench $q rc=$?"
        grep '^{' "$OUT/logs/peer-llama-bench-$q.jsonl" | python3 -c "
import json, sys
for l in sys.stdin:
    r = json.loads(l); r['quant'] = '$q'; r['bench'] = 'llama-bench'
    print(json.dumps(r))" >> "$out"
    done
    timeout 200 $BENCH --model /tmp/qwen2.5-7b --label qwen2.5-7b --skip sampling,plain,static,reuse \
        --out "$out" > "$OUT/logs/peer-app.log" 2>&1
    say "the app's bench rc=$?"
    python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
peer = {r["quant"]: r for r in rows if r.get("bench") == "llama-bench"}
app = [r for r in rows if r.get("config")]
if not app:
    sys.exit("no figure from the app's bench")
a = app[-1]["stream"]["decode_tok_s"]
print(f"  the app ({app[-1]['decoder']}): {a:.1f} tok/s at {app[-1]['prompt_tokens']} tokens of context")
for q, r in peer.items():
    ts = r.get("avg_ts") or 0
    print(f"  llama.cpp {q.upper()} ({r.get('model_type', '')}): {ts:.1f} ± {r.get('stddev_ts', 0):.1f} tok/s "
          f"-> the app is {a / ts:.2f}x" if ts else f"  llama.cpp {q}: no figure")
PY
}

suite_nf4() {
    timeout 420 python3 bench/nf4_bench.py "$(name nf4-kernel)" > "$OUT/logs/nf4-kernel.log" 2>&1
    say "nf4 rc=$?"; grep -E "one token|copy bandwidth|done in" "$OUT/logs/nf4-kernel.log"
}

suite_ablation() {
    build qwen2.5-7b || return 1
    local cfg extra
    for cfg in default long; do
        extra=(); [ $cfg = long ] && extra=(--sentence-tokens 80)
        timeout 240 python3 bench/ablation_bench.py --backend unsloth --model /tmp/qwen2.5-7b --label qwen2.5-7b-random \
            --repeats 3 --machine "$(head -1 "$OUT/gpu.txt")" --out "$(name ablation-7b)" "${extra[@]}" \
            > "$OUT/logs/ablation-7b-$cfg.log" 2>&1
        say "ablation $cfg rc=$?"
        last_json "$OUT/logs/ablation-7b-$cfg.log" | python3 -c "
import json, sys
r = json.loads(sys.stdin.read())
print(f\"  {r['reasoning_tokens']}-token reasoning: full re-encodes {r['naive']['wall_s']} s, reuse {r['reuse']['wall_s']} s \"
      f\"-> {r['speedup']}x (ceiling {r['speedup_ceiling']}x), same tokens: {r['same_tokens']}\")"
    done
}

suite_profile() {
    build qwen2.5-7b || return 1
    local k
    for k in on off; do
        timeout 120 python3 bench/profile_step.py --model /tmp/qwen2.5-7b --label qwen2.5-7b --decode-kernels $k \
            --out "$(name profile-7b)" > "$OUT/logs/profile-7b-decode-kernels-$k.log" 2>&1
        say "profile, decode kernels $k, rc=$?"
    done
    python3 - "$(name profile-7b)" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    print(f"  decode kernels {r['decode_kernels']}: {r['kernels_per_step']:.0f} kernels, "
          f"{r['eager_gpu_us_per_step'] / 1000:.2f} ms of GPU time a step, graphed step "
          f"{r['graphed_step_ms_median']} ms; top: {r['top'][0]['name'][:40]} {r['top'][0]['us']} us")
PY
}

suite_ncu() {
    local ncu; ncu=$(ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
    [ -n "$ncu" ] || { echo "no ncu under /usr/local/cuda*/bin"; return 1; }
    local S="--section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats --section MemoryWorkloadAnalysis --section SchedulerStats"
    local side kernel args
    for side in nf4 nf4-tensor-cores bitsandbytes; do
        case $side in
            nf4) kernel=nf4_gemv; args="" ;;
            nf4-tensor-cores) kernel=nf4_gemv; args="--tensor-cores --split 2" ;;
            bitsandbytes) kernel='gemm_4bit|gemv_4bit|kgemm'; args="" ;;
        esac
        timeout 200 "$ncu" --target-processes all -k "regex:$kernel" --launch-skip 3 --launch-count 1 $S \
            python3 bench/nf4_ncu.py 18944 3584 $args > "$(name "ncu-7b-gate-$side" txt)" 2>&1
        say "ncu $side rc=$?"
        grep -E "^\s+(Duration|DRAM Throughput|L1/TEX Cache Throughput|Memory Throughput +%|Issue Slots Busy|Achieved Occupancy)" \
            "$(name "ncu-7b-gate-$side" txt)" | head -6
    done
}

suite_probe() {
    timeout 300 python3 bench/determinism_probe.py --out "$(name determinism)" > "$OUT/logs/determinism.log" 2>&1
    say "probe rc=$?"
    python3 - "$(name determinism)" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("distinct", 1) != 1 or r["op"] != "sdpa" and r["op"] != "linear":
        print("  ", {k: v for k, v in r.items() if k != "card"})
PY
}

suite_fbq() {
    build qwen2.5-7b || return 1
    timeout 540 python3 bench/fbq_bench.py --backend unsloth --model /tmp/qwen2.5-7b --out "$(name fbq-7b)" \
        > "$OUT/logs/fbq-7b.log" 2>&1
    say "fbq rc=$?"; last_json "$OUT/logs/fbq-7b.log" | cut -c1-700
}

for suite in "$@"; do
    say "== $suite on $CARD_NAME"
    "suite_$suite"
done
say "end; results in $OUT"
