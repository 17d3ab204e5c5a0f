#!/usr/bin/env bash
# The GPU check, in two parts that each fit one 10-minute device command:
#
#   bash bench/gpu_check.sh quick   # tests/test_gpu.py, then bench/bench_gpu.py (at most 6.5 minutes)
#   bash bench/gpu_check.sh paper   # the paper's whole experiment: train/compare.py --preset paper
#                                   # (SeqGAN, the constant-reward control, the temperature curve)
#   bash bench/gpu_check.sh seqgan  # the paper's SeqGAN run alone (train/adversarial.py --preset paper), for
#                                   # as many rounds as $PAPER_S allows: its NLL-oracle every 5 rounds
#   bash bench/gpu_check.sh all     # quick, then paper
#   bash bench/gpu_check.sh session # what one 10-minute command holds ($TOTAL_S, default 570 s): the
#                                   # tests ($TEST_S, default 150), the training step's variants, one
#                                   # round in auto precision and the compiled step ($BENCH_S, default
#                                   # 150), then seqgan for the time left, with --compile where the
#                                   # benchmark found the compiled step faster
#
# Everything it measures goes to $OUT (default gpu_results/): at most 8 files, none in a subfolder
# (the device machine's limits), the run folders packed into one archive without their checkpoints.
# Needs: python3 with a CUDA torch; gymnasium, stable-baselines3 and sb3-contrib (from .whl/ if the
# machine lacks them: bench/gpu_wheels.sh downloads them); the paper's oracle in $ORACLE (default:
# shared/benchmarks/paper_oracle/target_params.npz in or beside the checkout, else .gpu/target_params.npz).
# Time limits: $TEST_S for the tests, $BENCH_S for the benchmark, $PAPER_S for the paper experiment.
# A smoke test of the script on a CPU: PRESET=tiny DEVICE=cpu ORACLE=none BENCH_ARGS="--device cpu --tiny
# --d-steps 2" (tests/test_bench.py runs it).
set -u -o pipefail
cd "$(dirname "$0")/.."
PART=${1:-all}
OUT=${OUT:-gpu_results}
PRESET=${PRESET:-paper}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
python3 - <<'EOF' 2>&1 | tee "$OUT/machine.txt"
import torch, importlib
print("torch", torch.__version__, "cuda", torch.version.cuda, "device",
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "NONE")
for name in ("gymnasium", "stable_baselines3", "sb3_contrib"):
    try:
        print(name, importlib.import_module(name).__version__)
    except ImportError:
        print(name, "MISSING (tests that need it fail or skip)")
EOF
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv >>"$OUT/machine.txt" 2>&1

quick() {
    echo "== tests/test_gpu.py"  # -v: each outcome is logged as it comes, should the limit cut the run
    local workers=()  # the tests are tiny runs in subprocesses: several share the GPU
    if python3 -c "import xdist" 2>/dev/null; then workers=(-n 6); fi
    timeout "${TEST_S:-240}" python3 -m pytest -v -p no:cacheprovider "${workers[@]}" tests/test_gpu.py 2>&1 \
        | tee "$OUT/test_gpu.log" | tail -25
    echo "== bench/bench_gpu.py"
    # shellcheck disable=SC2086  # BENCH_ARGS is a list of options
    timeout "${BENCH_S:-150}" python3 bench/bench_gpu.py --threads 4 ${BENCH_ARGS:-} --save "$OUT/bench_gpu" 2>&1 \
        | tail -30
}

oracle_args() {  # the paper's oracle as options for the scripts ("none": the built-in random oracle)
    local oracle=${ORACLE:-}
    for candidate in shared/benchmarks/paper_oracle/target_params.npz \
        ../shared/benchmarks/paper_oracle/target_params.npz .gpu/target_params.npz; do
        if [ -z "$oracle" ] && [ -f "$candidate" ]; then oracle=$candidate; fi
    done
    if [ "$oracle" = none ]; then
        return
    elif [ -n "$oracle" ]; then
        echo "--oracle $oracle"
    else
        echo "NO PAPER ORACLE FOUND: the built-in random oracle stands in (not the paper's table)" >&2
    fi
}

