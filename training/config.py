"""The one training configuration (a frozen dataclass) and its named presets.

Saved inside every checkpoint and model file. Overrides come as `key=value` strings from the command
line; an unknown key is an error that lists the valid keys. Used on the training (main) thread only.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import from_dict
from core.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class TrainConfig:
    # --- data: sources as "kind:path[@key=value...]" (see training/data.py: esc50, fsdd, folders, csv, negatives)
    data: tuple[str, ...] = (f"esc50:{SHARED_DATA / 'esc50'}",
                             f"fsdd:{SHARED_DATA / 'fsdd'}@label=speech@limit=400",
                             "negatives:320")
    eval_fold: int = 5               # fold held out for evaluation; 0 = train on every fold (shipping run)
    num_folds: int = 5               # folds for sources without official folds (assigned by source recording)
    loss: str = "bce"                # "bce": multi-label, sigmoid (negatives allowed); "ce": single-label softmax
    # --- model (ignored where `init` gives a pretrained model, except the head and the window)
    init: str = ""                   # fine-tune from: our .safetensors, a Hugging Face AST dir, an original .pth
    num_frames: int = 512            # model window T (10 ms frames); 512 = 5.12 s covers an ESC-50 clip
    embed_dim: int = 192
    depth: int = 4
    num_heads: int = 3
    patch_size: int = 32             # non-overlapping patches (stride = size): 32 -> 4 x 16 = 64 tokens at
                                     # T = 512 (CPU-sized); 16 -> 8 x 32 = 256; AST's own is 16 with stride 10
    mean: float = -6.6268077         # feature statistics (ESC-50, AST.md); a pretrained model brings its own
    std: float = 5.358466
    padding: str = "silence"         # what fills a window past a clip's end, in training and at inference
                                     # (core.config.FeatureConfig.padding): "silence" = the fbank of digital
                                     # silence; "zeros" = AST's log-mel 0, which let FSDD's padded 0.5 s digits
                                     # teach `speech` = "short and padded" (issue 13)
    # --- optimisation
    epochs: int = 40
    batch_size: int = 32
    optimizer: str = "adamw"         # "adamw" or "adam"
    lr: float = 5e-4                 # 1e-3 stalled at the class priors for 4 epochs (batch 32, CPU run)
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_epochs: float = 3.0       # linear warmup, then cosine decay to min_lr_ratio * lr
    min_lr_ratio: float = 0.01
    time_budget_min: float = 0.0     # > 0: train for this many minutes of loop time (schedule by time;
                                     # epochs is then an upper bound) - for a fixed CPU/GPU budget
    grad_clip: float = 1.0           # max global gradient norm (0 = off)
    # --- augmentation (on the batch's device; training/augment.py)
    freq_mask: int = 24              # SpecAugment: widest frequency mask (mel bins), 0 = off
    time_mask: int = 96              # widest time mask (frames), 0 = off
    num_masks: int = 2               # masks of each kind per clip
    mixup: float = 0.3               # probability that a batch is mixed up (labels mixed in proportion)
    mixup_alpha: float = 10.0        # Beta(alpha, alpha) mixing weights (AST uses 10)
    gain_db: float = 6.0             # random gain in [-gain_db, +gain_db]
    time_shift: int = 256            # random roll of the time axis by up to this many frames (half the
                                     # 512-frame window: live windows catch sounds anywhere in them; fold 5
                                     # 60.0 % vs 57.75 % at 64, in-stream tagging 46 % vs 45 %, one seed)
    noise_prob: float = 0.3          # probability of mixing a background under a clip (synthetic noise and
                                     # the recorded backgrounds among the training clips with no label)
    tilt_prob: float = 0.0           # probability of a random spectral tilt (+-6 dB per octave) or band limit
                                     # (telephone 300-3400 Hz, a 4 kHz or 8 kHz source) on a clip
    noise_snr_db: tuple[float, float] = (0.0, 30.0)  # range of clip-to-background level ratios
    # --- run
    seed: int = 1337
    device: str = "auto"             # auto = CUDA when available
    threads: int = 1                 # torch CPU threads; on a shared 2-core CPU, 2 threads ran 7x slower
                                     # than 1 (threads spin while the other core is busy)
    out_dir: str = "runs/default"
    cache_dir: str = ""              # feature cache; "" = <out_dir>/../cache
    eval_every: int = 1              # epochs between evaluations (the last epoch always evaluates)
    resume: bool = True              # continue from <out_dir>/ckpt.pt when it exists
    max_steps: int = 0               # stop after this many optimiser steps (0 = no limit; smoke tests)
    progress: bool = True            # tqdm progress bar

    def __post_init__(self) -> None:
        if self.loss not in ("bce", "ce"):
            raise ConfigError(f"loss must be 'bce' or 'ce', got {self.loss!r}")
        if self.optimizer not in ("adamw", "adam"):
            raise ConfigError(f"optimizer must be 'adamw' or 'adam', got {self.optimizer!r}")
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    "default": {},  # the shipped model's recipe (the dataclass defaults)
    # a few seconds on a CPU: for tests and for trying a data layout
    "tiny": dict(embed_dim=32, depth=1, num_heads=2, num_frames=128, epochs=2, batch_size=4,
                 warmup_epochs=0.5, time_mask=16, freq_mask=8, time_shift=8, progress=False),
}


def _parse_value(field: dataclasses.Field, text: str) -> Any:
    kind = str(field.type)
    if kind.startswith("tuple"):
        items = [s for s in text.split(",") if s] if text else []
        return tuple(float(s) for s in items) if "float" in kind else tuple(items)
    if kind == "bool":
        if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ConfigError(f"{field.name} expects true or false, got {text!r}")
        return text.lower() in ("1", "true", "yes")
    try:
        return {"int": int, "float": float}.get(kind, str)(text)
    except ValueError:
        raise ConfigError(f"{field.name} expects a {kind}, got {text!r}") from None


def make_config(preset: str = "default", overrides: list[str] | dict[str, Any] | None = None) -> TrainConfig:
    """A preset plus `key=value` overrides (strings from the command line, or a dict of typed values)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; valid presets: {sorted(PRESETS)}")
    values = dict(PRESETS[preset])
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    if isinstance(overrides, dict):
        values.update(overrides)
    for item in overrides if isinstance(overrides, list) else []:
        key, sep, text = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep:
            raise ConfigError(f"override {item!r} is not key=value")
        if key not in fields:
            raise ConfigError(f"unknown config key {key!r}; valid keys: {sorted(fields)}")
        values[key] = _parse_value(fields[key], text)
    return from_dict(TrainConfig, values)


def config_from_json(text: str) -> TrainConfig:
    return from_dict(TrainConfig, json.loads(text))
