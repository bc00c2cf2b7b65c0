"""Benchmark: how far exact fp32 can go on this CPU, and what bf16 does to the accuracy gate (issue 11).

Two questions decide issue 11's CPU target (`analyze` >= 3x the Hugging Face pipeline within the gate of
bench/gate.py), and this bench answers both in one run on the machine it runs on:

  ceiling  The engines' throughput on the transformer's dominant operation, an AST-base MLP matmul
           (4096 tokens x 768 -> 3072), in GFLOP/s: torch and OpenVINO, fp32 and bf16, on --threads threads.
           The model is 92-99 % of both sides' time (docs/benchmarks.md), so OpenVINO fp32 / torch fp32 here
           bounds the speed-up any exact engine can give a matmul-bound model on this CPU.
  study    Real audio (the ESC-50 scene of bench_analyze) analysed by the product's own path (Analyzer: decode,
           fbank, windows) with the transformer run in fp32 (torch, the reference) and in each way of
           putting bf16 into it; every run's scores and events are gated against the reference
           (bench/gate.py: max |score difference| <= 0.02 and >= 98 % of events identical). Models: the
           shipped one (trained), and AST-tiny / AST-base at 1024 frames whose random head is scaled to a
           trained model's logit spread (bench.gate.scale_head; the released weights cannot be downloaded
           here). The bf16 variants:
             openvino bf16        what --precision bf16 runs (OpenVINO's bf16: matmuls, attention, norms)
             torch bf16 weights   TorchRunner's bf16: the whole model in bf16, fp32 accumulation
             torch autocast       bf16 matmuls only; residual stream, norms and softmax stay fp32
             blocks 1-2 bf16      the first 2 of the blocks in bf16 weights, the rest fp32 (1/6 of the work)

Usage: python bench/bench_precision.py [--models default,tiny,base] [--minutes 5] [--threads 2]
[--sections ceiling,study]; markdown to stdout, JSON to bench/results/precision-cpu.json.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.bench_analyze import machine_info, make_audio  # noqa: E402
from bench.bench_backends import model as stand_in  # noqa: E402
from bench.gate import gate, scale_head  # noqa: E402
from core.analyze import Analyzer  # noqa: E402
from core.backends import TorchRunner, import_openvino  # noqa: E402
from core.config import EventConfig, InferenceOptions  # noqa: E402
from core.events import detect_events  # noqa: E402
from core.features import fbank, normalize  # noqa: E402
from core.scorer import Scorer  # noqa: E402

RESULTS = ROOT / "bench" / "results"
HOPS_S = {"default": 0.5, "tiny": 1.0, "base": 5.0}   # base at 5 s: its fp32 reference costs 1.3 s a window


# ----------------------------------------------------------------------------- ceiling

def gflops(call, flop: float, seconds: float = 2.0) -> float:
    call()
    n, start = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - start < seconds:
        call()
        n += 1
    return flop * n / (time.perf_counter() - start) / 1e9


def ceiling(threads: int, seconds: float = 2.0) -> dict:
    """GFLOP/s of one (4096 x 768) @ (768 x 3072) matmul per engine and precision, on `threads` threads."""
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(4096, 768, generator=g), torch.randn(3072, 768, generator=g)
    flop = 2 * x.shape[0] * w.shape[1] * w.shape[0]
    out = {"torch fp32": gflops(lambda: x @ w.T, flop, seconds)}
    xb, wb = x.bfloat16(), w.bfloat16()
    out["torch bf16"] = gflops(lambda: xb @ wb.T, flop, seconds)
    if ov := import_openvino():
        from openvino import opset13 as ops
        p = ops.parameter([-1, 768], np.float32)
        graph = ov.Model([ops.matmul(p, ops.constant(w.numpy()), False, True)], [p])
        for precision, hint in (("fp32", "f32"), ("bf16", "bf16")):
            request = ov.Core().compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                             "INFERENCE_NUM_THREADS": threads}).create_infer_request()
            array = x.numpy()
            out[f"openvino {precision}"] = gflops(lambda: request.infer({0: array}), flop, seconds)
    return out


# ----------------------------------------------------------------------------- study

class _Variant:
    """A Runner (core.backends) that runs `forward` on the CPU: normalised windows -> logits."""

    device = torch.device("cpu")

    def __init__(self, name: str, forward, threads: int):
        self.backend, self.precision, self.threads, self.forward = name, "mixed", threads, forward

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        torch.set_num_threads(self.threads)
        return self.forward(x).float()


def _blocks_bf16(model, first: int):
    """The model with blocks [0, first) in bf16 weights and activations, the rest fp32."""
    low = copy.deepcopy(model).bfloat16()

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = model.patch_embed(x)
        B = x.shape[0]
        x = torch.cat([model.cls_token.expand(B, -1, -1), model.dist_token.expand(B, -1, -1), x], 1) + model.pos_embed
        for i, block in enumerate(model.blocks):
            x = low.blocks[i](x.bfloat16()).float() if i < first else block(x)
        x = model.norm(x)
        return model.mlp_head((x[:, 0] + x[:, 1]) / 2)
    return forward


def variants(loaded, threads: int) -> dict:
    """name -> a function that builds the Runner (built just before its run, so memory holds one at a time)."""
    def autocast(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return loaded.model(x)
    out = {"torch fp32 (reference)": lambda: TorchRunner(loaded.model, torch.device("cpu"), "fp32", threads)}
    if import_openvino():
        from core.ov_backend import OpenVinoRunner
        out["openvino fp32"] = lambda: OpenVinoRunner(loaded, "fp32", threads)
        out["openvino bf16"] = lambda: OpenVinoRunner(loaded, "bf16", threads)
    out["torch bf16 weights"] = lambda: TorchRunner(loaded.model, torch.device("cpu"), "bf16", threads)
    out["torch autocast"] = lambda: _Variant("autocast", autocast, threads)
    out["blocks 1-2 bf16"] = lambda: _Variant("blocks 1-2", _blocks_bf16(loaded.model, 2), threads)
    return out


def trained_like(name: str, audio: Path):
    """The stand-in model `name` (bench_backends.model), its head scaled on 8 windows spread over `audio`."""
    import soundfile as sf
    loaded = stand_in(name)
    if name != "default":
        T = loaded.features.num_frames
        x = normalize(fbank(torch.from_numpy(sf.read(audio, dtype="float32")[0]), loaded.features), loaded.features)
        step = (x.shape[0] - T) // 8
        scale_head(loaded.model, torch.stack([x[k * step:k * step + T] for k in range(8)]))
    return loaded


def study(name: str, audio: Path, threads: int) -> list[dict]:
    loaded = trained_like(name, audio)
    scorer = Scorer(loaded, InferenceOptions.exact("cpu"))
    analyzer = Analyzer(scorer, hop_s=HOPS_S[name])
    rows, reference = [], None
    for variant, build in variants(loaded, threads).items():
        scorer.runner = build()
        start = time.perf_counter()
        timeline = analyzer.analyze(str(audio))
        seconds = time.perf_counter() - start
        events = detect_events(timeline, EventConfig())
        if reference is None:
            reference = (timeline.scores, events)
        row = {"model": name, "variant": variant, "windows": len(timeline.scores),
               "ms_per_window": seconds / len(timeline.scores) * 1e3, **gate(reference[0], timeline.scores,
                                                                               reference[1], events)}
        rows.append(row)
        print(f"  {name:7s} {variant:24s} {row['ms_per_window']:8.1f} ms/window  max diff "
              f"{row['max_score_difference']:.4f}  same events {row['same_events']:.1%} of {row['events_fp32']}",
              file=sys.stderr, flush=True)
        del scorer.runner
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="default,tiny,base")
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the real scene (ESC-50 clips)")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--sections", default="ceiling,study")
    parser.add_argument("--json", default="precision-cpu.json")
    args = parser.parse_args()
    sections = args.sections.split(",")
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine_info("cpu"), "threads": args.threads, "loadavg_start": os.getloadavg()}
    lines = []
    if "ceiling" in sections:
        result["ceiling_gflops"] = c = ceiling(args.threads)
        lines += ["| engine | GFLOP/s | vs torch fp32 |", "|---|---|---|"]
        lines += [f"| {k} | {v:.0f} | {v / c['torch fp32']:.2f}x |" for k, v in c.items()]
        lines.append("")
    if "study" in sections:
        audio = make_audio(args.minutes)
        result["study"] = rows = [r for name in args.models.split(",") for r in study(name, audio, args.threads)]
        lines += ["| model | variant | ms/window | max score diff | same events | gate |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['variant']} | {r['ms_per_window']:.1f} | {r['max_score_difference']:.4f} | "
                  f"{r['same_events']:.1%} of {r['events_fp32']} | {'passes' if r['passed'] else 'fails'} |"
                  for r in rows]
    result["loadavg_end"] = os.getloadavg()
    print("\n".join(lines))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
