#!/usr/bin/env bash
# ESC-50 5-fold cross-validation and the all-folds shipping run, all six at once on one GPU, plus the
# training-throughput bench. Sized for one 10-minute call on an H100/H200 (15 minutes of device time in all).
#
# The six runs are small (2 M parameters, batch 32): one alone leaves most of the GPU idle, so they share
# it as six processes (2 CPU threads each) and each trains for MIN minutes on the recipe's defaults.
# Needs, in $DATA (carried to the GPU machine; 64 MiB per call in all):
#   esc50/opus32k.tar (audio/<name>.opus), esc50/meta/esc50.csv, fsdd/ (manifest.csv + audio/; the 400
#   training clips the recipe samples plus the test split are enough); optionally corpus/ (manifest.csv +
#   audio/*.opus: the extra training audio of `python -m training corpus`, packed by gpu_pack.sh).
# Usage: DATA=../shared/data OUT=/tmp/out MIN=6.5 bash training/gpu_run.sh [extra key=value overrides]
# Writes to $OUT: run.log, bench.json, gpu_util.csv (nvidia-smi every 0.5 s), cv.tar.gz (per-fold logs and
# evaluation files, cv_summary.csv), ship.tar.gz (its logs), ship.safetensors (the model to ship).
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${OUT:-/tmp/out}
MIN=${MIN:-6.5}
DEVICE=${DEVICE:-cuda}
RUNS=${RUNS:-/tmp/runs-gpu}
WORK=/tmp/esc50-opus
mkdir -p "$WORK/meta" "$OUT" "$RUNS"
tar -xf "$DATA/esc50/opus32k.tar" -C "$WORK"                  # -> $WORK/audio/*.opus
cp "$DATA/esc50/meta/esc50.csv" "$WORK/meta/esc50.csv"          # public layout: .wav names, .opus found
SOURCES="esc50:$WORK,fsdd:$DATA/fsdd@label=speech@limit=400,negatives:320"
[ -f "$DATA/corpus/manifest.csv" ] && SOURCES="$SOURCES,csv:$DATA/corpus/manifest.csv"   # gpu_pack.sh with CORPUS=
COMMON=(data="$SOURCES"
        device="$DEVICE" threads=2 eval_every=5 epochs=100000 time_budget_min="$MIN"
        cache_dir=/tmp/cache progress=false "$@")
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -lms 500 > "$OUT/gpu_util.csv" &
    SMI=$!
fi
export CODE_REVISION=${CODE_REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}  # pass it: a copy on a GPU machine may carry stale git data
python -m training cache "${COMMON[@]}" out_dir="$RUNS"                                   # all clips, all cores
python bench/bench_training.py --sections train --threads 2 --batch 32,128 --steps 20 --device "$DEVICE" \
    --out "$OUT/bench.json"
echo "=== training: 5 folds + shipping run at once, $MIN min each ($(date -u +%T))"
python -m training train "${COMMON[@]}" eval_fold=0 out_dir="$RUNS/ship" > "$RUNS/ship.log" 2>&1 &
SHIP=$!
python -m training cv --folds 1,2,3,4,5 --jobs 5 "${COMMON[@]}" out_dir="$RUNS/cv" | tee "$RUNS/cv_table.md"
wait $SHIP || echo "shipping run failed: see ship.log"
echo "=== done ($(date -u +%T))"
[ -n "${SMI:-}" ] && kill "$SMI" || true
cp "$RUNS/ship/model.safetensors" "$OUT/ship.safetensors" || true
tar -czf "$OUT/cv.tar.gz" -C "$RUNS" --exclude='*.pt' --exclude='*.safetensors' cv cv_table.md
tar -czf "$OUT/ship.tar.gz" -C "$RUNS" --exclude='*.pt' --exclude='*.safetensors' ship ship.log
cat "$RUNS/cv_table.md"; tail -3 "$RUNS/ship.log"
