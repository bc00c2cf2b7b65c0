"""Benchmark: `analyze --cluster ray` (a local Ray on this machine) against local `analyze`, same files, same run.

Runs on the main thread; each side is a fresh `main.py analyze` process, run order alternating, so that both
pay their own start-up (imports, model load, and for Ray its local cluster). Two workloads of real audio:

  short  N ESC-50 clips (5 s each, `../shared/data/esc50/audio`, the first N by name): per-file overhead
  long   F files of M minutes each (ESC-50 clips end to end, 16 kHz PCM-16 WAV): per-window throughput

For the capacity plan in docs/scale.md it also times the two stages alone, in this process on one thread:
decode + fbank (core.cluster_stages' loop, as a decode task runs it) in CPU seconds per hour of audio, and the
shipped model's scoring in ms per window (fp32, batch 8), as a CPU actor runs it.

  python bench/bench_cluster.py                       # 200 clips + 2 x 10 min, hop 1 s, shipped model
  python bench/bench_cluster.py --clips 40 --long 0   # quick

A markdown table goes to stdout, JSON to bench/results/cluster-cpu.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = ROOT / "bench" / ".cache" / "cluster"
RESULTS = ROOT / "bench" / "results"
ESC50 = next((p for p in (ROOT.parent / "shared", ROOT / "shared") if p.is_dir()), ROOT.parent / "shared") \
    / "data" / "esc50" / "audio"
SUMMARY = re.compile(r"done (\d+), skipped (\d+), failed (\d+); ([\d.]+) h of audio in ([\d.]+) s")


def inputs(clips: int, long_files: int, minutes: float) -> dict[str, Path]:
    """{workload: folder} of real audio, built once in the cache."""
    sources = sorted(ESC50.glob("*.flac")) or sorted((ROOT / "tests" / "data").glob("*.flac"))
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE.parent / ".gitignore").write_text("*\n")   # bench/.cache ignores itself, as bench_analyze's does
    folders = {}
    if clips:
        short = CACHE / f"short-{clips}"
        if not short.exists():
            short.mkdir(parents=True)
            for i in range(clips):
                src = sources[i % len(sources)]
                shutil.copy(src, short / (src.name if i < len(sources) else f"{i:05d}-{src.name}"))
        folders["short"] = short
    if long_files:
        long = CACHE / f"long-{long_files}x{minutes:g}min"
        if not long.exists():
            long.mkdir(parents=True)
            from core.audio_io import read_audio
            need = int(minutes * 60 * 16000)
            pieces, have, k = [], 0, 0
            while have < need * long_files:
                x = read_audio(sources[k % len(sources)], 16000)
                pieces.append(x)
                have += len(x)
                k += 1
            audio = np.concatenate(pieces)
            for j in range(long_files):
                sf.write(long / f"long-{j}.wav", audio[j * need:(j + 1) * need], 16000, subtype="PCM_16")
        folders["long"] = long
    return folders


def audio_hours(folder: Path) -> float:
    return sum(sf.info(p).duration for p in folder.iterdir()) / 3600


def run_side(folder: Path, side: str, hop: float, model: str | None) -> dict:
    out = CACHE / "out" / f"{folder.name}-{side}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, str(ROOT / "main.py"), "analyze", str(folder), "--out", str(out), "--hop", str(hop),
           "--quiet", *(["--model", model] if model else []), *(["--cluster", "ray"] if side == "ray" else [])]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{side} failed ({done.returncode}): {done.stderr[-2000:]}")
    result = {"wall_s": wall, "files": len(list(out.glob("*.params.csv")))}
    if side == "ray" and (m := SUMMARY.search(done.stderr)):
        result["pipeline_s"] = float(m.group(5))     # from the first file sent to the last export: no start-up
    return result


def decode_figure(folder: Path, features, hop: float) -> float:
    """Decode + fbank CPU s per audio hour of the files in folder, one thread, as a decode task runs it."""
    from core.cluster_stages import _file_chunks
    cpu0 = time.process_time()
    for p in sorted(folder.iterdir()):
        for _ in _file_chunks(0, str(p), features, hop, 32, 8.0):
            pass
    return (time.process_time() - cpu0) / audio_hours(folder)


def stage_figures(folders: dict[str, Path], hop: float, model: str | None, windows: int = 64) -> dict:
    """Decode + fbank CPU s per audio hour (per workload), and scoring ms per window, on one thread."""
    import torch

    from core.modelfile import load_model
    from core.scorer import Scorer
    torch.set_num_threads(1)
    loaded = load_model(model)
    decode = {name: decode_figure(folder, loaded.features, hop) for name, folder in folders.items()}
    scorer = Scorer(loaded, "cpu")
    x = torch.randn(8, loaded.features.num_frames, loaded.features.num_mel_bins) * 3 - 5   # log-mel-like
    scorer(x)   # warm-up
    cpu0 = time.process_time()
    for _ in range(windows // 8):
        scorer(x)
    score_ms = (time.process_time() - cpu0) / windows * 1e3
    return {"decode_fbank_cpu_s_per_audio_hour": decode, "score_cpu_ms_per_window": score_ms, "model": loaded.name,
            "window_s": loaded.features.window_s, "parameters": sum(p.numel() for p in loaded.model.parameters())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--long", type=int, default=2, help="long files (0: none)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--hop", type=float, default=1.0)
    ap.add_argument("--model", default=None, help="default: the shipped model")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    folders = inputs(args.clips, args.long, args.minutes)
    rows, report = [], {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                        "hop_s": args.hop, "workloads": {}}
    try:
        import ray
        report["ray"] = ray.__version__
    except ImportError:
        raise SystemExit("ray is not installed: pip install '.[cluster]'") from None
    for name, folder in folders.items():
        hours, n = audio_hours(folder), len(list(folder.iterdir()))
        runs = {"local": [], "ray": []}
        for r in range(args.repeats):
            for side in (("local", "ray") if r % 2 == 0 else ("ray", "local")):
                runs[side].append(run_side(folder, side, args.hop, args.model))
        med = {s: {k: float(np.median([x[k] for x in v])) for k in v[0]} for s, v in runs.items()}
        entry = {"files": n, "audio_h": hours, **{s: m for s, m in med.items()},
                 "runs": runs}                                   # every run: the machine is shared and noisy
        for side in ("local", "ray"):
            wall = med[side]["wall_s"]
            entry[side].update(files_per_s=n / wall, audio_h_per_s=hours / wall)
            rows.append(f"| {name} | {side} | {n} | {hours * 60:.1f} | {wall:.1f} | {n / wall:.2f} | "
                        f"{hours / wall * 3600:.0f} | {med['local']['wall_s'] / wall:.2f}x | "
                        f"{med[side].get('pipeline_s', float('nan')):.1f} |")
        report["workloads"][name] = entry
    report["stages"] = stage_figures(folders, args.hop, args.model)
    print("| workload | side | files | audio min | wall s | files/s | audio h per h | local wall / side | "
          "pipeline s (ray) |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    st = report["stages"]
    decode = ", ".join(f"{k} {v:.1f}" for k, v in st["decode_fbank_cpu_s_per_audio_hour"].items())
    print(f"\nstages on one thread: decode + fbank CPU s per audio hour: {decode}; scoring "
          f"{st['score_cpu_ms_per_window']:.2f} CPU ms per window ({st['model']}, "
          f"{st['parameters'] / 1e6:.1f} M parameters, {st['window_s']:.2f} s window, fp32, batch 8)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cluster-cpu.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
