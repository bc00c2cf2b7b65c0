"""Frozen configuration dataclasses shared by every thread (immutable, so safe to pass around).

They are stored as JSON inside model files and next to every export.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, TypeVar

from core.errors import ConfigError

T = TypeVar("T")


def from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Build a config dataclass from a dict; unknown keys are an error that lists the valid ones."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if not isinstance(values, dict):
        raise ConfigError(f"{cls.__name__} must be a JSON object of key: value, got a {type(values).__name__}; "
                          f"valid keys: {sorted(names)}")
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} key(s) {unknown}; valid keys: {sorted(names)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**values)


def to_json(config: Any) -> str:
    return json.dumps(dataclasses.asdict(config), sort_keys=True)


LOG_EPS = math.log(2.0 ** -23)  # the fbank of digital silence: log of float32 eps, -15.94

PADDINGS = {"zeros": 0.0, "silence": LOG_EPS}


def require_whole(config: Any, names: tuple[str, ...], minimum: int = 1) -> None:
    """Raise ConfigError unless every named field is an int (not a bool, not "3") >= minimum."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{type(config).__name__}.{name} must be a whole number, got {value!r}")
        if value < minimum:
            raise ConfigError(f"{type(config).__name__}.{name} must be >= {minimum}, got {value!r}")


def require_positive(config: Any, names: tuple[str, ...]) -> None:
    """Raise ConfigError unless every named field is a finite number > 0."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{type(config).__name__}.{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class FeatureConfig:
    """The Kaldi log-mel fbank AST was trained with, plus the normalisation of its checkpoint."""

    sample_rate_hz: int = 16000     # AST is trained on 16 kHz audio; everything is resampled to it
    num_mel_bins: int = 128         # frequency axis F of the model input
    frame_length_samples: int = 400  # 25 ms analysis frames
    frame_shift_samples: int = 160   # 10 ms hop: one model time step
    num_frames: int = 1024          # model window T in frames (1024 = 10.24 s, AudioSet)
    mean: float = -4.2677393        # dataset statistics of the checkpoint (AudioSet by default)
    std: float = 4.5689974          # features are normalised as (x - mean) / (2 * std)
    padding: str = "zeros"          # what fills a window past the end of the audio: "zeros" = a log-mel of 0,
                                    # as AST and its released checkpoints pad; "silence" = the fbank of digital
                                    # silence (log eps), as the default model is trained, so that padding
                                    # looks like quiet audio and no class can be told by it

    def __post_init__(self) -> None:
        require_whole(self, ("sample_rate_hz", "num_mel_bins", "frame_length_samples", "frame_shift_samples",
                             "num_frames"))
        if self.padding not in PADDINGS:
            raise ConfigError(f"feature padding must be one of {sorted(PADDINGS)}, got {self.padding!r}")
        for name in ("mean", "std"):   # a NaN/inf mean or a std <= 0 makes every score NaN
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ConfigError(f"feature {name} must be a finite number (the checkpoint's dataset statistic, "
                                  f"e.g. {FeatureConfig.__dataclass_fields__[name].default}), got {value!r}; "
                                  "the model file's feature statistics are damaged")
        if self.std <= 0:
            raise ConfigError(f"feature std must be > 0 (features are divided by 2 * std), got {self.std!r}; "
                              "the model file's feature statistics are damaged")

    @property
    def pad_log_mel(self) -> float:
        """The raw log-mel value of a padded frame (before normalisation)."""
        return PADDINGS[self.padding]

    @property
    def frame_shift_s(self) -> float:
        return self.frame_shift_samples / self.sample_rate_hz

    @property
    def window_s(self) -> float:
        """Nominal window length in seconds (num_frames x 10 ms, e.g. 10.24 s)."""
        return self.num_frames * self.frame_shift_samples / self.sample_rate_hz

    def with_frames(self, num_frames: int) -> "FeatureConfig":
        return dataclasses.replace(self, num_frames=num_frames)


@dataclass(frozen=True)
class ModelConfig:
    """Shape of an AST; the defaults are AST-base as released (base384, AudioSet)."""

    num_classes: int = 527
    num_mel_bins: int = 128
    num_frames: int = 1024          # T the position table was built for
    patch_size: int = 16
    frequency_stride: int = 10
    time_stride: int = 10
    embed_dim: int = 768            # tiny 192, small 384, base 768
    depth: int = 12
    num_heads: int = 12             # embed_dim / 64 in the released checkpoints
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    norm_eps: float = 1e-6          # blocks and final norm (original); Hugging Face uses 1e-12
    head_norm_eps: float = 1e-5     # the head LayerNorm (original); Hugging Face uses 1e-12

    def __post_init__(self) -> None:
        require_whole(self, ("num_classes", "num_mel_bins", "num_frames", "patch_size", "frequency_stride",
                             "time_stride", "embed_dim", "depth", "num_heads"))
        require_positive(self, ("mlp_ratio", "norm_eps", "head_norm_eps"))
        if not isinstance(self.qkv_bias, bool):
            raise ConfigError(f"ModelConfig.qkv_bias must be true or false, got {self.qkv_bias!r}")
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}: each "
                              "head takes embed_dim / num_heads channels; choose a num_heads that divides it")
        if self.patch_size > min(self.num_mel_bins, self.num_frames):
            raise ConfigError(f"patch_size {self.patch_size} is larger than the input ({self.num_mel_bins} mel "
                              f"bins x {self.num_frames} frames); no patch fits")
        if int(self.embed_dim * self.mlp_ratio) < 1:
            raise ConfigError(f"mlp_ratio {self.mlp_ratio} gives an MLP of no units for embed_dim {self.embed_dim}")

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid (frequency rows, time columns)."""
        f = (self.num_mel_bins - self.patch_size) // self.frequency_stride + 1
        t = (self.num_frames - self.patch_size) // self.time_stride + 1
        return f, t

    @property
    def num_patches(self) -> int:
        f, t = self.grid
        return f * t


