"""Resampler quality and cost, against a baseline revision in the same run (issue 10, defect 13).

    python bench/bench_resample.py [--baseline REV] [--out bench/results/resample-cpu.json]

For the StreamingResampler of this checkout and that of core/audio_io.py at REV (loaded from git, so both
run in one process under the same load):
- passband: gain in dB of sines at 1, 4, 6, 7, 7.5 kHz resampled from 44.1 and 48 kHz to 16 kHz;
- speed: seconds to resample one minute of 44.1 kHz audio in 4 s blocks (best of 3), and the ratio;
- events: the four ESC-50 clips of tests/data (16 kHz), alone and as one scene with 1 s gaps, upsampled to
  44.1 kHz stereo with a high-quality reference (a 512-zero-crossing Kaiser sinc in float64), both analysed with the shipped model at a 1 s hop, the
  default event rule: max |score difference| and whether the events are identical.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # one core, as the decode thread has next to the model:
os.environ.setdefault("OMP_NUM_THREADS", "1")        # threaded BLAS on a busy machine was 25x slower, and noisy
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
import torchaudio.functional as AF  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import core.audio_io as audio_io  # noqa: E402

CLIPS = ["1-100032-A-0.flac", "1-44831-A-1.flac", "4-150364-B-46.flac", "5-251426-B-30.flac"]
# The reference upsampler keeps everything of the 16 kHz original below 7.9 kHz. torchaudio's kaiser_best
# (64, rolloff 0.9476) would not: -3 dB at 7.5 kHz, -14 dB at 7.7 kHz, a loss no downsampler can undo.
REFERENCE = dict(lowpass_filter_width=512, rolloff=0.995, resampling_method="sinc_interp_kaiser",
                 beta=14.769656459379492)
FREQS_HZ = [1000, 4000, 6000, 7000, 7500]


def load_baseline(rev: str):
    source = subprocess.run(["git", "show", f"{rev}:core/audio_io.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "audio_io_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("audio_io_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module            # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def resample(cls, x: np.ndarray, orig_hz: int, new_hz: int = 16000, block: int | None = None) -> np.ndarray:
    r = cls(orig_hz, new_hz)
    block = block or len(x)
    return np.concatenate([r.process(x[i:i + block]) for i in range(0, len(x), block)] + [r.flush()])


def gain_db(cls, orig_hz: int, freq_hz: float) -> float:
    """Least-squares amplitude of the sine in the middle of 2 s of output, in dB re the input's 0.5."""
    n = 2 * orig_hz
    x = (0.5 * np.sin(2 * np.pi * freq_hz * np.arange(n) / orig_hz)).astype(np.float32)
    y = resample(cls, x, orig_hz).astype(np.float64)
    t = np.arange(len(y)) / 16000
    inner = slice(len(y) // 4, 3 * len(y) // 4)
    basis = np.stack([np.sin(2 * np.pi * freq_hz * t), np.cos(2 * np.pi * freq_hz * t)], axis=1)[inner]
    coef, *_ = np.linalg.lstsq(basis, y[inner], rcond=None)
    return float(20 * np.log10(np.hypot(*coef) / 0.5))


def seconds_per_minute(cls, orig_hz: int = 44100, repeats: int = 3) -> float:
    x = (np.random.default_rng(0).standard_normal(60 * orig_hz) * 0.1).astype(np.float32)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        resample(cls, x, orig_hz, block=4 * orig_hz)
        best = min(best, time.perf_counter() - t0)
    return best


def make_44k_stereo(x: np.ndarray, path: Path) -> Path:
    """x (16 kHz) as 44.1 kHz stereo: a high-quality upsampling (float64), two different channels whose
    mean is the audio; the side signal never takes a channel past full scale where the mid is not."""
    y = AF.resample(torch.from_numpy(x.astype(np.float64)), 16000, 44100, **REFERENCE).numpy()
    side = 0.2 * y[::-1]
    headroom = np.maximum(0.0, 1.0 - np.abs(y))
    side = np.clip(side, -headroom, headroom)
    sf.write(path, np.stack([y + side, y - side], axis=1).astype(np.float32), 44100, subtype="FLOAT")
    return path


def scene() -> np.ndarray:
    """The four clips one after another with 1 s of silence between them (23 s, 19 windows at 1 s)."""
    gap = np.zeros(16000)
    parts = []
    for name in CLIPS:
        parts += [sf.read(ROOT / "tests" / "data" / name, dtype="float64")[0], gap]
    return np.concatenate(parts[:-1])


def event_agreement(cls, folder: Path) -> dict:
    from core.analyze import Analyzer
    from core.config import EventConfig
    from core.events import detect_events
    from core.modelfile import load_model
    from core.scorer import Scorer

    saved = audio_io.StreamingResampler
    audio_io.StreamingResampler = cls          # iter_blocks looks it up at call time
    try:
        analyzer = Analyzer(Scorer(load_model(None), "cpu"), hop_s=1.0)
        rule, rows = EventConfig(), {}
        inputs = {name: sf.read(ROOT / "tests" / "data" / name, dtype="float64")[0] for name in CLIPS}
        inputs["scene (4 clips, 1 s gaps)"] = scene()
        for i, (name, x) in enumerate(inputs.items()):
            sf.write(folder / f"{i}-16k.wav", x.astype(np.float32), 16000, subtype="FLOAT")
            a = analyzer.analyze(str(folder / f"{i}-16k.wav"))
            b = analyzer.analyze(str(make_44k_stereo(x, folder / f"{i}-44k.wav")))
            ea, eb = detect_events(a, rule), detect_events(b, rule)
            key = lambda e: (a.labels[e.label_index].name, e.start_s, e.end_s)  # noqa: E731
            rows[name] = {"windows": int(a.num_windows),
                          "max_abs_score_diff": float(np.max(np.abs(a.scores - b.scores))),
                          "events_16k": [key(e) for e in ea], "events_44k": [key(e) for e in eb],
                          "identical_events": [key(e) for e in ea] == [key(e) for e in eb]}
    finally:
        audio_io.StreamingResampler = saved
    return {"clips": rows, "max_abs_score_diff": max(r["max_abs_score_diff"] for r in rows.values()),
            "all_events_identical": all(r["identical_events"] for r in rows.values())}


def measure(cls, folder: Path) -> dict:
    return {"passband_db": {str(rate): {str(f): round(gain_db(cls, rate, f), 3) for f in FREQS_HZ}
                            for rate in (44100, 48000)},
            "s_per_min_44k": seconds_per_minute(cls),
            "events": event_agreement(cls, folder)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="HEAD", help="git revision whose core/audio_io.py is 'before'")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        before = measure(load_baseline(args.baseline).StreamingResampler, Path(tmp))
        after = measure(audio_io.StreamingResampler, Path(tmp))
    result = {"baseline": args.baseline, "before": before, "after": after,
              "speed_ratio_after_over_before": after["s_per_min_44k"] / before["s_per_min_44k"]}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        from core.atomic import atomic_write
        with atomic_write(args.out) as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
