"""Batch augmentations on raw log-mel windows, on whichever device the batch lives (training thread).

Every function takes x (B, T, F) raw log-mel (natural log of mel power, before normalisation) and
returns new tensors of the same shape. Frames outside a clip (`valid` False) hold AST's zero padding.
Mixing happens in the power domain (logaddexp), which is what adding two waveforms does to the
spectrogram up to phase.
"""
from __future__ import annotations

import math

import numpy as np
import torch

LOG_FLOOR = math.log(torch.finfo(torch.float32).eps)  # the fbank's floor (digital silence)
DB = math.log(10.0) / 10.0                              # 1 dB of power in natural-log units


def random_gain(x: torch.Tensor, valid: torch.Tensor, max_db: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """Scale each clip by a random gain in [-max_db, max_db] dB (padding untouched, floor kept)."""
    if max_db <= 0:
        return x
    gain = (torch.rand(x.shape[0], 1, 1, generator=gen, device=x.device) * 2 - 1) * max_db * DB
    return torch.where(valid[..., None], (x + gain).clamp_min(LOG_FLOOR), x)


def mel_centres_hz(num_bins: int, low_hz: float = 20.0, high_hz: float = 8000.0) -> torch.Tensor:
    """Centre frequency of each of the fbank's Kaldi mel bins (mel = 1127 ln(1 + f / 700)), (F,)."""
    mel = lambda f: 1127.0 * math.log(1.0 + f / 700.0)
    lo, hi = mel(low_hz), mel(high_hz)
    centres = lo + (hi - lo) / (num_bins + 1) * torch.arange(1, num_bins + 1, dtype=torch.float64)
    return (700.0 * (torch.exp(centres / 1127.0) - 1.0)).float()


# band limits of real recording chains: (low Hz, high Hz) passed, the rest 60 dB down
BANDS = ((300.0, 3400.0), (0.0, 4000.0), (0.0, 5500.0))


def spectral_shape(x: torch.Tensor, valid: torch.Tensor, prob: float, features,
                   gen: torch.Generator | None = None) -> torch.Tensor:
    """For a random share `prob` of clips, the spectrum of another microphone or channel: half get a tilt of
    -6..+6 dB per octave around 1 kHz, flat below 125 Hz (EQ, cheap microphones), half a band limit from BANDS (a telephone line,
    an 8 kHz or 11 kHz source) with 100 Hz-wide edges. Applied to the clip's frames only; floor kept."""
    if prob <= 0:
        return x
    B, T, F = x.shape
    f = mel_centres_hz(F).to(x.device)                                        # (F,)
    chosen = torch.rand(B, generator=gen, device=x.device) < prob
    tilt = torch.rand(B, generator=gen, device=x.device) < 0.5
    slope = (torch.rand(B, 1, generator=gen, device=x.device) * 12 - 6)        # dB per octave
    tilt_db = slope * torch.log2(f / 1000.0).clamp(-3, 3)[None]                # (B, F), flat below 125 Hz
    band = torch.randint(len(BANDS), (B,), generator=gen, device=x.device)
    lows = torch.tensor([b[0] for b in BANDS], device=x.device)[band][:, None]
    highs = torch.tensor([b[1] for b in BANDS], device=x.device)[band][:, None]
    inside = ((f[None] - lows + 100) / 100).clamp(0, 1) * ((highs + 100 - f[None]) / 100).clamp(0, 1)
    band_db = -60.0 * (1 - inside)                                             # (B, F)
    curve = torch.where(tilt[:, None], tilt_db, band_db) * chosen[:, None] * DB
    shaped = (x + curve[:, None, :]).clamp_min(LOG_FLOOR)
    return torch.where(valid[..., None], shaped, x)


def add_background(x: torch.Tensor, valid: torch.Tensor, bank: torch.Tensor, prob: float,
                   snr_db: tuple[float, float], gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix a random background window from `bank` (M, T, F) under a random subset of clips.

    The background sits `snr` dB below the clip's mean level and also fills the clip's padding (the clip
    now sits inside a continuous background, as in a live stream). Returns (x, valid).
    """
    B, T, _ = x.shape
    if prob <= 0 or bank.numel() == 0:
        return x, valid
    chosen = torch.rand(B, generator=gen, device=x.device) < prob   # no early exit: that would sync a GPU
    noise = bank[torch.randint(bank.shape[0], (B,), generator=gen, device=x.device)][:, :T].float()
    level = (x * valid[..., None]).sum((1, 2)) / (valid.sum(1) * x.shape[2]).clamp_min(1)   # (B,) mean log-mel
    noise_level = noise.mean((1, 2))
    snr = torch.empty(B, device=x.device).uniform_(*snr_db, generator=gen) * DB
    offset = torch.where(valid.any(1), level - snr - noise_level, torch.zeros_like(level))[:, None, None]
    noise = (noise + offset).clamp_min(LOG_FLOOR)
    mixed = torch.where(valid[..., None], torch.logaddexp(x, noise), noise)
    x = torch.where(chosen[:, None, None], mixed, x)
    valid = valid | chosen[:, None]
    return x, valid


def time_shift(x: torch.Tensor, valid: torch.Tensor, max_frames: int,
               gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll each window along time by a random amount in [-max_frames, max_frames] (as AST does)."""
    if max_frames <= 0:
        return x, valid
    B, T, F = x.shape
    shift = torch.randint(-max_frames, max_frames + 1, (B, 1), generator=gen, device=x.device)
    source = (torch.arange(T, device=x.device)[None] - shift) % T          # (B, T)
    x = x.gather(1, source[..., None].expand(B, T, F))
    return x, valid.gather(1, source)


def spec_augment(x: torch.Tensor, freq_mask: int, time_mask: int, num_masks: int,
                 gen: torch.Generator | None = None) -> torch.Tensor:
    """SpecAugment: per clip, `num_masks` frequency bands (width < freq_mask) and time spans
    (width < time_mask) set to 0, as AST's torchaudio masks do before normalisation."""
    B, T, F = x.shape
    keep = torch.ones(B, T, F, dtype=torch.bool, device=x.device)
    for width_max, size, axis in ((freq_mask, F, 2), (time_mask, T, 1)):
        if width_max <= 0:
            continue
        for _ in range(num_masks):
            width = torch.randint(0, min(width_max, size), (B, 1), generator=gen, device=x.device)
            start = (torch.rand(B, 1, generator=gen, device=x.device) * (size - width + 1)).long()
            pos = torch.arange(size, device=x.device)[None]                   # (1, size)
            hit = (pos >= start) & (pos < start + width)                      # (B, size)
            keep &= ~(hit[:, None, :] if axis == 2 else hit[:, :, None])
    return x * keep


def mixup(x: torch.Tensor, valid: torch.Tensor, y: torch.Tensor, alpha: float,
          gen: torch.Generator | None = None, lam: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mix each clip with another of the batch: power-domain mix with weights lam, 1 - lam (one lam
    ~ Beta(alpha, alpha) per batch, or the given one), targets mixed with the same weights (total label
    mass unchanged)."""
    B = x.shape[0]
    perm = torch.randperm(B, generator=gen, device=x.device)
    if lam is None:
        lam = beta(alpha, gen) if gen is not None else float(np.random.beta(alpha, alpha))
    lam = min(max(lam, 1e-3), 1 - 1e-3)
    x2 = x[perm]
    mixed = torch.logaddexp(x + math.log(lam), x2 + math.log(1 - lam))
    both = valid[..., None] & valid[perm][..., None]
    # where only one clip has audio, keep its frames (the other contributes padding, not sound)
    x = torch.where(both, mixed, torch.where(valid[..., None], x, x2))
    return x, valid | valid[perm], lam * y + (1 - lam) * y[perm]


def beta(alpha: float, gen: torch.Generator) -> float:
    """A Beta(alpha, alpha) draw seeded from `gen` (numpy, on the CPU; a CUDA generator costs a sync)."""
    seed = int(torch.randint(2 ** 62, (1,), generator=gen, device=gen.device))
    return float(np.random.default_rng(seed).beta(alpha, alpha))