paper() {
    local oracle_args
    read -r -a oracle_args <<<"$(oracle_args 2>>"$OUT/paper.log")"
    echo "== train/compare.py --preset $PRESET on $DEVICE (${oracle_args[*]:-built-in oracle}) ${SEQGAN_ARGS:-}" \
        | tee -a "$OUT/paper.log"
    local runs=${RUNS:-/tmp/seqgan_runs} extra=()
    read -r -a extra <<<"${SEQGAN_ARGS:-}"  # e.g. --compile: the runs' options, after --extra
    SECONDS=0
    timeout "${PAPER_S:-540}" python3 train/compare.py --preset "$PRESET" "${oracle_args[@]}" \
        --methods seqgan,constant --out "$runs" --extra --device "$DEVICE" --threads 4 "${extra[@]}" 2>&1 \
        | tr '\r' '\n' | grep -v "it/s\]$" \
        | tee -a "$OUT/paper.log" | tail -40
    echo "wall time: $SECONDS s (limit ${PAPER_S:-540} s)" | tee -a "$OUT/paper.log"
    find "$runs" -name comparison.md -exec cp {} "$OUT/" \; 2>/dev/null
    find "$runs" -name comparison.png -exec cp {} "$OUT/" \; 2>/dev/null
    tar -czf "$OUT/paper_runs.tar.gz" --exclude='*.pt' --exclude='events.out.*' -C "$runs" . 2>/dev/null
}

seqgan() {
    local oracle_args runs=${RUNS:-/tmp/seqgan_runs}
    read -r -a oracle_args <<<"$(oracle_args 2>>"$OUT/seqgan.log")"
    echo "== train/adversarial.py --preset $PRESET on $DEVICE (${oracle_args[*]:-built-in oracle}) ${SEQGAN_ARGS:-}" \
        | tee -a "$OUT/seqgan.log"
    SECONDS=0
    local extra=()
    read -r -a extra <<<"${SEQGAN_ARGS:-}"
    timeout "${PAPER_S:-540}" python3 train/adversarial.py --preset "$PRESET" "${oracle_args[@]}" "${extra[@]}" \
        --out "$runs" --name seqgan --device "$DEVICE" --threads 4 2>&1 | tr '\r' '\n' \
        | grep -v "it/s\]$" | tee -a "$OUT/seqgan.log" | tail -5
    echo "wall time: $SECONDS s (limit ${PAPER_S:-540} s)" | tee -a "$OUT/seqgan.log"
    cp "$runs/seqgan/metrics.csv" "$OUT/seqgan_metrics.csv" 2>/dev/null
}

session() {
    local start=$SECONDS
    TEST_S=${TEST_S:-150} BENCH_S=${BENCH_S:-150} \
        BENCH_ARGS=${BENCH_ARGS:---round-precisions auto --compile --d-steps 200} \
        quick
    PAPER_S=$(( ${TOTAL_S:-570} - (SECONDS - start) - 10 ))
    if [ "$PAPER_S" -lt 30 ]; then
        echo "no time left for the SeqGAN run" | tee -a "$OUT/seqgan.log"
        return
    fi
    PAPER_S=$PAPER_S SEQGAN_ARGS=${SEQGAN_ARGS:-$(compile_if_faster "$OUT/bench_gpu.txt")} seqgan
}

compile_if_faster() {  # "--compile" where the benchmark's compiled one-product step beat the graphed one
    python3 - "$1" <<'EOF'
import re, sys
try:
    text = open(sys.argv[1]).read()
except OSError:
    sys.exit()
ms = {m[1]: float(m[2]) for m in re.finditer(r"^ +((?:graphed|compiled) bf16 one-product) +([0-9.]+) ms/step",
                                             text, re.M)}
if ms.get("compiled bf16 one-product", float("inf")) < ms.get("graphed bf16 one-product", float("inf")):
    print("--compile")
EOF
}

case "$PART" in
    quick) quick ;;
    paper) paper ;;
    seqgan) seqgan ;;
    all) quick; paper ;;
    session) session ;;
    *) echo "usage: bash bench/gpu_check.sh quick|paper|seqgan|all|session" >&2; exit 2 ;;
esac
ls -la "$OUT"
