#!/usr/bin/env bash
# 5-fold ESC-50 cross-validation + the all-folds shipping run, sized for about 15 minutes of one H100/H200.
#
# Needs, next to the repository (carried to the GPU machine, 64 MiB at most in all):
#   $DATA/esc50/opus32k.tar  (37 MB: audio/<name>.opus), $DATA/esc50/meta/esc50.csv, $DATA/fsdd (15.5 MB).
# Usage: DATA=../shared/data OUT=/tmp/out bash training/gpu_run.sh [extra key=value overrides]
# Time (an estimate; not yet run on a GPU): ~1 min to unpack and cache features, 5 x 1.4 min folds, 1.6 min
# shipping run, evaluation and export: about 11 minutes of the 15, the rest for the machine's start.
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${OUT:-/tmp/out}
WORK=/tmp/esc50-opus
mkdir -p "$WORK/meta" "$OUT"
tar -xf "$DATA/esc50/opus32k.tar" -C "$WORK"                  # -> $WORK/audio/*.opus
cp "$DATA/esc50/meta/esc50.csv" "$WORK/meta/esc50.csv"          # public layout: .wav names, .opus found
COMMON=(data="esc50:$WORK,fsdd:$DATA/fsdd@label=speech@limit=400,negatives:320"
        device=cuda threads=8 batch_size=128 lr=1e-3 warmup_epochs=5 epochs=1000
        cache_dir=/tmp/cache progress=false "$@")
python -m training cv --folds 1,2,3,4,5 "${COMMON[@]}" time_budget_min=1.4 out_dir="$OUT/cv" | tee "$OUT/cv_table.md"
python -m training train "${COMMON[@]}" time_budget_min=1.6 eval_fold=0 out_dir="$OUT/ship"
python -m training report "$OUT/ship/model.safetensors" --esc50 "$DATA/esc50" --fsdd "$DATA/fsdd" \
    --fold 0 --out "$OUT/ship/report.json"   # speech and false tags; accuracy comes from the CV
