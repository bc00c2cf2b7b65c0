"""Benchmark: `analyze` against the Hugging Face way of sliding windows, same weights, same real file.

Runs on the main thread of its own processes. The parent builds the cached inputs (a 16 kHz WAV of
ESC-50 clips, a seeded random Hugging Face AST directory) and starts one fresh worker process per side
and repeat, alternating hf, ours, cli, so that peak memory is per side. A worker times only its analysis
(decode + features + model), after its imports and model load, which are reported apart.

  hf    soundfile decodes the whole file; ASTFeatureExtractor(max_length=T) on each window's waveform
        (it pads the last ones), batches through ASTForAudioClassification under inference_mode (sdpa,
        the transformers default), sigmoid. bf16 autocast on CUDA.
  ours  Analyzer(Scorer(load_model(dir), options), hop_s, batch_size).analyze(path), as the CLI runs it, with
        --backend/--precision/--threads as the CLI takes them (auto by default: core.backends' choice).
  cli   `main.py analyze --formats scores` in-process: model load + analysis + the scores CSV.
  gate  ours against hf (fp32, the reference): max score difference and the share of identical events
        (bench/gate.py); --trained-like scales the random head to logits of a trained model's spread.
  micro (CUDA only) model alone, AST-base at 1024 frames, batch 64, bf16 autocast: ms per window.

Usage in bench/README.md; a markdown table goes to stdout, JSON to bench/results/.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from core.atomic import atomic_write  # noqa: E402

CACHE = ROOT / "bench" / ".cache"      # generated inputs and per-run outputs; ignores itself in git
RESULTS = ROOT / "bench" / "results"
ESC50 = next((p for p in (ROOT.parent / "shared", ROOT / "shared") if p.is_dir()), ROOT.parent / "shared") \
    / "data" / "esc50" / "audio"           # ../shared next to the checkout, or shared/ inside a copy of it
RATE_HZ = 16000
SHAPES = {"tiny": (192, 3), "small": (384, 6), "base": (768, 12)}  # hidden size, heads; 12 layers, MLP 4x
FLOOR_MS = 261e9 / 791e12 * 1e3        # AST.md: AST-base GFLOP per window / measured H100 bf16 ceiling
TARGET_MS, TARGET_SPEEDUP, HOUR_TARGET_MB = 0.5, 1.5, 300.0
CPU_TARGET_SPEEDUP = 3.0               # issue 11: analyze against hf fp32 on the CPU
SCORE_TOL = {"cpu": 1e-4, "cuda": 3e-2}  # fp32 on both sides; bf16 autocast on both sides
HEADER = ["| side | wall s | ms/window | hf / side | CPU s | load s | peak RSS MB | beyond model MB | where the time goes |",
          "|---|---|---|---|---|---|---|---|---|"]
SIDES = {"hf": "hf: ASTFeatureExtractor + ASTForAudioClassification", "ours": "ours: Analyzer.analyze",
         "ours-fp32": "ours, --precision fp32 (exact)",
         "cli": "cli: main.py analyze --formats scores (wall includes model load)"}


# ----------------------------------------------------------------------------- inputs (parent process)

def make_audio(minutes: float) -> Path:
    """A `minutes` long 16 kHz mono PCM-16 WAV: ESC-50 clips sorted by name, end to end (looped if needed)."""
    path = CACHE / f"esc50-{minutes:g}min.wav"
    if path.exists():
        return path
    clips = sorted(ESC50.glob("*.flac"))
    if not clips:
        raise SystemExit(f"error: no ESC-50 clips in {ESC50}; pass --audio PATH to bench your own file")
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")
    left = round(minutes * 60 * RATE_HZ)
    with atomic_write(path, "wb") as f, \
            sf.SoundFile(f, "w", samplerate=RATE_HZ, channels=1, subtype="PCM_16", format="WAV") as out:
        for i in range(10**9):
            if left <= 0:
                break
            data, rate = sf.read(clips[i % len(clips)], dtype="int16")
            if rate != RATE_HZ or data.ndim != 1:
                raise SystemExit(f"error: {clips[i % len(clips)]} is not 16 kHz mono")
            out.write(data[:left])
            left -= len(data[:left])
    return path


def make_model(shape: str, frames: int, seed: int, trained_like: Path | None = None) -> Path:
    """A Hugging Face AST directory (seeded random weights, 527 AudioSet labels, window `frames`); with
    `trained_like` (an audio file) its head is scaled to a trained model's logit spread on that audio."""
    path = CACHE / f"hf-ast-{shape}-{frames}-seed{seed}{'-trained-like' if trained_like else ''}"
    if (path / "model.safetensors").exists():
        return path
    import torch
    import transformers

    from core.labels import audioset_labels
    hidden, heads = SHAPES[shape]
    names = audioset_labels().names
    torch.manual_seed(seed)
    cfg = transformers.ASTConfig(hidden_size=hidden, num_attention_heads=heads, num_hidden_layers=12,
                                 intermediate_size=4 * hidden, max_length=frames, num_labels=len(names),
                                 id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")
    tmp = path.with_name(path.name + ".tmp")   # a folder, which atomic_write (files) does not cover
    shutil.rmtree(tmp, ignore_errors=True)     # what a killed run left, so that nothing of it is kept
    model = transformers.ASTForAudioClassification(cfg).eval()
    model.save_pretrained(tmp)
    transformers.ASTFeatureExtractor(max_length=frames).save_pretrained(tmp)  # mean/std for both sides
    if trained_like:
        _scale_head(model, tmp, trained_like)
        model.save_pretrained(tmp)
    os.replace(tmp, path)
    return path


def _scale_head(hf_model, folder: Path, audio: Path, count: int = 8) -> None:
    """bench.gate.scale_head on our load of the model in `folder`, fitted on `count` windows spread over
    `audio`; the scaled head is written back into the Hugging Face model."""
    import torch

    from bench.gate import scale_head
    from core.features import fbank, normalize
    from core.modelfile import load_model
    loaded = load_model(folder)
    features, frames = loaded.features, loaded.features.num_frames
    wave = torch.from_numpy(sf.read(audio, dtype="float32")[0])
    x = normalize(fbank(wave, features), features)                 # (N, F)
    step = (x.shape[0] - frames) // count
    scale_head(loaded.model, torch.stack([x[k * step:k * step + frames] for k in range(count)]))
    with torch.no_grad():
        hf_model.classifier.dense.weight.copy_(loaded.model.mlp_head[1].weight)
        hf_model.classifier.dense.bias.copy_(loaded.model.mlp_head[1].bias)


def machine_info(device: str) -> dict:
    import torch
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": importlib.metadata.version("transformers"), "platform": platform.platform()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


# ----------------------------------------------------------------------------- workers (one process each)

def _status_kb(key: str) -> int:
    """A field of /proc/self/status in kB (VmRSS now, VmHWM peak of this process's memory)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def _measure(analysis, device: str):
    """Run analysis() after the model load; wall time, peak RSS and peak RSS beyond the loaded state.

    VmHWM rather than ru_maxrss: a vfork'ed child inherits its parent's ru_maxrss. The peak is reset
    (clear_refs 5) after the load, so the peak beyond the model is the analysis's own.
    """
    import torch
    rss_load, hwm_load = _status_kb("VmRSS"), _status_kb("VmHWM")
    try:
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    load_before, cpu = os.getloadavg()[0], time.process_time()
    start = time.perf_counter()
    out = analysis()
    wall_s = time.perf_counter() - start
    hwm = _status_kb("VmHWM")
    m = {"wall_s": wall_s, "cpu_s": time.process_time() - cpu, "loadavg_1min": [load_before, os.getloadavg()[0]],
         "rss_after_load_mb": rss_load / 1024, "peak_rss_mb": max(hwm, hwm_load) / 1024,
         "beyond_model_mb": (hwm - rss_load) / 1024 if reset else (max(hwm, hwm_load) - rss_load) / 1024,
         "peak_reset": reset, "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
         "threads": torch.get_num_threads()}
    if device == "cuda":
        m["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out, m


def num_windows(num_samples: int, window_frames: int, hop_frames: int) -> int:
    """core.analyze.WindowPlan.num_windows restated: windows until the last reaches the end (at least 1)."""
    total = 1 + (num_samples - 400) // 160 if num_samples >= 400 else 0
    if total <= window_frames:
        return 1
    return min(1 + math.ceil((total - window_frames) / hop_frames), math.ceil(total / hop_frames))


def work_hf(args, t0: float) -> tuple[np.ndarray, dict]:
    import torch
    from transformers import ASTFeatureExtractor, ASTForAudioClassification
    t1 = time.perf_counter()
    device = torch.device(args.device)
    extractor = ASTFeatureExtractor.from_pretrained(args.model_dir)
    model = ASTForAudioClassification.from_pretrained(args.model_dir).to(device).eval()
    t2 = time.perf_counter()
    T = extractor.max_length
    window_len, hop_len = 160 * (T - 1) + 400, 160 * round(args.hop * 100)  # samples: T frames; hop
    parts = {"decode_s": 0.0, "features_s": 0.0, "model_s": 0.0}

    def analysis() -> np.ndarray:
        t = time.perf_counter()
        wave, _ = sf.read(args.audio, dtype="float32")          # the whole file, (N,) or (N, C)
        wave = wave.mean(axis=1) if wave.ndim == 2 else wave
        parts["decode_s"] = time.perf_counter() - t
        n, scores = num_windows(len(wave), T, hop_len // 160), []
        for b in range(0, n, args.batch_size):
            t = time.perf_counter()
            chunk = [wave[k * hop_len:k * hop_len + window_len] for k in range(b, min(b + args.batch_size, n))]
            x = extractor(chunk, sampling_rate=RATE_HZ, return_tensors="pt")["input_values"]  # (B, T, F)
            t_model = time.perf_counter()
            with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(input_values=x.to(device)).logits
            scores.append(torch.sigmoid(logits.float()).cpu().numpy())
            parts["features_s"] += t_model - t
            parts["model_s"] += time.perf_counter() - t_model
        return np.concatenate(scores)

    scores, m = _measure(analysis, args.device)
    return scores, {**m, **parts, "import_s": t1 - t0, "load_s": t2 - t1,
                    "attn_implementation": model.config._attn_implementation}


def work_ours(args, t0: float) -> tuple[np.ndarray, dict]:
    from core.analyze import Analyzer
    from core.modelfile import load_model
    from core.scorer import Scorer

    class TimedScorer(Scorer):
        """Scorer that adds up the time of its calls (normalise + model + sigmoid + copy to numpy)."""
        model_s = 0.0

        def __call__(self, windows):
            t = time.perf_counter()
            out = super().__call__(windows)
            self.model_s += time.perf_counter() - t
            return out

    from core.runtime import limit_heap_fragmentation
    limit_heap_fragmentation()  # as main.py does at start-up
    from core.config import InferenceOptions
    t1 = time.perf_counter()
    options = InferenceOptions(args.device, args.backend, args.precision, args.threads)
    scorer = TimedScorer(load_model(args.model_dir), options)
    analyzer = Analyzer(scorer, hop_s=args.hop, batch_size=args.batch_size)
    t2 = time.perf_counter()
    rss_load, trace = _status_kb("VmRSS"), []   # (audio s, RSS beyond the model MB) every 10 % of the file

    def progress(done_s: float, total_s: float) -> None:
        if done_s >= total_s * len(trace) / 10 and not (trace and trace[-1][0] == round(done_s)):
            trace.append((round(done_s), round((_status_kb("VmRSS") - rss_load) / 1024)))

    timeline, m = _measure(lambda: analyzer.analyze(args.audio, progress=progress), args.device)
    return timeline.scores, {**m, "model_s": scorer.model_s, "other_s": m["wall_s"] - scorer.model_s,
                             "import_s": t1 - t0, "load_s": t2 - t1, "rss_trace": trace,
                             "inference": scorer.describe(), "note": scorer.note}


def work_cli(args, t0: float) -> tuple[np.ndarray, dict]:
    import torch  # noqa: F401 - the imports the command makes, outside the timing
    from core import analyze, cli, modelfile, scorer  # noqa: F401
    from core.export import target_paths
    t1 = time.perf_counter()
    out_dir = CACHE / "cli-out"
    argv = ["analyze", args.audio, "--model", args.model_dir, "--hop", str(args.hop), "--device", args.device,
            "--batch-size", str(args.batch_size), "--formats", "scores", "--out", str(out_dir), "--force", "--quiet",
            "--backend", args.backend, "--precision", args.precision] + (["--threads", str(args.threads)]
                                                                        if args.threads else [])
    rc, m = _measure(lambda: cli.main(argv), args.device)
    if rc != 0:
        raise SystemExit(f"error: main.py {' '.join(argv)} exited with {rc}")
    csv_path = target_paths(out_dir, Path(args.audio).stem, ["scores"])[0]
    scores = np.loadtxt(csv_path, delimiter=",", skiprows=1, dtype=np.float32, ndmin=2)[:, 2:]  # start, end, ...
    return scores, {**m, "beyond_model_mb": None, "import_s": t1 - t0, "load_s": None}


def work_micro(args, t0: float) -> tuple[None, dict]:
    """Model alone on CUDA: ms per window at batch 64, bf16 autocast, after warm-up, synchronised."""
    import torch
    from transformers import ASTForAudioClassification

    from core.modelfile import load_model
    ours = load_model(args.model_dir).model.cuda().eval()
    hf = ASTForAudioClassification.from_pretrained(args.model_dir).cuda().eval()
    B, T, iters = args.batch_size, ours.config.num_frames, 30
    x = torch.randn(B, T, ours.config.num_mel_bins, device="cuda")

    def ms_per_window(fn) -> float:
        with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16):
            for _ in range(5):
                fn(x)
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(iters):
                fn(x)
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / (iters * B) * 1e3

    return None, {"batch_size": B, "num_frames": T, "iters": iters, "ours_ms_per_window": ms_per_window(ours),
                  "hf_ms_per_window": ms_per_window(lambda v: hf(input_values=v).logits)}


def worker(args) -> int:
    t0 = time.perf_counter()
    scores, result = {"hf": work_hf, "ours": work_ours, "cli": work_cli, "micro": work_micro}[args.worker](args, t0)
    if scores is not None:
        with atomic_write(args.out.with_suffix(".npy"), "wb") as f:
            np.save(f, scores)
        result["num_windows"] = len(scores)
    with atomic_write(args.out) as f:
        f.write(json.dumps({"side": args.worker, **result}))
    return 0


# ----------------------------------------------------------------------------- parent

def run_worker(side: str, run: int, audio: Path, model_dir: Path, hop: float, batch: int, device: str,
               engine: list[str] = ()) -> dict:
    """One side in a fresh process; `engine`: the --backend/--precision/--threads arguments of ours and cli."""
    out = CACHE / "runs" / f"{side}-{run}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if side == "ours-fp32":                  # the ours worker, made exact: the last --precision wins
        engine = [*engine, "--precision", "fp32"]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", side.split("-")[0], "--audio", str(audio),
           "--model-dir", str(model_dir), "--hop", str(hop), "--batch-size", str(batch), "--device", device,
           "--out", str(out), *engine]
    print(f"run {run} {side} ...", file=sys.stderr, flush=True)
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: the {side} worker failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(out.read_text())
    if side != "micro":
        result["scores"] = np.load(out.with_suffix(".npy"))
    return result


def _row(side: str, runs: list[dict], hf_wall: float | None) -> tuple[str, dict]:
    wall = statistics.median(r["wall_s"] for r in runs)
    n = runs[0]["num_windows"]
    med = {k: statistics.median(r[k] for r in runs) for k in ("decode_s", "features_s", "model_s", "other_s")
           if k in runs[0]}
    where = ", ".join(f"{k[:-2]} {v:.1f} s ({v / n * 1e3:.1f} ms/window)" for k, v in med.items())
    peak = max(r["peak_rss_mb"] for r in runs)
    beyond = None if runs[0]["beyond_model_mb"] is None else max(r["beyond_model_mb"] for r in runs)
    load = None if runs[0]["load_s"] is None else statistics.median(r["load_s"] for r in runs)
    gpu = f" / GPU {max(r['gpu_peak_mb'] for r in runs):.0f}" if "gpu_peak_mb" in runs[0] else ""
    cpu = statistics.median(r["cpu_s"] for r in runs)
    summary = {"wall_s": wall, "ms_per_window": wall / n * 1e3, "cpu_s": cpu, "load_s": load, "peak_rss_mb": peak,
               "beyond_model_mb": beyond, **med, "speedup_vs_hf": hf_wall / wall if hf_wall else None}
    cells = [SIDES[side], f"{wall:.1f}", f"{wall / n * 1e3:.1f}", f"{hf_wall / wall:.2f}x" if hf_wall else "-", f"{cpu:.1f}",
             "-" if load is None else f"{load:.2f}", f"{peak:.0f}{gpu}", "-" if beyond is None else f"{beyond:.0f}",
             where or "-"]
    return "| " + " | ".join(cells) + " |", summary


def compare(args, device: str, audio: Path, model_dir: Path, hop: float, batch: int) -> dict:
    sides = ["hf", "ours"] + (["ours-fp32"] if args.also_fp32 else []) + (["cli"] if args.cli else [])
    runs: dict[str, list[dict]] = {s: [] for s in sides}
    engine = ["--backend", args.backend, "--precision", args.precision] + (["--threads", str(args.threads)]
                                                                           if args.threads else [])
    for r in range(args.repeats):            # alternating, so drifting load on the machine hits both
        for side in sides:
            runs[side].append(run_worker(side, r, audio, model_dir, hop, batch, device, engine))
    hf_scores, ours_scores = runs["hf"][0].pop("scores"), runs["ours"][0].pop("scores")
    if hf_scores.shape != ours_scores.shape:
        raise SystemExit(f"error: score shapes differ: hf {hf_scores.shape}, ours {ours_scores.shape}")
    diff = float(np.abs(hf_scores - ours_scores).max())
    inference = runs["ours"][0]["inference"]
    tolerance = SCORE_TOL["cuda" if "bf16" in inference else "cpu"]   # hf runs fp32 on the CPU
    check = {"shape": list(ours_scores.shape), "max_abs_diff": diff, "tolerance": tolerance,
             "agree": diff < tolerance, "score_std_over_windows": float(ours_scores.std(axis=0).mean()),
             "gate": accuracy_gate(hf_scores, ours_scores, audio, model_dir, hop)}
    if args.cli:
        cli_scores = runs["cli"][0].pop("scores")
        check["cli_vs_ours_max_abs_diff"] = float(np.abs(cli_scores - ours_scores).max()) \
            if cli_scores.shape == ours_scores.shape else f"shape {cli_scores.shape}"
    hf_wall = statistics.median(r["wall_s"] for r in runs["hf"])
    lines = [*HEADER]
    summary = {}
    for side in sides:
        line, summary[side] = _row(side, runs[side], hf_wall if side != "hf" else None)
        lines.append(line)
    n, gate = ours_scores.shape[0], check["gate"]
    target = TARGET_SPEEDUP if device == "cuda" else CPU_TARGET_SPEEDUP
    lines += ["", f"ours: {inference}" + (f" ({runs['ours'][0]['note']})" if runs["ours"][0]["note"] else ""),
              f"speed-up hf / ours (median of {args.repeats}): {summary['ours']['speedup_vs_hf']:.2f}x "
              f"(target >= {target}x: {'met' if summary['ours']['speedup_vs_hf'] >= target else 'not met'})",
              f"scores {n} windows x {ours_scores.shape[1]} labels; max |hf - ours| = {diff:.2e} "
              f"({'agree' if check['agree'] else 'DISAGREE'}, tolerance {tolerance:g}); mean std of a "
              f"score over windows {check['score_std_over_windows']:.3f}",
              f"accuracy gate vs hf fp32: max score difference {gate['max_score_difference']:.4f}, "
              f"{gate['same_events']:.1%} of {gate['events_fp32']} events the same ({gate['events']} in ours): "
              f"{'passed' if gate['passed'] else 'NOT passed'}"]
    lines.append("1-min load average before/after each run (the side itself adds about its thread count): " + "; ".join(
        f"{side} {'/'.join(f'{v:.1f}' for v in r['loadavg_1min'])}" for side in sides for r in runs[side]))
    lines.append("ours, RSS beyond the model over the file (audio s: MB): "
                 + ", ".join(f"{s}: {mb}" for s, mb in runs["ours"][-1]["rss_trace"]))
    if args.cli:
        lines.append(f"cli scores.csv vs ours: max |diff| = {check['cli_vs_ours_max_abs_diff']} (CSV keeps 4 decimals)")
    if args.also_fp32:
        exact = runs["ours-fp32"][0]
        check["fp32_gate"] = g = accuracy_gate(hf_scores, exact["scores"], audio, model_dir, hop)
        lines.append(f"ours-fp32 ({exact['inference']}): {summary['ours-fp32']['speedup_vs_hf']:.2f}x hf; max score "
                     f"difference {g['max_score_difference']:.1e}, {g['same_events']:.1%} of the events the same")
    for r in (r for rs in runs.values() for r in rs):
        r.pop("scores", None)
    result = {"summary": summary, "check": check, "runs": runs}
    if device == "cuda":
        base = make_model("base", 1024, args.seed)
        micro = run_worker("micro", 0, audio, base, hop, 64, device)
        result["micro"] = micro
        lines += ["", "| model alone, AST-base, 1024 frames, batch 64, bf16 autocast | ms per window | vs floor "
                  f"{FLOOR_MS:.2f} ms |", "|---|---|---|"]
        for side in ("hf", "ours"):
            ms = micro[f"{side}_ms_per_window"]
            lines.append(f"| {side} | {ms:.3f} | {ms / FLOOR_MS:.2f}x |")
        lines.append(f"ours under {TARGET_MS} ms per window: {'yes' if micro['ours_ms_per_window'] < TARGET_MS else 'no'}")
    result["table"] = "\n".join(lines)
    return result


def accuracy_gate(hf_scores: np.ndarray, ours_scores: np.ndarray, audio: Path, model_dir: Path, hop: float) -> dict:
    """bench.gate.gate of ours against hf's fp32 scores, events by the default rule on the same windows."""
    from bench.gate import gate
    from core.config import EventConfig, FeatureConfig
    from core.events import detect_events
    from core.labels import audioset_labels
    from core.timeline import Timeline
    from core.windows import WindowPlan
    frames = json.loads((model_dir / "config.json").read_text())["max_length"]
    plan = WindowPlan.for_model(FeatureConfig(num_frames=frames), hop)
    duration_s = sf.info(str(audio)).duration
    starts = plan.starts_s(0, len(hf_scores))

    def events(scores: np.ndarray):
        timeline = Timeline(source=str(audio), labels=audioset_labels(), starts_s=starts,
                            ends_s=plan.ends_s(starts, duration_s), scores=scores.astype(np.float32),
                            duration_s=duration_s, window_s=frames / 100, hop_s=hop, model_name="bench")
        return detect_events(timeline, EventConfig())

    return gate(hf_scores, ours_scores, events(hf_scores), events(ours_scores))


def hour_check(args, device: str, audio: Path, model_dir: Path, hop: float, batch: int) -> dict:
    runs = [run_worker("ours", r, audio, model_dir, hop, batch, device) for r in range(args.repeats)]
    for r in runs:
        r.pop("scores")
    line, summary = _row("ours", runs, None)
    frames = json.loads((model_dir / "config.json").read_text())["max_length"]
    expected = num_windows(sf.info(str(audio)).frames, frames, round(hop * 100))
    ok = summary["beyond_model_mb"] < HOUR_TARGET_MB
    table = "\n".join([*HEADER, line, "",
                       f"peak RSS beyond the model {summary['beyond_model_mb']:.0f} MB (target < {HOUR_TARGET_MB:.0f} "
                       f"MB: {'met' if ok else 'not met'}); {runs[0]['num_windows']} windows ({expected} planned)",
                       "RSS beyond the model over the file (audio s: MB): "
                       + ", ".join(f"{s}: {mb}" for s, mb in runs[0]["rss_trace"])])
    return {"summary": {"ours": summary, "target_met": ok, "windows_planned": expected}, "runs": runs, "table": table}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--shape", choices=list(SHAPES), default=None, help="model size (default tiny on CPU, base on CUDA)")
    p.add_argument("--frames", type=int, default=None, help="window in frames (default 512 on CPU, 1024 on CUDA)")
    p.add_argument("--hop", type=float, default=None, help="seconds between windows (default 1, 10 with --hour)")
    p.add_argument("--batch-size", type=int, default=None, help="windows per model call (default 8 CPU, 64 CUDA)")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the generated file (default 10)")
    p.add_argument("--audio", default=None, help="bench this 16 kHz file instead of the generated one")
    p.add_argument("--repeats", type=int, default=1, help="runs per side, alternating; medians are reported")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.add_argument("--no-cli", dest="cli", action="store_false", help="skip the main.py analyze side")
    p.add_argument("--hour", action="store_true", help="memory check: ours only, a one-hour file, hop 10 s")
    p.add_argument("--json", default=None, help="file name of the JSON under bench/results/ (default by device)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "openvino"],
                   help="ours and cli (default auto)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="ours and cli (default auto)")
    p.add_argument("--threads", type=int, default=None, help="ours and cli: model threads (default: the policy)")
    p.add_argument("--also-fp32", action="store_true", help="a second ours side in exact fp32 (same backend)")
    p.add_argument("--trained-like", action="store_true",
                   help="scale the random head to a trained model's logit spread (std 3) on the audio")
    p.add_argument("--worker", choices=["hf", "ours", "cli", "micro"], help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)

    from core.errors import ConfigError
    from core.scorer import resolve_device
    try:
        device = resolve_device(args.device).type
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    shape = args.shape or ("base" if device == "cuda" else "tiny")
    frames = args.frames or (1024 if device == "cuda" or args.hour else 512)
    batch = args.batch_size or (64 if device == "cuda" else 8)
    hop = args.hop or (10.0 if args.hour else 1.0)
    if args.audio:
        audio = Path(args.audio).expanduser().resolve()
        if sf.info(str(audio)).samplerate != RATE_HZ:
            print(f"error: {audio} is not 16 kHz; the hf side reads it as is. Convert it first, e.g. "
                  f"ffmpeg -i \"{audio.name}\" -ac 1 -ar 16000 \"{audio.stem}-16k.wav\"", file=sys.stderr)
            return 2
    else:
        audio = make_audio(60.0 if args.hour else args.minutes)
    model_dir = make_model(shape, frames, args.seed, audio if args.trained_like else None)
    info = machine_info(device)
    config = {"device": device, "shape": shape, "frames": frames, "window_s": frames / 100, "hop_s": hop,
              "batch_size": batch, "repeats": args.repeats, "seed": args.seed, "audio": str(audio),
              "backend": args.backend, "precision": args.precision, "threads": args.threads,
              "trained_like": args.trained_like,
              "audio_s": sf.info(str(audio)).duration}
    result = (hour_check if args.hour else compare)(args, device, audio, model_dir, hop, batch)
    print(f"\n{info['cpu']}, {info['cpus_usable']} CPUs{', ' + info['gpu'] if 'gpu' in info else ''}; torch "
          f"{info['torch']}, transformers {info['transformers']}; AST-{shape}, {frames} frames, hop {hop:g} s, "
          f"batch {batch}, {device}; {config['audio_s']:.0f} s of audio\n")
    print(result["table"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / (args.json or f"analyze{'-hour' if args.hour else ''}-{device}.json")
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    with atomic_write(out) as f:
        f.write(json.dumps({"bench": "analyze-hour" if args.hour else "analyze", "date": stamp,
                            "command": " ".join(["python", "bench/bench_analyze.py", *sys.argv[1:]]),
                            "machine": info, "config": config, **result}, indent=1, default=str) + "\n")
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
