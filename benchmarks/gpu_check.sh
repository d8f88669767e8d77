#!/usr/bin/env bash
# The GPU check: one command for a lent GPU machine (one H200; python3 3.12 with torch, CUDA and
# triton; 16 cores; no network). Within GPU_CHECK_BUDGET_S seconds (default 480) it
#   1. writes the machine, the GPU and the packages it needs to $OUT/env.txt, naming what is
#      missing and how to bring it;
#   2. installs, offline, gensim and smart-open from benchmarks/gpu_bundle (made here by
#      benchmarks/gpu_bundle.sh, with the corpus) and this tree's torchw2v, in a throwaway folder;
#   3. runs every CUDA test ($OUT/tests.xml);
#   4. trains on wiki17m.txt.gz (3 epochs): torchw2v SG-NS d100 on the GPU, gensim SG-NS d100
#      with 16 workers, torchw2v CBOW-NS d100, SG-HS d100 and SG-NS d300, then gensim in those
#      settings while time is left (SG-HS last), with one epoch of SG-NS profiled
#      ($OUT/profile.txt) after the first pair. Each run is appended to $OUT/results.jsonl and
#      $OUT/report.md (a RESULTS.md block: words/s, speed vs gensim, scores, GPU memory) as
#      soon as it is measured;
#   5. sweeps the Triton engine's centers in flight (benchmarks/bench_triton_launch.py,
#      $OUT/launches.md) with what time is left.
# Each step has its own time limit, so one that fails or hangs leaves the rest their time;
# $OUT/check.log holds everything printed, ending with how each step ended. (The device call
# brings back at most 8 files from $OUT: the check writes at most 8.)
#
# Usage, from the repository root:
#   benchmarks/gpu_check.sh                  # on the GPU machine
#   GPU_CHECK_DRY_RUN=1 GPU_CHECK_BUNDLE=/tmp/bundle311 OUT=/tmp/gpu_check benchmarks/gpu_check.sh
#       # on CPU: a 20,000-token slice of data/wiki1m.txt.gz, 1 epoch, 2 workers, torchw2v on
#       # CPU, TRITON_INTERPRET=1 (the tests that need CUDA skip); the bundle built for this
#       # Python (see benchmarks/gpu_bundle.sh)
# GPU_CHECK_TOKENS=N trains on the first N tokens (whole lines) instead.
# GPU_CHECK_PLAN=launches runs the launch sweep (step 5) before the CUDA tests and trains
# nothing else; GPU_CHECK_SWEEP lists its variants (see benchmarks/bench_triton_launch.py).
set -uo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
bundle=${GPU_CHECK_BUNDLE:-benchmarks/gpu_bundle}
budget=${GPU_CHECK_BUDGET_S:-480}
OUT=${OUT:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
work=$(mktemp -d /tmp/gpu_check_work.XXXXXX)
if [[ ${GPU_CHECK_DRY_RUN:-0} == 1 ]]; then
    device=cpu source=data/wiki1m.txt.gz tokens=${GPU_CHECK_TOKENS:-20000} epochs=1 workers=2
    export TRITON_INTERPRET=1
else
    device=cuda source=$bundle/wiki17m.txt.gz tokens=${GPU_CHECK_TOKENS:-0} epochs=3 workers=16
    unset TRITON_INTERPRET
fi
export PYTHONUNBUFFERED=1 PYTHONPATH=$work/site
started=$SECONDS
plan=${GPU_CHECK_PLAN:-full}
# the defaults, then the open questions: whether hierarchical softmax and negative sampling
# take more centers in flight
sweep=${GPU_CHECK_SWEEP:-SG-NS:100:0 CBOW-NS:100:0 SG-HS:100:0 SG-HS:100:4096 \
    CBOW-NS:100:65536 SG-NS:100:65536 SG-NS:300:0}

# step NAME LIMIT_S LEAST_S COMMAND...: run COMMAND for at most LIMIT_S seconds and what is left
# of the budget; skip it when less than LEAST_S is left. Its outcome goes to $work/steps.txt.
step() {
    local name=$1 limit=$2 least=$3
    shift 3
    local left=$((budget - (SECONDS - started))) began=$SECONDS rc=0 outcome=ok
    if ((left < least)); then
        echo "$name: skipped, ${left}s of the ${budget}s budget left (it needs ${least}s)" |
            tee -a "$work/steps.txt"
        return 1
    fi
    ((limit > left)) && limit=$left
    echo "=== $name (at most ${limit}s, $(date -u +%H:%M:%S) UTC)"
    timeout -k 10 "$limit" "$@" || rc=$?
    if ((rc == 124 || rc == 137)); then
        outcome="TIMED OUT after ${limit}s"
    elif ((rc != 0)); then
        outcome="FAILED (exit $rc)"
    fi
    echo "$name: $outcome, $((SECONDS - began))s" | tee -a "$work/steps.txt"
    return "$rc"
}

# train LIBRARY SG HS VECTOR_SIZE LIMIT_S LEAST_S: one run of benchmarks/gpu_check.py train.
train() {
    local model=CBOW loss=NS
    (($2)) && model=SG
    (($3)) && loss=HS
    step "$1 $model-$loss d$4" "$5" "$6" "$python" benchmarks/gpu_check.py train "$OUT" --library "$1" \
        --sg "$2" --hs "$3" --vector-size "$4" --corpus "$work/corpus.txt" \
        --source "$(basename "$source")" --epochs "$epochs" --workers "$workers" --device "$device"
}

cuda_tests() {
    # -P: import the installed torchw2v, not this tree's
    step "CUDA tests" 200 30 "$python" -P -m pytest -q -rA -p no:cacheprovider \
        --junitxml="$OUT/tests.xml" -k cuda \
        tests/test_engine_triton.py tests/test_word2vec.py tests/test_engine_torch.py \
        tests/test_distributed.py
}

# launch_sweep RESERVE_S: the Triton engine's centers in flight against quality and speed
# (benchmarks/bench_triton_launch.py), while time is left beyond RESERVE_S.
launch_sweep() {
    local left=$((budget - (SECONDS - started) - $1))
    step "launch sweep" "$left" 40 "$python" benchmarks/bench_triton_launch.py "$OUT" \
        "$work/corpus.txt" --epochs "$epochs" --device "$device" --budget $((left - 30)) \
        $sweep
}

main() {
    echo "GPU check: budget ${budget}s, device $device, results in $OUT, scratch in $work"
    {
        date -u
        nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.max.sm \
            --format=csv 2>&1 || echo "nvidia-smi: not available"
        echo "nproc $(nproc); $("$python" --version 2>&1) at $(command -v "$python")"
    } | tee -a "$OUT/env.txt"
    step "install bundle" 60 20 "$python" -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --target "$work/site" "$bundle"/gensim-*.whl "$bundle"/smart_open-*.whl
    step "install torchw2v" 90 20 "$python" -m pip install -q --no-index --no-deps \
        --no-build-isolation --no-compile --no-cache-dir --target "$work/site" . ||
        { PYTHONPATH+=:$PWD && echo "torchw2v not installed: testing and training this tree's"; }
    step "environment" 60 10 "$python" benchmarks/gpu_check.py env "$OUT"

    if ! step "corpus" 60 10 "$python" benchmarks/gpu_check.py prepare "$source" "$tokens" \
        "$work/corpus.txt"; then
        plan=tests
    fi
    [[ $plan == launches ]] && launch_sweep 120
    cuda_tests
    if [[ $plan == full ]]; then
        train torchw2v 1 0 100 120 30
        train gensim 1 0 100 150 30
        step "profile SG-NS d100" 60 20 "$python" benchmarks/gpu_check.py profile "$OUT" \
            "$work/corpus.txt" --device "$device"
        train torchw2v 0 0 100 90 30
        train torchw2v 1 1 100 120 30
        train torchw2v 1 0 300 120 30
        train gensim 0 0 100 120 45
        train gensim 1 0 300 150 60
        train gensim 1 1 100 150 60  # last: 47 s an epoch with 16 workers on the H200
        launch_sweep 5
    fi

    echo "=== done in $((SECONDS - started))s of ${budget}s"
    cat "$work/steps.txt"
    cat "$OUT/report.md" 2>/dev/null || echo "no run finished: see $OUT/check.log"
}

main 2>&1 | tee -a "$OUT/check.log"
rm -rf "$work"
