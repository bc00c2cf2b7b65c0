"""Benchmark: the live path (RingBuffer -> CaptureReader -> StreamingTagger) on this machine's CPU.

Runs on the main thread of one process; a feeder thread plays the PortAudio callback (10 ms blocks into
the same RingBuffer the capture callback writes), the tagger runs on its own thread, the main thread
drains the queue into a LiveTimeline as `listen` does. Audio: ESC-50 clips end to end (real sounds).

  lag     real time (blocks paced by the clock), hop 1 s and 0.5 s, skip_on_lag as live: processing lag
          = time from the last sample of a window arriving in the ring to its scores being on the queue,
          p50/p95/max, against the model's own inference time per window measured in the same run; CPU
          use of the whole process (os.times) per wall second; skipped windows, ring overruns.
  memory  a long stream (default 30 min of audio) fed faster than real time: the feeder writes one hop
          and waits until the tagger has scored it (one window per model call, as live, no skips);
          resident memory sampled every 5 minutes of audio; CPU seconds per audio second.

Model: a random AST of the shipped default's size (192 wide, 6 layers, 3 heads, 5.12 s window = 512
frames, 527 AudioSet labels), `--shape base` the released AudioSet shape (AST-base, 1024 frames, random
weights), or `--model SPEC`; the engine as `listen` picks it (`--backend`, `--precision`, `--threads`; auto
by default). Usage: python bench/bench_live.py [--minutes 1] [--long-minutes 30] [--json PATH]; a markdown
table goes to stdout, JSON to bench/results/live-cpu.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ESC50 = ROOT.parent / "shared" / "data" / "esc50" / "audio"
RESULTS = ROOT / "bench" / "results"

from core.audio_io import iter_blocks  # noqa: E402
from core.capture import CaptureReader  # noqa: E402
from core.config import BACKENDS, PRECISIONS, EventConfig, FeatureConfig, InferenceOptions, ModelConfig  # noqa: E402
from core.labels import audioset_labels  # noqa: E402
from core.session import LiveTimeline  # noqa: E402
from core.model import AST  # noqa: E402
from core.modelfile import load_model, save_model_file  # noqa: E402
from core.ringbuffer import RingBuffer  # noqa: E402
from core.scorer import Scorer  # noqa: E402
from core.tagger import StreamingTagger, TagFrame, TaggerConfig, TaggerEnd  # noqa: E402

RATE = 16000
BLOCK = 160   # 10 ms callback blocks


SHAPES = {"stand-in": ("random AST 192 wide, 6 layers, 3 heads, 512 frames (5.12 s), 527 labels",
                        ModelConfig(num_classes=527, num_frames=512, embed_dim=192, depth=6, num_heads=3)),
          "base": ("random AST-base (768 wide, 12 layers, 12 heads, 1024 frames = 10.24 s, 527 labels)", ModelConfig())}


def make_model(folder: Path, shape: str) -> Path:
    torch.manual_seed(0)
    cfg = SHAPES[shape][1]
    return save_model_file(folder / f"{shape}.safetensors", AST(cfg), FeatureConfig(num_frames=cfg.num_frames),
                           audioset_labels())


def clips():
    """16 kHz blocks of ESC-50 clips end to end, looping; white noise if the data set is missing."""
    files = sorted(ESC50.glob("*.flac"))
    rng = np.random.default_rng(0)
    while True:
        if not files:
            yield (rng.standard_normal(RATE * 5) * 0.05).astype(np.float32)
        for f in files:
            yield from iter_blocks(f, RATE, block_s=5.0)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def consume(tagger: StreamingTagger, live: LiveTimeline, on_frame=None) -> TaggerEnd:
    """The consumer's side, as `listen` runs it: frames into a LiveTimeline (events as they close)."""
    while True:
        item = tagger.results.get()
        if isinstance(item, TaggerEnd):
            return item
        if isinstance(item, TagFrame):
            live.add(item)
            if on_frame:
                on_frame(item)


