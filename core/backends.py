"""Which engine runs the transformer, in which precision, on how many threads (docs/speed.md).

core.scorer.Scorer is the one user: it resolves an InferenceOptions into a runner here, on the thread that
owns the Scorer (the analysis thread, the live tagger's, a GUI worker, a Ray actor), and calls the runner
on that thread only. Features (fbank, normalisation) stay torch; a runner takes normalised windows
(B, T, F) float32 and returns logits (B, L) float32 on the CPU.

- backend: `torch` (the model as it is), or `openvino` (core.ov_backend: the model converted once to
  OpenVINO IR and cached on disk; CPU only, the optional `fast` extra). `auto` = openvino on the CPU when it
  is installed, else torch.
- precision: `fp32` (exact: within 1e-6 of the model), or `bf16` (bf16 weights and activations, fp32
  accumulation). `auto` = bf16 only where the hardware runs it natively (a CPU with AVX512-BF16 or AMX, a
  GPU with bf16), the model is not small (under SMALL_MODEL_GFLOP per window bf16 saves under a millisecond
  and would move events that sit on a threshold) AND its scores on a probe stay within half of BF16_TOLERANCE
  of fp32 (a few windows see about half the error of a long file; checked once per model, backend and
  version; the verdict is cached); otherwise fp32.
- threads: on the CPU, a model whose window costs under SMALL_MODEL_GFLOP runs on 1 thread (a second one
  gains little and stalls whenever another process is busy); a larger one on every usable core up to 4,
  and on 1 while a live tagger of this process is running, so that file analysis leaves the cores to it.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import math
import os
import threading
from typing import Iterator, Protocol

import torch

from core.atomic import atomic_write
from core.config import FeatureConfig, InferenceOptions, ModelConfig
from core.errors import ConfigError
from core.engine_cache import backend_version, cache_root, import_openvino, weights_hash

__all__ = ["Runner", "BF16_TOLERANCE", "build_runner", "describe", "resolve_device", "cpu_flags", "has_native_bf16",
           "auto_threads", "live_tagging", "gflop_per_window", "cache_root", "weights_hash", "backend_version",
           "import_openvino", "bf16_error", "probe_windows"]

log = logging.getLogger(__name__)

BF16_TOLERANCE = 0.02          # largest |score difference| to fp32 that bf16 may cause (the accuracy gate)
SMALL_MODEL_GFLOP = 10.0       # below this per window: one CPU thread, auto precision fp32 (shipped model: 0.25)
PROBE_VERSION = "1"            # bump when probe_windows changes: cached verdicts are then redone
PROBE_MARGIN = 0.5             # the probe's few windows see about half the error of a long file (docs/speed.md)
MAX_AUTO_THREADS = 4           # a cap, not measured (the machine had 2 cores): 1-8 windows split thinly further
FAST_EXTRA = "pip install 'ast-tagger[fast]' (or pip install openvino)"


class Runner(Protocol):
    """A resolved engine: normalised windows (B, T, F) float32 on `device` -> logits (B, L) float32, CPU."""

    device: torch.device
    backend: str
    precision: str
    threads: int | None          # None on a GPU

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


# ----------------------------------------------------------------------------- the machine

@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where they cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.partition(":")[2].split())


def has_native_bf16(device: torch.device) -> bool:
    """Does `device` compute in bf16 natively (else bf16 is emulated: slower than fp32 and less exact)?"""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        return os.cpu_count() or 1


def gflop_per_window(cfg: ModelConfig) -> float:
    """Forward cost of one window: 2 x (the block matmuls + attention) over all tokens (AST-base: 261)."""
    f, t = cfg.grid
    n, d = f * t + 2, cfg.embed_dim
    per_block = n * d * d * (4 + 2 * cfg.mlp_ratio) + 2 * n * n * d   # qkv + proj + MLP, q.k and attn.v
    return 2 * cfg.depth * per_block / 1e9


class _LiveTaggers:
    """How many live taggers of this process are scoring now (their scorers keep their threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            self.running += 1
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1


_LIVE = _LiveTaggers()


def live_tagging() -> contextlib.AbstractContextManager:
    """Held by a live tagger while it runs (core.tagger), so that batch scorers made meanwhile take 1 thread."""
    return _LIVE.held()


def auto_threads(cfg: ModelConfig, live: bool = False) -> int:
    """The thread policy (module docstring): 1 for a cheap model, or for file analysis during live tagging."""
    if gflop_per_window(cfg) < SMALL_MODEL_GFLOP or (not live and _LIVE.running):
        return 1
    return min(MAX_AUTO_THREADS, usable_cores())


# ----------------------------------------------------------------------------- resolving the options

def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available else CPU; 'cuda' without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA GPU on this machine; "
                          "use --device cpu (or auto)")
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


def _choose_backend(options: InferenceOptions) -> tuple[str, torch.device, str | None]:
    """(backend, device, a note for the user when the wish could not be met)."""
    if options.backend == "openvino":
        if options.device.startswith("cuda"):
            raise ConfigError("--backend openvino runs on the CPU; use --device cpu (or auto), or --backend torch "
                              "for the GPU")
        if import_openvino() is None:
            return "torch", torch.device("cpu"), f"openvino is not installed, running on torch: {FAST_EXTRA}"
        return "openvino", torch.device("cpu"), None
    device = resolve_device(options.device)
    if options.backend == "auto" and device.type == "cpu":
        if import_openvino() is not None:
            return "openvino", device, None
        return "torch", device, f"openvino is not installed; {FAST_EXTRA} runs this model 2-4x faster on this CPU"
    return "torch", device, None


