#!/usr/bin/env bash
# The engine on a real GPU: checks and a bench that need CUDA, in one call (about 3 minutes on an H200).
#   1. tests that skip without CUDA (fbank on the GPU equals the CPU's)
#   2. the shipped default model through the Analyzer on CUDA vs the CPU, both the exact model (fp32; cuDNN
#      may run the patch convolution in TF32, hence a tolerance): same
#      files, same windows; prints the largest score difference and whether top labels agree
#   3. `main.py analyze --device cuda` on the test clips (the CLI's GPU path, event tables written)
#   4. bench/bench_analyze.py --device cuda on AUDIO (default: a 10-minute 16 kHz file): hf vs ours at
#      AST-base, 1024 frames, batch 64, plus the model alone against AST.md's floor
# Usage: OUT=/tmp/out AUDIO=file.flac bash bench/gpu_check.sh   (needs soundfile; see training/gpu_run.sh)
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
status=0
echo "=== 1. CUDA tests"
python -m pytest -q -p no:cacheprovider tests/core/test_features.py -k cuda || status=1
echo "=== 2. default model: Analyzer on CUDA vs CPU"
python - <<'PY' || status=1
import glob, numpy as np
from core.analyze import Analyzer
from core.modelfile import load_model
from core.scorer import Scorer
loaded = load_model(None)
files = sorted(glob.glob("tests/data/*.flac"))
worst, agree = 0.0, 0
for f in files:
    cpu = Analyzer(Scorer(loaded, "cpu"), hop_s=1.0, batch_size=8).analyze(f).scores
    gpu = Analyzer(Scorer(loaded, "cuda"), hop_s=1.0, batch_size=8).analyze(f).scores
    assert cpu.shape == gpu.shape, (cpu.shape, gpu.shape)
    worst = max(worst, float(np.abs(cpu - gpu).max()))
    agree += int((cpu.argmax(1) == gpu.argmax(1)).all())
print(f"{len(files)} files: max |cuda - cpu| score {worst:.2e}; top label equal in every window of {agree}/{len(files)} files")
assert worst < 5e-2, "the model on the GPU and on the CPU disagree"
PY
echo "=== 3. main.py analyze --device cuda"
python main.py analyze tests/data/*.flac --device cuda --out "$OUT/analyze" --formats tags,audacity && ls "$OUT/analyze" | head || status=1
echo "=== 4. bench_analyze on CUDA"
if [ -n "${AUDIO:-}" ]; then
    python bench/bench_analyze.py --device cuda --audio "$AUDIO" && cp bench/results/analyze-cuda.json "$OUT/" || status=1
fi
exit $status