def lag_run(scorer: Scorer, hop_s: float, seconds: float) -> dict:
    ring = RingBuffer.for_seconds(30, RATE)
    tagger = StreamingTagger(scorer, CaptureReader(ring), TaggerConfig(hop_s=hop_s))
    live = LiveTimeline(scorer.loaded.labels, tagger.window_s, tagger.hop_s, EventConfig(), "bench", "live:bench")
    total = round(seconds * RATE)

    def feeder() -> None:   # the PortAudio callback's rhythm: one 10 ms block every 10 ms
        t0, written, source = time.perf_counter(), 0, clips()
        pending = np.zeros(0, np.float32)
        while written < total:
            if len(pending) < BLOCK:
                pending = np.concatenate([pending, next(source)])
            ring.write(pending[:BLOCK])
            pending, written = pending[BLOCK:], written + BLOCK
            delay = t0 + written / RATE - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        ring.close()

    cpu0, wall0, rss0 = cpu_s(), time.perf_counter(), rss_mb()
    tagger.start()
    feed = threading.Thread(target=feeder, name="callback")
    feed.start()
    end = consume(tagger, live)
    feed.join()
    wall, cpu = time.perf_counter() - wall0, cpu_s() - cpu0
    stats = tagger.stats()
    lags, inference = np.array(stats.lags_s) * 1e3, np.array(stats.inference_s) * 1e3
    return {"hop_s": hop_s, "audio_s": end.duration_s, "wall_s": round(wall, 1),
            "windows": stats.windows_scored, "skipped": stats.windows_skipped, "overruns": stats.overruns,
            "lag_ms_p50": round(float(np.percentile(lags, 50)), 1), "lag_ms_p95": round(float(np.percentile(lags, 95)), 1),
            "lag_ms_max": round(float(lags.max()), 1),
            "inference_ms_p50": round(float(np.percentile(inference, 50)), 1),
            "inference_ms_p95": round(float(np.percentile(inference, 95)), 1),
            "cpu_percent_of_one_core": round(100 * cpu / wall, 1), "rss_mb_start": round(rss0, 1),
            "rss_mb_end": round(rss_mb(), 1)}