def build_runner(loaded, options: InferenceOptions, live: bool = False) -> tuple[Runner, str | None]:
    """The runner for `options` and a one-line note (a fallback, a precision kept at fp32), or None.

    Precision `bf16` on hardware without native bf16 is refused: emulated, it is slower than fp32.
    """
    backend, device, note = _choose_backend(options)
    threads = None if device.type == "cuda" else (options.threads or auto_threads(loaded.model.config, live))
    native = has_native_bf16(device)
    if options.precision == "bf16" and not native:
        where = "this GPU" if device.type == "cuda" else "this CPU (no AVX512-BF16 or AMX)"
        raise ConfigError(f"--precision bf16: {where} has no native bf16, so it would run slower than fp32 and "
                          "less exactly; use --precision fp32 (or auto)")
    make = functools.partial(_make_runner, loaded, backend, device, threads=threads)
    small = gflop_per_window(loaded.model.config) < SMALL_MODEL_GFLOP
    if options.precision == "fp32" or (options.precision == "auto" and (not native or small)):
        return make("fp32"), note
    runner = make("bf16")
    if options.precision == "auto" and (error := bf16_error(loaded, runner)) > BF16_TOLERANCE * PROBE_MARGIN:
        note = (f"bf16 moved this model's scores by up to {error:.3f} on a probe (allowed: "
                f"{BF16_TOLERANCE * PROBE_MARGIN:g}, as a long file sees about twice that), so it runs in fp32 "
                "(--precision bf16 forces it)")
        return make("fp32"), note
    return runner, note


def _make_runner(loaded, backend: str, device: torch.device, precision: str, threads: int | None) -> Runner:
    if backend == "openvino":
        from core.ov_backend import OpenVinoRunner
        return OpenVinoRunner(loaded, precision, threads)
    return TorchRunner(loaded.model, device, precision, threads)


# ----------------------------------------------------------------------------- torch

class TorchRunner:
    """The model in torch. bf16 runs a bf16 copy of the weights (not autocast: on the CPU autocast keeps
    casting the fp32 weights on every call, and on a GPU the copy halves the memory); fp32 is the model."""

    backend = "torch"

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str, threads: int | None):
        self.device, self.precision, self.threads = device, precision, threads
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        if self.dtype != torch.float32:
            model = copy.deepcopy(model)   # the loaded model stays fp32: other scorers and hashes read it
        self.model = model.to(device=device, dtype=self.dtype).eval()

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.threads is not None:
            torch.set_num_threads(self.threads)   # this thread's count (the app's other threads keep theirs)
        return self.model(x.to(self.dtype)).float().cpu()


# ----------------------------------------------------------------------------- the bf16 verdict

def probe_windows(features: FeatureConfig, count: int = 4) -> torch.Tensor:
    """`count` normalised windows (B, T, F) of seeded synthetic sound, alternating harmonic tones over noise and
    clicks in quieter noise at rising pitch and falling level: loud and quiet, tonal and broadband input."""
    from core.features import fbank, normalize, pad_or_cut
    rate, T = features.sample_rate_hz, features.num_frames
    n = features.frame_length_samples + (T - 1) * features.frame_shift_samples
    g = torch.Generator().manual_seed(0)
    t = torch.arange(n) / rate
    windows = []
    for k in range(count):
        noise = torch.randn(n, generator=g) * (0.05 if k % 2 else 0.2) / (k + 1)
        tones = sum(torch.sin(2 * math.pi * (220 * (k + 1) * h) * t) / h for h in (1, 2, 3)) * 0.1
        clicks = (torch.rand(n, generator=g) > 0.9995).float() * 0.8
        wave = noise + (clicks if k % 2 else tones)
        windows.append(pad_or_cut(fbank(wave.float(), features), T, features.pad_log_mel))
    return normalize(torch.stack(windows), features)


def bf16_error(loaded, runner: Runner) -> float:
    """Max |score difference| between `runner` and the fp32 model on the probe; cached on disk per model,
    backend, backend version, precision and input shape (a rerun reads it back)."""
    cfg = loaded.model.config
    key = (f"{weights_hash(loaded)}-{runner.backend}-{backend_version(runner.backend)}-{runner.precision}-"
           f"{cfg.num_frames}x{cfg.num_mel_bins}-probe{PROBE_VERSION}")
    path = cache_root() / "verdicts" / f"{key}.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return float(json.loads(path.read_text(encoding="utf-8"))["max_score_difference"])
    x = probe_windows(loaded.features)
    with torch.inference_mode():   # the fp32 model where it is (a GPU runner in fp32 moved it there)
        reference = torch.sigmoid(loaded.model(x.to(next(loaded.model.parameters()).device))).cpu()
    error = float((torch.sigmoid(runner(x.to(runner.device))) - reference).abs().max())
    with contextlib.suppress(OSError):   # a read-only cache costs a probe per start, nothing more
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            f.write(json.dumps({"max_score_difference": error, "tolerance": BF16_TOLERANCE}))
    return error


def describe(runner: Runner) -> str:
    """One line for the user: 'openvino bf16, 1 thread', 'torch fp32, 2 threads', 'torch bf16, cuda:0'."""
    where = (f"{runner.threads} thread{'s' * (runner.threads != 1)}" if runner.device.type == "cpu"
             else str(runner.device))
    return f"{runner.backend} {runner.precision}, {where}"