BACKENDS = ("auto", "torch", "openvino")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class InferenceOptions:
    """Where and how the model runs (`--device/--backend/--precision/--threads`); core.backends resolves it."""

    device: str = "auto"         # auto, cpu, cuda[:N]
    backend: str = "auto"        # auto, torch, openvino (auto: openvino on the CPU when installed)
    precision: str = "auto"      # auto, fp32, bf16 (auto: bf16 where native and within tolerance)
    threads: int | None = None   # CPU threads; None = the thread policy of core.backends

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; use {', '.join(BACKENDS)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; use {', '.join(PRECISIONS)}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ConfigError(f"threads must be a whole number >= 1, got {self.threads!r}")

    @classmethod
    def exact(cls, device: object = "auto") -> "InferenceOptions":
        """The model as it is: torch in fp32 on `device` (the reference every other choice is measured by)."""
        return cls(str(device), "torch", "fp32")


@dataclass(frozen=True)
class EventConfig:
    """The event rule (core.events): per-label median filter, hysteresis, minimum duration, gap merge.

    Every length is in seconds, so one rule gives the same events at any hop (core.events.median_windows
    turns median_s into windows of the timeline's hop).
    """

    on_threshold: float = 0.3        # a window whose own score reaches this opens an event; chosen on the
                                     # earlier CPU model's fold 5 (half the true labels vs 30 % at 0.5); the
                                     # shipped model tags nothing on silence or noise at 0.3 and finds speech
                                     # at 0.3-0.8 (assets/models/default.metrics.json)
    off_threshold: float = 0.2       # ... which stays open until the smoothed score falls below this
    median_s: float = 3.0            # median filter of the off decision, s (3 windows at a 1 s hop; < 2 hops: off)
    min_duration_s: float = 0.0      # shorter events are dropped
    merge_gap_s: float = 1.0         # events of one label closer than this are merged
    label_thresholds: tuple[tuple[str, float], ...] = field(default_factory=tuple)  # (label id or name, on threshold)

    def __post_init__(self) -> None:
        if not 0.0 <= self.off_threshold <= self.on_threshold <= 1.0:
            raise ConfigError(
                f"thresholds must satisfy 0 <= off ({self.off_threshold}) <= on ({self.on_threshold}) <= 1")
        if not (math.isfinite(self.median_s) and self.median_s >= 0):
            raise ConfigError(f"median_s must be a finite number of seconds >= 0, got {self.median_s!r}")
        if self.min_duration_s < 0 or self.merge_gap_s < 0:
            raise ConfigError("min_duration_s and merge_gap_s must be >= 0")

    @classmethod
    def from_saved(cls, values: dict[str, Any], hop_s: float) -> "EventConfig":
        """An EventConfig from saved values (params.csv, metrics JSON), also those written before the median
        was in seconds: `median_windows` N at the saved hop is N * hop_s seconds (the same N windows)."""
        values = dict(values)
        if "median_windows" in values:
            windows = values.pop("median_windows")
            values.setdefault("median_s", float(windows) * hop_s)
        return from_dict(cls, values)