def memory_run(scorer: Scorer, hop_s: float, minutes: float) -> dict:
    ring = RingBuffer.for_seconds(30, RATE)
    reader = CaptureReader(ring)
    tagger = StreamingTagger(scorer, reader, TaggerConfig(hop_s=hop_s))
    live = LiveTimeline(scorer.loaded.labels, tagger.window_s, tagger.hop_s, EventConfig(), "bench", "live:bench")
    total = round(minutes * 60 * RATE)
    T, hop = tagger.plan.window_frames, tagger.plan.hop_frames
    samples: list[tuple[float, float]] = []
    scored = threading.Condition()
    latest = [-1]   # index of the newest frame the consumer has received

    def on_frame(frame: TagFrame) -> None:
        with scored:
            latest[0] = frame.index
            scored.notify_all()

    def complete(n: int) -> int:   # live windows complete after n samples
        frames = 1 + (n - 400) // 160 if n >= 400 else 0
        return 0 if frames < T else (frames - T) // hop + 1

    def feeder() -> None:   # faster than real time: one hop, then wait until the tagger has scored it
        written, source, step = 0, clips(), round(hop_s * RATE)
        pending, next_sample = np.zeros(0, np.float32), 0
        while written < total:
            while len(pending) < step:
                pending = np.concatenate([pending, next(source)])
            n = min(step, total - written)
            for i in range(0, n, BLOCK):
                ring.write(pending[i:min(i + BLOCK, n)])
            pending, written = pending[n:], written + n
            with scored:
                scored.wait_for(lambda: latest[0] + 1 >= complete(written), timeout=30)
            if written >= next_sample:
                samples.append((written / RATE / 60, rss_mb()))
                next_sample += 5 * 60 * RATE
        ring.close()

    cpu0, wall0 = cpu_s(), time.perf_counter()
    tagger.start()
    feed = threading.Thread(target=feeder, name="feeder")
    feed.start()
    end = consume(tagger, live, on_frame)
    feed.join()
    samples.append((end.duration_s / 60, rss_mb()))
    wall, cpu = time.perf_counter() - wall0, cpu_s() - cpu0
    stats = tagger.stats()
    after_warmup = [mb for minute, mb in samples if minute >= min(5, minutes / 2)]
    return {"hop_s": hop_s, "audio_min": round(end.duration_s / 60, 2), "wall_s": round(wall, 1),
            "speed_x_realtime": round(end.duration_s / wall, 1), "windows": stats.windows_scored,
            "skipped": stats.windows_skipped, "overruns": stats.overruns,
            "cpu_s_per_audio_s": round(cpu / end.duration_s, 3),
            "rss_mb_by_audio_minute": [(round(m, 1), round(mb, 1)) for m, mb in samples],
            "rss_growth_mb_after_5min": round(after_warmup[-1] - after_warmup[0], 1) if after_warmup else None,
            "timeline_scores_mb": round(live.num_windows * len(live.labels) * 4 / 2**20, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=1.0, help="real-time run per hop (default 1; 5 for the long figures)")
    p.add_argument("--long-minutes", type=float, default=30.0, help="audio of the memory run (default 30)")
    p.add_argument("--hops", default="1.0,0.5", help="hops of the lag runs (default 1.0,0.5)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of the model (default: the policy)")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="engine (default auto, as listen)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help="precision (default auto, as listen)")
    p.add_argument("--shape", default="stand-in", choices=sorted(SHAPES), help="the random model's shape")
    p.add_argument("--json", type=Path, default=RESULTS / "live-cpu.json", help="where the JSON goes")
    p.add_argument("--model", default=None, help="a model spec (e.g. default, the shipped model) instead of "
                                                 "the random stand-in")
    args = p.parse_args(argv)
    options = InferenceOptions("cpu", args.backend, args.precision, args.threads)
    t0 = time.perf_counter()
    if args.model:
        scorer = Scorer(load_model(args.model), options, live=True)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            scorer = Scorer(load_model(make_model(Path(tmp), args.shape)), options, live=True)
    load_s = time.perf_counter() - t0
    scorer(torch.zeros(1, scorer.num_frames, 128))   # first call pays one-off costs
    info = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": platform.machine(),
            "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(), "torch": torch.__version__,
            "inference": scorer.describe(), "load_and_prepare_s": round(load_s, 1),
            "model": f"model {args.model}" if args.model else SHAPES[args.shape][0]}
    lag = [lag_run(scorer, float(h), args.minutes * 60) for h in args.hops.split(",")]
    memory = memory_run(scorer, 1.0, args.long_minutes) if args.long_minutes > 0 else None
    print(f"{info['model']}, {info['inference']}; {info['cpus']} CPUs (load average {os.getloadavg()[0]:.1f} at the "
          f"end), torch {info['torch']}\n")
    print("| hop | audio | windows | skipped | overruns | lag p50 | lag p95 | lag max | inference p50 | inference p95 | CPU (one core) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in lag:
        print(f"| {r['hop_s']:g} s | {r['audio_s']:.0f} s | {r['windows']} | {r['skipped']} | {r['overruns']} | "
              f"{r['lag_ms_p50']} ms | {r['lag_ms_p95']} ms | {r['lag_ms_max']} ms | {r['inference_ms_p50']} ms | "
              f"{r['inference_ms_p95']} ms | {r['cpu_percent_of_one_core']} % |")
    if memory:
        print(f"\nmemory run: {memory['audio_min']} min of audio at hop 1 s in {memory['wall_s']} s "
              f"({memory['speed_x_realtime']}x real time), {memory['windows']} windows, {memory['skipped']} skipped, "
              f"{memory['cpu_s_per_audio_s']} CPU s per audio s; RSS MB by audio minute "
              f"{memory['rss_mb_by_audio_minute']}; growth after 5 min {memory['rss_growth_mb_after_5min']} MB "
              f"(the timeline's score history is {memory['timeline_scores_mb']} MB of it)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"info": info, "lag": lag, "memory": memory}, indent=1))
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
