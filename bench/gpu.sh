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
#   nf4       the NF4 kernels (nf4_gemv, relayout) against bitsandbytes' gemm_4bit and gemv_4bit per
#             layer shape, 7B and 32B (bench/nf4_bench.py)                                     ~5
#   issue26   the re-laid-out kernel (--nf4-kernel relayout), in resumable steps over 2-3 calls run
#             back to back: per layer 7B and 32B (nf4_bench.py), then the 7B decode with the
#             default kernel, relayout and llama.cpp Q4_K_M / Q4_0 in one call with the ratios,
#             then same input, same tokens at 1,000 new (greedy, seeded, reuse), the relayout GPU
#             tests, and the 32B shape's repeat check if time is left. llama.cpp builds detached
#             from the first call on. Results: issue26*-CARD-DATE.* (4 files)      3 x ~9.5
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
SUITES="tests speed repeat peer nf4 issue26 ablation profile ncu probe fbq"
if [ $# -eq 0 ]; then
    sed -n '2,/^set -uo/p' "$0" | sed '$d' | cut -c3-
    exit 2
fi
for s in "$@"; do
    case " $SUITES peer-prepare " in *" $s "*) ;; *) echo "unknown suite: $s (one of: $SUITES)"; exit 2 ;; esac
done

OUT=${OUT:-bench/results/tmp}
mkdir -p "$OUT/logs"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1
T0=$(date +%s)
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }

DRY=${GPU_SH_DRY:-0}  # 1: print the steps a suite would run (issue26), run nothing -- on any machine
if [ "$DRY" = 1 ]; then
    echo "dry run: $*"
elif [ ! -f /tmp/site/.installed ] || [ "$(cat /tmp/site/.installed)" != "$(ls .whl)" ]; then
    # the carried wheels, installed once a machine
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "installing .whl/ failed: run bench/prepare_gpu_assets.sh here and carry .whl"; exit 1; }
    ls .whl > /tmp/site/.installed
fi
export PYTHONPATH=/tmp/site:$PWD
if [ "$DRY" = 1 ]; then echo "dry-run card, 0 MiB, none" > "$OUT/gpu.txt"; else
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
fi
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
    repeat_summary "$out"
}

# llama.cpp's CUDA tools (llama-bench, llama-quantize) from the vendored sources, once a machine
LLAMA_SRC=/tmp/llama.cpp
LLAMA_BIN=/tmp/llama.cpp/build/bin
GGUF=/tmp/qwen2.5-7b-gguf
peer_tools() {
    [ -x $LLAMA_BIN/llama-bench ] && [ -x $LLAMA_BIN/llama-quantize ] && return 0
    [ -f .gpu_assets/llama.cpp-src.tar.xz ] || { echo "no .gpu_assets/llama.cpp-src.tar.xz: run bench/prepare_gpu_assets.sh"; return 1; }
    [ -f $LLAMA_SRC/CMakeLists.txt ] || tar xJf .gpu_assets/llama.cpp-src.tar.xz -C /tmp
    [ -d /tmp/buildtools/cmake ] || python3 -m pip install -q --no-index --no-deps --target /tmp/buildtools \
        .gpu_assets/build-tools/*.whl
    local cmake ninja nvcc
    cmake=$(ls /tmp/buildtools/cmake/data/bin/cmake 2>/dev/null | head -1)  # the binaries, not the
    ninja=$(ls /tmp/buildtools/ninja/data/bin/ninja /tmp/buildtools/bin/ninja 2>/dev/null | head -1)  # wrappers
    nvcc=$(ls /usr/local/cuda*/bin/nvcc 2>/dev/null | head -1)
    [ -n "$cmake" ] && [ -n "$ninja" ] && [ -n "$nvcc" ] || { echo "cmake ($cmake), ninja ($ninja) or nvcc ($nvcc) missing"; return 1; }
    export CUDACXX=$nvcc PATH=$(dirname "$nvcc"):$PATH
    "$cmake" -S $LLAMA_SRC -B $LLAMA_SRC/build -G Ninja -DCMAKE_MAKE_PROGRAM="$ninja" -DCMAKE_BUILD_TYPE=Release \
        -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    && "$cmake" --build $LLAMA_SRC/build --target llama-bench llama-quantize -j $(( $(nproc) - 3 ))
}

