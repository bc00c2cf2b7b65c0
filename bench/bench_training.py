"""Benchmark: can the shipped default model keep up live, and how fast does the recipe train?

Runs on the main thread. Sections:
  infer  the default model (assets/models/default.safetensors, or --model) at batch 1 through the Scorer
         (normalise + model + sigmoid), as the live tagger calls it once per hop, plus the fbank frames of
         one hop (FbankStreamer). Target: at a 1 s hop, at most a third of the hop (333 ms). File size
         (target <= 30 MB).
  train  training steps per second of the recipe (augmentation + forward + backward + AdamW) on random
         features, next to Hugging Face's ASTForAudioClassification of the same shape (same loss,
         optimiser, batch). bf16 autocast on CUDA, fp32 on CPU.

  python bench/bench_training.py [--threads 1,2] [--model FILE] [--sections infer,train] [--steps 5]
A markdown table goes to stdout, JSON to bench/results/training-<device>-<sections>.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.features import FbankStreamer  # noqa: E402
from core.modelfile import load_model  # noqa: E402
from core.scorer import Scorer  # noqa: E402


def _time(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def bench_infer(model: str | None, repeats: int, device: str) -> dict:
    loaded = load_model(model)
    path = Path(model) if model else ROOT / "assets" / "models" / "default.safetensors"
    scorer = Scorer(loaded, device)
    T, F = loaded.features.num_frames, loaded.features.num_mel_bins
    window = torch.randn(1, T, F) * 3 - 6  # (1, T, F) raw log-mel
    ms = _time(lambda: scorer(window), repeats)
    streamer = FbankStreamer(loaded.features)
    hop = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    fb = _time(lambda: streamer.push(hop), repeats)
    median = statistics.median(ms)
    return {"model": str(path), "file_mb": round(path.stat().st_size / 1e6, 2),
            "params_m": round(sum(p.numel() for p in loaded.model.parameters()) / 1e6, 3),
            "window_s": loaded.features.window_s, "ms_per_window_b1_median": round(median, 2),
            "ms_per_window_b1_p90": round(float(np.percentile(ms, 90)), 2),
            "fbank_ms_per_1s_hop_median": round(statistics.median(fb), 2),
            "budget_ms_at_1s_hop": 333.3, "keeps_up": median + statistics.median(fb) <= 333.3}


def bench_train(steps: int, batch: int, device: str) -> dict:
    """Training clips/s of the recipe as train() runs it (batches gathered from a device-resident ClipSet,
    augmentation on the device, bf16 autocast on CUDA), the same step on one fixed batch (no data
    pipeline), and Hugging Face's AST of the same shape on that batch; on CUDA also the GPU's busy time
    (the profiler's kernel time over wall time) during the full step."""
    import torch.nn.functional as F
    from training import augment
    from training.config import TrainConfig
    from training.data import ClipSet
    from training.train import build_model
    from core.features import normalize
    cfg = TrainConfig()
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    labels = [f"c{i}" for i in range(51)]
    model, features = build_model(cfg, labels)
    model.to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    # 512 clips of 500 frames (ESC-50's 5 s) in the layout train() uses, on the device
    n, length = 512, 500
    data = ClipSet([None] * n, (torch.randn(n * length, 128) * 3 - 6).half(), torch.arange(n) * length,
                   torch.full((n,), length), torch.eye(51)[torch.arange(n) % 51]).to(dev)
    bank = (torch.randn(4, cfg.num_frames, 128) * 3 - 16).to(dev)
    gen, cpu_gen = torch.Generator(device=dev).manual_seed(0), torch.Generator().manual_seed(1)
    fixed = data.batch(range(batch), cfg.num_frames, True, cpu_gen)

    def step(x, v, y):
        x = augment.random_gain(x, v, cfg.gain_db, gen)
        x, v = augment.add_background(x, v, bank, cfg.noise_prob, cfg.noise_snr_db, gen)
        x, v = augment.time_shift(x, v, cfg.time_shift, gen)
        x, v, y = augment.mixup(x, v, y, cfg.mixup_alpha, gen, augment.beta(cfg.mixup_alpha, cpu_gen))
        x = normalize(augment.spec_augment(x, cfg.freq_mask, cfg.time_mask, cfg.num_masks, gen), features)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = F.binary_cross_entropy_with_logits(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()

    def timed(fn) -> float:
        """clips/s over `steps` steps after 3 warm-up steps; the host syncs only at the ends."""
        for _ in range(3):
            fn()
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(steps):
            fn()
        if cuda:
            torch.cuda.synchronize()
        return round(batch * steps / (time.perf_counter() - t), 1)

    def full():
        step(*data.batch(torch.randint(n, (batch,), generator=cpu_gen), cfg.num_frames, True, cpu_gen))

    result = {"batch": batch, "precision": "bf16 autocast" if cuda else "fp32",
              "ours_clips_per_s": timed(full),
              "ours_fixed_batch_clips_per_s": timed(lambda: step(*fixed))}
    if cuda:
        result["gpu_busy_fraction"] = _gpu_busy(full, steps)
    try:
        import transformers
    except ImportError:
        return result
    mc = model.config
    hf_cfg = transformers.ASTConfig(hidden_size=mc.embed_dim, num_hidden_layers=mc.depth,
                                    num_attention_heads=mc.num_heads, intermediate_size=int(mc.embed_dim * mc.mlp_ratio),
                                    patch_size=mc.patch_size, frequency_stride=mc.frequency_stride,
                                    time_stride=mc.time_stride, max_length=mc.num_frames, num_labels=51)
    hf = transformers.ASTForAudioClassification(hf_cfg).to(dev).train()
    hopt = torch.optim.AdamW(hf.parameters(), 1e-3)
    xin, yin = normalize(fixed[0], features), fixed[2]

    def theirs():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = F.binary_cross_entropy_with_logits(hf(xin).logits.float(), yin)
        hopt.zero_grad(set_to_none=True)
        loss.backward()
        hopt.step()

    result["hf_same_shape_clips_per_s_no_augmentation"] = timed(theirs)
    return result


def _gpu_busy(fn, steps: int) -> float | None:
    """Fraction of wall time the GPU ran kernels during `steps` calls of fn (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile
    try:
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            t = time.perf_counter()
            for _ in range(steps):
                fn()
            torch.cuda.synchronize()
            wall_us = (time.perf_counter() - t) * 1e6
        kernel_us = sum(e.time_range.elapsed_us() for e in prof.events() if e.device_type.name == "CUDA")
        return round(kernel_us / wall_us, 3)
    except Exception as e:  # the profiler is a measuring aid; the throughput figures stand without it
        print(f"gpu busy time not measured: {e}", file=sys.stderr)
        return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model file (default: the shipped default)")
    p.add_argument("--threads", default="1,2", help="torch thread counts to try, e.g. 1,2")
    p.add_argument("--sections", default="infer,train")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", default="32", help="batch sizes for the train section, e.g. 32,128")
    p.add_argument("--out", default=None, help="JSON file (default bench/results/training-<device>-<sections>.json)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    report = {"date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "device": torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({platform.processor() or platform.machine()})",
              "torch": torch.__version__}
    sections = args.sections.split(",")
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        if "infer" in sections:
            report[f"infer_threads{threads}"] = bench_infer(args.model, args.repeats, args.device)
        if "train" in sections:
            for batch in [int(b) for b in args.batch.split(",")]:
                report[f"train_threads{threads}_batch{batch}"] = bench_train(args.steps, batch, args.device)
    print("| measure | value |\n|---|---|")
    for section, values in report.items():
        if isinstance(values, dict):
            for k, v in values.items():
                print(f"| {section}: {k} | {v} |")
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"training-{args.device}-{args.sections.replace(',', '-')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
