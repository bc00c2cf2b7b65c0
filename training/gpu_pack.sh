#!/usr/bin/env bash
# Pack what training/gpu_run.sh needs into .gpu/ (git-ignored via .git/info/exclude), under the 64 MiB a
# GPU-machine call may carry with the repository: ESC-50 as its 37 MB Opus copy, the FSDD clips the recipe
# uses (its seeded 400 training clips + the test split, 4 MB), and the soundfile wheels (the GPU image has
# no soundfile). Then: run(command="... DATA=.gpu bash training/gpu_run.sh", carry=[".gpu"]).
# With CORPUS=<out of `python -m training corpus`>, also its Opus copy (about 19 MB; the ESC-50 domain variants,
# 1.45 h, do not fit and are left out).
# Usage: [CORPUS=DIR] bash training/gpu_pack.sh [DATA_DIR]   (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$(realpath "${1:-../shared/data}")
mkdir -p .git/info && grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/esc50/meta .gpu/fsdd/audio .gpu/whl
cp "$DATA/esc50/opus32k.tar" .gpu/esc50/ && cp "$DATA/esc50/meta/esc50.csv" .gpu/esc50/meta/
python - "$DATA/fsdd" <<'PY'
import csv, shutil, sys
from pathlib import Path
from training.config import TrainConfig
from training.data import load_clips, parse_source
root = Path(sys.argv[1])
spec = next(s for s in TrainConfig().data if s.startswith("fsdd:"))
_, _, opts = parse_source(spec)
suffix = "".join(f"@{k}={v}" for k, v in opts.items())
keep = {Path(c.path).name for c in load_clips((f"fsdd:{root}{suffix}",), seed=TrainConfig().seed)}
rows = [r for r in csv.DictReader(open(root / "manifest.csv", newline="")) if Path(r["filename"]).name in keep]
with open(".gpu/fsdd/manifest.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
for r in rows:
    shutil.copy(root / r["filename"], Path(".gpu/fsdd") / r["filename"])
again = {Path(c.path).name for c in load_clips((f"fsdd:.gpu/fsdd{suffix}",), seed=TrainConfig().seed)}
assert again == keep, "the subset would not give the recipe's FSDD clips"
print(f"fsdd: {len(rows)} clips")
PY
if [ -n "${CORPUS:-}" ]; then   # the extra training audio (python -m training corpus), as Opus: about 19 MB
    python -m training corpus-pack "$CORPUS/manifest.csv" --out .gpu/corpus
fi
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu/whl "soundfile==$(python -c 'import soundfile; print(soundfile.__version__)')" cffi pycparser
du -sh .gpu