peer_ggufs() {  # [BUILDER_PID]: /tmp/qwen2.5-7b as GGUF Q4_K_M and Q4_0 (the bf16 step needs no build)
    local builder=${1:-}
    [ -f $GGUF/q4_k_m.gguf ] && [ -f $GGUF/q4_0.gguf ] && return 0
    mkdir -p $GGUF
    [ -f $LLAMA_SRC/CMakeLists.txt ] || tar xJf .gpu_assets/llama.cpp-src.tar.xz -C /tmp
    [ -f $GGUF/bf16.gguf ] || { python3 - $LLAMA_SRC /tmp/qwen2.5-7b --outtype bf16 --outfile $GGUF/bf16.gguf.part \
        > "$OUT/logs/peer-convert.log" 2>&1 <<'PY' && mv $GGUF/bf16.gguf.part $GGUF/bf16.gguf
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
    [ -f $GGUF/bf16.gguf ] || { say "conversion failed:"; tail -5 "$OUT/logs/peer-convert.log"; return 1; }
    say "converted to GGUF bf16"
    [ -n "$builder" ] && { wait "$builder"; say "llama.cpp build rc=$?"; tail -2 "$OUT/logs/peer-build.log"; }
    [ -x $LLAMA_BIN/llama-quantize ] || { say "no llama-quantize: see the build log"; return 1; }
    local q
    for q in q4_k_m q4_0; do
        [ -f $GGUF/$q.gguf ] || { $LLAMA_BIN/llama-quantize $GGUF/bf16.gguf $GGUF/$q.gguf.part ${q^^} \
            > "$OUT/logs/peer-quantize-$q.log" 2>&1 && mv $GGUF/$q.gguf.part $GGUF/$q.gguf; } &
    done
    wait
    [ -f $GGUF/q4_k_m.gguf ] && [ -f $GGUF/q4_0.gguf ] || { say "quantization failed: see $OUT/logs/peer-quantize-*.log"; return 1; }
    rm -f $GGUF/bf16.gguf  # 15 GB of disk back
    say "quantized: $(ls $GGUF)"
}

peer_llama_bench() {  # OUT_FILE: llama-bench on both GGUFs at 1,271 tokens of context, rows appended
    local q
    for q in q4_k_m q4_0; do
        timeout 200 $LLAMA_BIN/llama-bench -m $GGUF/$q.gguf -ngl 99 -fa 1 -p 0 -n 256 -d 1271 -r 3 -o jsonl \
            > "$OUT/logs/peer-llama-bench-$q.jsonl" 2> "$OUT/logs/peer-llama-bench-$q.log"
        say "llama-bench $q rc=$?"
        grep '^{' "$OUT/logs/peer-llama-bench-$q.jsonl" | python3 -c "
import json, sys
for l in sys.stdin:
    r = json.loads(l); r['quant'] = '$q'; r['bench'] = 'llama-bench'
    print(json.dumps(r))" >> "$1"
    done
}

peer_ratios() {  # FILE: every app row against every llama-bench row of the file (the last of each)
    python3 - "$1" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
peer = {r["quant"]: r for r in rows if r.get("bench") == "llama-bench"}
apps = {}
for r in rows:
    if r.get("config") and "stream" in r:
        apps[r.get("label")] = r  # the last line of a run holds every section
if not apps:
    sys.exit("no figure from the app's bench")
base = next((r for label, r in apps.items() if r.get("nf4_kernel") == "on"), None)
for label, r in apps.items():
    a = r["stream"]["decode_tok_s"]
    line = [f"  the app, --nf4-kernel {r.get('nf4_kernel')} ({label}): {a:.1f} tok/s at {r['prompt_tokens']} tokens of context"]
    if "share_of_ceiling_pct" in r:
        line.append(f"{r['share_of_ceiling_pct']} % of the copy ceiling ({r['ceiling_tok_s']} tok/s at {r['copy_bandwidth_tb_s']} TB/s)")
    if base is not None and r is not base:
        line.append(f"{a / base['stream']['decode_tok_s']:.2f}x the default kernel")
    for q, p in peer.items():
        ts = p.get("avg_ts") or 0
        if ts:
            line.append(f"{a / ts:.2f}x llama.cpp {q.upper()}")
    print("; ".join(line))
for q, p in peer.items():
    ts = p.get("avg_ts") or 0
    print(f"  llama.cpp {q.upper()} ({p.get('model_type', '')}): {ts:.1f} ± {p.get('stddev_ts', 0):.1f} tok/s" if ts
          else f"  llama.cpp {q}: no figure")
PY
}

suite_peer() {
    local out; out=$(name peer)
    local builder=""
    if [ ! -x $LLAMA_BIN/llama-bench ] || [ ! -x $LLAMA_BIN/llama-quantize ]; then
        peer_tools > "$OUT/logs/peer-build.log" 2>&1 &  # while the model is made and converted
        builder=$!
        say "building llama.cpp (CUDA) in the background"
    fi
    build qwen2.5-7b || return 1
    peer_ggufs "$builder" || return 1
    [ -n "$builder" ] && wait "$builder" 2>/dev/null
    peer_llama_bench "$out"
    timeout 200 $BENCH --model /tmp/qwen2.5-7b --label qwen2.5-7b --skip sampling,plain,static,reuse \
        --out "$out" > "$OUT/logs/peer-app.log" 2>&1
    say "the app's bench rc=$?"
    peer_ratios "$out"
}

suite_peer-prepare() {  # (not a suite to ask for: issue26 starts it detached) tools, then GGUFs
    peer_tools > "$OUT/logs/peer-build.log" 2>&1
    say "llama.cpp build rc=$?"
    local waited=0
    while [ ! -f /tmp/qwen2.5-7b/config.json ] && [ $waited -lt 1500 ]; do sleep 10; waited=$((waited + 10)); done
    peer_ggufs
}

# issue26: the re-laid-out NF4 kernel (--nf4-kernel relayout) against the default kernel,
# bitsandbytes 0.50 and llama.cpp, in steps that a call skips once done (markers in /tmp/issue26):
# run `bash bench/gpu.sh issue26` again, back to back (a machine is kept ~30 s after a call), until
# it prints "issue26: every step done". A step starts only if the call has time left for it
# (GPU_CALL_S, default 570 s of the 600 a call may run); llama.cpp's build and GGUFs run detached
# (setsid) from the first call on, so they go on between calls; nothing is built twice.
ISSUE26=/tmp/issue26
suite_issue26() {
    mkdir -p $ISSUE26/logs $ISSUE26/bg/logs
    local res=$ISSUE26/issue26.jsonl summary=$ISSUE26/summary.txt
    local budget=${GPU_CALL_S:-570}
    publish() {  # what comes back: at most a few files (the device tool returns 8)
        cp $res "$(name issue26)" 2>/dev/null
        cp $summary "$(name issue26-summary txt)" 2>/dev/null
        tar czf "$(name issue26-logs tar.gz)" -C $ISSUE26 logs bg/logs 2>/dev/null
    }
    note() { echo "$*" | tee -a $summary; }
    # a step: NAME SECONDS -- run unless done; stop the call if it would not finish in time
    want() {
        [ -f $ISSUE26/done.$1 ] && return 1
        if [ "$DRY" = 1 ]; then
            DRY_S=$(( ${DRY_S:-0} + $2 )); say "issue26 (dry): would run $1, ~$2 s (${DRY_S} s so far)"
            return 1
        fi
        local left=$(( budget - ($(date +%s) - T0) ))
        if [ $left -lt $2 ]; then
            say "issue26: $1 needs ~$2 s, $left s left in this call: run the same command again"
            STOP=1; return 1
        fi
        say "issue26: $1 (~$2 s)"
        return 0
    }
    done_() { touch $ISSUE26/done.$1; publish; }
    STOP=0
    # llama.cpp's tools and the two GGUFs, detached: they need the 7B folder, built below
    if [ "$DRY" = 1 ]; then
        say "issue26 (dry): would start llama.cpp's build and the GGUFs, detached"
    elif { [ ! -f $GGUF/q4_k_m.gguf ] || [ ! -f $GGUF/q4_0.gguf ]; } && \
            ! { [ -f $ISSUE26/bg.pid ] && kill -0 "$(cat $ISSUE26/bg.pid)" 2>/dev/null; }; then
        OUT=$ISSUE26/bg setsid bash bench/gpu.sh peer-prepare > $ISSUE26/bg/logs/peer-prepare.log 2>&1 < /dev/null &
        echo $! > $ISSUE26/bg.pid
        say "issue26: llama.cpp build and GGUF conversion started, detached (pid $(cat $ISSUE26/bg.pid))"
    fi
    if want model-7b 120; then
        build qwen2.5-7b && done_ model-7b || STOP=1
    fi
    # 1. per layer, 7B then 32B: nf4_gemv, relayout (alone and fused as launched), bitsandbytes'
    #    gemm_4bit and gemv_4bit; GB/s and share of the copy bandwidth (the 7B with the relayout
    #    kernel's config sweep, the 32B with its rule's config only)
    local m sweep est
    for m in 7b 32b; do
        [ $STOP = 1 ] && break
        [ $m = 7b ] && { sweep=${NF4_BENCH_RELAID_SWEEP_S:-90}; est=200; } || { sweep=0; est=150; }
        if want micro-$m $est; then
            NF4_BENCH_RELAID_SWEEP_S=$sweep timeout $((est + 60)) python3 bench/nf4_bench.py $ISSUE26/micro.jsonl \
                --models qwen2.5-$m > $ISSUE26/logs/micro-$m.log 2>&1
            local rc=$?
            grep -v "^{" $ISSUE26/logs/micro-$m.log | tail -12 | tee -a $summary
            say "micro-$m rc=$rc"
            cp $ISSUE26/micro.jsonl "$(name issue26-micro)" 2>/dev/null
            [ $rc = 0 ] && done_ micro-$m
        fi
    done
    # 2. the 7B decode at 1,271 tokens of context, 256 new: default kernel, relayout, llama.cpp
    #    Q4_K_M and Q4_0, all in one call (if the GGUFs are not ready yet, the repeat check runs
    #    first and this comes back after it)
    step_e2e() {
        [ $STOP = 0 ] && [ ! -f $ISSUE26/done.e2e-7b ] || return 0
        if [ "$DRY" = 1 ]; then [ -z "${DRY_E2E:-}" ] && { DRY_E2E=1; want e2e-7b 300; }; return 0; fi
        if [ ! -f $GGUF/q4_k_m.gguf ] || [ ! -f $GGUF/q4_0.gguf ]; then
            say "issue26: e2e-7b waits for the GGUFs (detached build: $(tail -1 $ISSUE26/bg/logs/peer-prepare.log 2>/dev/null | cut -c1-120))"
            return 0
        fi
        want e2e-7b 300 || return 0
        local e2e=$ISSUE26/e2e-7b.jsonl k
        : > $e2e
        for k in on relayout; do
            timeout 200 $BENCH --model /tmp/qwen2.5-7b --label qwen2.5-7b-nf4-$k --nf4-kernel $k \
                --skip sampling,plain,static,reuse --out $e2e > $ISSUE26/logs/e2e-7b-$k.log 2>&1
            say "the app, --nf4-kernel $k, rc=$?"
        done
        OUT=$ISSUE26 peer_llama_bench $e2e
        peer_ratios $e2e | tee -a $summary
        cat $e2e >> $res
        grep -q '"nf4_kernel": "relayout"' $e2e && done_ e2e-7b
    }
    step_e2e
    # 3. same input, same tokens: 1,000 new, greedy and seeded, three runs, prefix reuse, a fresh
    #    session, on the relayout kernel (bench/repeat_check.py)
    if [ $STOP = 0 ] && want repeat-7b 200; then
        timeout 300 python3 bench/repeat_check.py --decoders static --model /tmp/qwen2.5-7b \
            --label qwen2.5-7b-relayout --config unsloth-4bit --nf4-kernel relayout --modes greedy,seeded \
            --out $ISSUE26/repeat.jsonl > $ISSUE26/logs/repeat-7b.log 2>&1
        say "repeat-7b rc=$?"
        repeat_summary $ISSUE26/repeat.jsonl | tee -a $summary
        cat $ISSUE26/repeat.jsonl >> $res 2>/dev/null
        grep -q '"identical"' $ISSUE26/repeat.jsonl 2>/dev/null && done_ repeat-7b
    fi
    step_e2e  # if it waited for the GGUFs
    if [ $STOP = 0 ] && [ "$DRY" != 1 ] && [ ! -f $ISSUE26/done.e2e-7b ]; then
        local waited=0  # nothing else to do before it: wait for the detached build, while time lasts
        while { [ ! -f $GGUF/q4_k_m.gguf ] || [ ! -f $GGUF/q4_0.gguf ]; } && \
                [ -f $ISSUE26/bg.pid ] && kill -0 "$(cat $ISSUE26/bg.pid)" 2>/dev/null && \
                [ $(( budget - ($(date +%s) - T0) )) -gt 300 ]; do
            sleep 10; waited=$((waited + 10))
        done
        [ $waited -gt 0 ] && say "waited $waited s for the GGUFs"
        step_e2e
        [ -f $ISSUE26/done.e2e-7b ] || { say "issue26: e2e-7b not run yet (GGUFs: $(ls $GGUF 2>/dev/null | tr '\n' ' ')): run the same command again"; STOP=1; }
    fi
    # 4. the GPU tests of the relayout kernel: every 7B/32B shape exact, repeats, graph replay
    if [ $STOP = 0 ] && want tests 180; then
        timeout 230 python3 -m pytest -q -p no:cacheprovider tests/test_nf4_gpu.py -k "relaid" \
            > $ISSUE26/logs/tests.log 2>&1
        say "tests rc=$?"; tail -3 $ISSUE26/logs/tests.log | tee -a $summary
        done_ tests
    fi
    # 5. 32B: the model (NF4 as made, ~5 min), then its repeat check
    if [ $STOP = 0 ] && want model-32b 320; then
        build32 && done_ model-32b || STOP=1
    fi
    if [ $STOP = 0 ] && want repeat-32b 300; then
        timeout 320 python3 bench/repeat_check.py --decoders static --model /tmp/qwen2.5-32b-nf4 \
            --label qwen2.5-32b-relayout --config unsloth-4bit --nf4-kernel relayout --modes greedy,seeded \
            --new-tokens 1000 --out $ISSUE26/repeat.jsonl > $ISSUE26/logs/repeat-32b.log 2>&1
        say "repeat-32b rc=$?"
        repeat_summary $ISSUE26/repeat.jsonl | tee -a $summary
        done_ repeat-32b
    fi
    [ "$DRY" = 1 ] && { say "issue26 (dry): ~${DRY_S:-0} s of steps, ~$(( (${DRY_S:-0} + budget - 1) / budget )) calls of ${budget} s"; return 0; }
    publish
    [ $STOP = 0 ] && say "issue26: every step done" || say "issue26: not finished: run the same command again"
}

repeat_summary() {  # FILE: each configuration's identity check, one line each
    [ -s "$1" ] && python3 - "$1" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if "identical" in r:
        print(f"  {r['label']} {r['config']} {r['mode']}: identical={r['identical']} "
              f"(runs {r['repeats_agree']}, reuse {r['reuse_agree']} with {r['reused_tokens']} reused, "
              f"fresh {r['fresh_agree']} of {r['new_tokens']} tokens)")
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
