"""Benchmark: the model alone through each backend, precision, thread count and batch size, in one process.

Runs on the main thread. Input: real windows (the 10-minute ESC-50 scene of bench_analyze, normalised log-mel),
so the score differences are those of real audio. For each model and configuration: a warm-up call, then calls
until `--seconds` have passed (at least 3); the median ms per window, and the max |score - torch fp32 score|.

  models  default: the shipped model (0.25 GFLOP per window); tiny: AST-tiny at 1024 frames (26 GFLOP);
          base: AST-base at 1024 frames (261 GFLOP), random weights, batch 1 only (seconds per call).
  start   time to a ready Scorer with an empty conversion cache, and with the cache filled.
  load    the thread policy's measurement: a second process running torch matmuls on 1 or 2 threads while
          this one scores one window per call (as live) on 1 or 2 threads; p50/p95/max ms per call.

Usage: python bench/bench_backends.py [--models default,tiny,base] [--seconds 3] [--no-load]; markdown to
stdout, JSON to bench/results/backends-cpu.json.
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.bench_analyze import machine_info, make_audio  # noqa: E402
from core.backends import import_openvino  # noqa: E402
from core.config import FeatureConfig, InferenceOptions, ModelConfig  # noqa: E402
from core.features import fbank, normalize  # noqa: E402
from core.labels import audioset_labels  # noqa: E402
from core.model import AST  # noqa: E402
from core.modelfile import LoadedModel, load_model  # noqa: E402
from core.scorer import Scorer  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BUSY = "import sys, time, torch\ntorch.set_num_threads(int(sys.argv[1]))\na = torch.randn(512, 512)\n" \
       "end = time.time() + float(sys.argv[2])\nwhile time.time() < end:\n    a = torch.tanh(a @ a)\n"


def model(name: str) -> LoadedModel:
    if name == "default":
        return load_model()
    torch.manual_seed(0)
    cfg = ModelConfig(embed_dim=192, num_heads=3) if name == "tiny" else ModelConfig()
    return LoadedModel(AST(cfg).eval(), FeatureConfig(num_frames=1024), audioset_labels(), f"ast-{name}", "ast-tagger")


def real_windows(features: FeatureConfig, count: int) -> torch.Tensor:
    """`count` normalised windows (B, T, F) from the 10-minute ESC-50 scene, 5 s apart."""
    import soundfile as sf
    wave, _ = sf.read(make_audio(10), dtype="float32", frames=16000 * (5 * count + 11))
    x = normalize(fbank(torch.from_numpy(wave), features), features)
    T = features.num_frames
    return torch.stack([x[500 * k:500 * k + T] for k in range(count)])


def configurations(batches: list[int]):
    backends = ["torch"] + (["openvino"] if import_openvino() else [])
    return itertools.product(backends, ["fp32", "bf16"], [1, 2], batches)


def time_calls(scorer: Scorer, x: torch.Tensor, seconds: float) -> list[float]:
    scorer(x)
    times, start = [], time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        scorer(x)
        times.append(time.perf_counter() - t)
    return times


def table(name: str, loaded: LoadedModel, seconds: float) -> list[dict]:
    batches = [1] if name == "base" else [1, 8]
    x = real_windows(loaded.features, max(batches))
    reference = Scorer(loaded, InferenceOptions("cpu", "torch", "fp32", 1))(x)
    rows = []
    for backend, precision, threads, batch in configurations(batches):
        scorer = Scorer(loaded, InferenceOptions("cpu", backend, precision, threads))
        times = time_calls(scorer, x[:batch], seconds)
        scores = scorer(x)
        rows.append({"model": name, "backend": backend, "precision": precision, "threads": threads, "batch": batch,
                     "ms_per_window": 1e3 * statistics.median(times) / batch, "calls": len(times),
                     "max_score_difference": float(np.abs(scores - reference).max())})
        print(f"{name} {scorer.describe()} batch {batch}: {rows[-1]['ms_per_window']:.2f} ms/window", file=sys.stderr)
    return rows


def start_times(loaded: LoadedModel) -> dict:
    """Seconds to a ready OpenVINO Scorer (bf16) with an empty cache, then with the entry it wrote."""
    with tempfile.TemporaryDirectory() as cache:
        os.environ["AST_TAGGER_CACHE"] = cache
        try:
            out = {}
            for case in ("empty_cache_s", "cached_s"):
                t = time.perf_counter()
                Scorer(loaded, InferenceOptions("cpu", "openvino", "bf16"))
                out[case] = time.perf_counter() - t
            return out
        finally:
            del os.environ["AST_TAGGER_CACHE"]


def under_load(cases: list[tuple[str, LoadedModel, str, str]], calls: int) -> list[dict]:
    """ms per one-window call while another process keeps 0, 1 or 2 torch threads busy."""
    rows = []
    for busy in (0, 1, 2):
        other = subprocess.Popen([sys.executable, "-c", BUSY, str(busy), "3600"]) if busy else None
        try:
            time.sleep(1.0)
            for (name, loaded, backend, precision), threads in itertools.product(cases, (1, 2)):
                scorer = Scorer(loaded, InferenceOptions("cpu", backend, precision, threads))
                x = real_windows(loaded.features, 1)
                scorer(x)
                ms = []
                for _ in range(calls if name == "default" else max(3, calls // 10)):
                    t = time.perf_counter()
                    scorer(x)
                    ms.append(1e3 * (time.perf_counter() - t))
                    time.sleep(0.05)   # a live tagger waits for the next hop between calls
                rows.append({"busy_threads": busy, "model": name, "inference": scorer.describe(),
                             "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
                             "max_ms": max(ms), "calls": len(ms)})
                print(f"busy {busy}: {name} {scorer.describe()}: p95 {rows[-1]['p95_ms']:.1f} ms", file=sys.stderr)
        finally:
            if other:
                other.kill()
                other.wait()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="default,tiny,base", help="any of default, tiny, base")
    p.add_argument("--seconds", type=float, default=3.0, help="timing per configuration (default 3)")
    p.add_argument("--no-load", action="store_true", help="skip the runs under load")
    p.add_argument("--json", type=Path, default=RESULTS / "backends-cpu.json")
    args = p.parse_args(argv)
    names = args.models.split(",")
    info = {**machine_info("cpu"), "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "load_average_at_start": os.getloadavg(),
            "openvino": import_openvino().__version__ if import_openvino() else None}
    loaded = {name: model(name) for name in names}
    rows = [row for name in names for row in table(name, loaded[name], args.seconds)]
    starts = {name: start_times(loaded[name]) for name in names if import_openvino()}
    load_cases = [(n, loaded[n], b, pr) for n, b, pr in
                  (("default", "torch", "fp32"), ("default", "openvino", "bf16"), ("base", "openvino", "bf16"))
                  if n in loaded and (b == "torch" or import_openvino())]
    loads = [] if args.no_load else under_load(load_cases, calls=60)
    info["load_average_at_end"] = os.getloadavg()
    print(f"\n{info['cpu']}, {info['cpus_usable']} CPUs usable, torch {info['torch']}, openvino {info['openvino']}; "
          f"load average {info['load_average_at_start'][0]:.1f} at the start, {info['load_average_at_end'][0]:.1f} "
          "at the end\n")
    print("| model | backend | precision | threads | batch | ms/window | vs torch fp32 same threads+batch "
          "| max score diff |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ref = next(q for q in rows if (q["model"], q["threads"], q["batch"], q["backend"], q["precision"])
                   == (r["model"], r["threads"], r["batch"], "torch", "fp32"))
        print(f"| {r['model']} | {r['backend']} | {r['precision']} | {r['threads']} | {r['batch']} | "
              f"{r['ms_per_window']:.2f} | {ref['ms_per_window'] / r['ms_per_window']:.2f}x | "
              f"{r['max_score_difference']:.1e} |")
    for name, s in starts.items():
        print(f"\nstart-up, {name}, openvino bf16: {s['empty_cache_s']:.1f} s with an empty cache (convert, "
              f"compile), {s['cached_s']:.2f} s with the cache filled")
    if loads:
        print("\n| other process busy on | model | engine | p50 ms | p95 ms | max ms | calls |")
        print("|---|---|---|---|---|---|---|")
        for r in loads:
            print(f"| {r['busy_threads']} thread{'s' * (r['busy_threads'] != 1)} | {r['model']} | {r['inference']} | "
                  f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['max_ms']:.1f} | {r['calls']} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"info": info, "rows": rows, "start": starts, "under_load": loads}, indent=1))
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
