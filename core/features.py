"""The Kaldi log-mel filterbank AST was trained with: offline (batched, CPU or CUDA) and streaming.

Used by the file-analysis thread, the live tagger thread and training. Every frame depends only on its
own 400 samples on a 160-sample grid (snip edges), so the streamer, which computes only the frames that
new samples complete, gives the same frames as the offline function on the whole signal.

Equal to ``torchaudio.compliance.kaldi.fbank(wave, htk_compat=True, sample_frequency=16000,
use_energy=False, window_type='hanning', num_mel_bins=128, dither=0.0, frame_shift=10)``: per-frame DC
removal, pre-emphasis 0.97, symmetric Hann window, 512-point FFT power spectrum, Kaldi mel banks
(20 Hz to Nyquist), log with a float-epsilon floor.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from core.config import FeatureConfig

PREEMPHASIS = 0.97
LOW_FREQ_HZ = 20.0


def num_frames_for(num_samples: int, config: FeatureConfig = FeatureConfig()) -> int:
    """Frames Kaldi computes from `num_samples` samples (snip edges): 1 + (N - 400) // 160, or 0."""
    if num_samples < config.frame_length_samples:
        return 0
    return 1 + (num_samples - config.frame_length_samples) // config.frame_shift_samples


def kaldi_mel_banks(config: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """Triangular Kaldi mel filters, (F mel bins, 257 FFT bins) float32; the last FFT bin has weight 0.

    Computed in float32 in the same order as Kaldi/torchaudio, so the weights match bit for bit.
    """
    n_fft = 1 << math.ceil(math.log2(config.frame_length_samples))  # 512
    mel_low = 1127.0 * math.log(1.0 + LOW_FREQ_HZ / 700.0)
    mel_high = 1127.0 * math.log(1.0 + (config.sample_rate_hz / 2) / 700.0)
    delta = (mel_high - mel_low) / (config.num_mel_bins + 1)
    index = torch.arange(config.num_mel_bins).unsqueeze(1)  # (F, 1)
    left, center, right = (mel_low + (index + k) * delta for k in (0.0, 1.0, 2.0))
    bin_hz = (config.sample_rate_hz / n_fft) * torch.arange(n_fft // 2)
    bin_mel = (1127.0 * (1.0 + bin_hz / 700.0).log()).unsqueeze(0)  # (1, 256)
    up = (bin_mel - left) / (center - left)
    down = (right - bin_mel) / (right - center)
    banks = torch.max(torch.zeros(1), torch.min(up, down))  # (F, 256)
    return F.pad(banks, (0, 1))  # (F, 257)


class Fbank(torch.nn.Module):
    """Offline, batched log-mel fbank. Builds the window and the mel matrix once.

    forward(waveform (..., N) float in [-1, 1]) -> (..., num_frames_for(N), F) log-mel energies.
    Works on any device and batch shape; all batch items must have the same length.
    """

    def __init__(self, config: FeatureConfig = FeatureConfig()):
        super().__init__()
        self.config = config
        self.n_fft = 1 << math.ceil(math.log2(config.frame_length_samples))
        window = torch.hann_window(config.frame_length_samples, periodic=False)  # float32, as Kaldi builds it
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("mel_t", kaldi_mel_banks(config).T.contiguous(), persistent=False)  # (257, F)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if waveform.shape[-1] < cfg.frame_length_samples:
            return waveform.new_zeros(*waveform.shape[:-1], 0, cfg.num_mel_bins)
        frames = waveform.unfold(-1, cfg.frame_length_samples, cfg.frame_shift_samples)  # (..., T, 400) view
        frames = frames - frames.mean(dim=-1, keepdim=True)  # DC removal per frame
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)  # x[n-1], x[-1] := x[0]
        frames = (frames - PREEMPHASIS * previous) * self.window
        power = torch.fft.rfft(frames, n=self.n_fft).abs().pow(2.0)  # (..., T, 257)
        mel = power @ self.mel_t  # (..., T, F)
        return mel.clamp_min(torch.finfo(mel.dtype).eps).log()


_FBANK_CACHE: dict[tuple[FeatureConfig, str], Fbank] = {}


def fbank(waveform: torch.Tensor, config: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """Functional form of `Fbank` (module cached per config and device). (..., N) -> (..., T, F)."""
    key = (config, str(waveform.device))
    if key not in _FBANK_CACHE:
        _FBANK_CACHE[key] = Fbank(config).to(waveform.device)
    return _FBANK_CACHE[key](waveform)


def pad_or_cut(features: torch.Tensor, num_frames: int, value: float = 0.0) -> torch.Tensor:
    """Pad (in the log-mel domain, at the end, with `value`: 0 as AST does, or FeatureConfig.pad_log_mel)
    or cut (..., T, F) to exactly num_frames."""
    t = features.shape[-2]
    if t >= num_frames:
        return features[..., :num_frames, :]
    return F.pad(features, (0, 0, 0, num_frames - t), value=value)


def normalize(features: torch.Tensor, config: FeatureConfig) -> torch.Tensor:
    """AST's normalisation with the checkpoint's statistics: (x - mean) / (2 * std)."""
    return (features - config.mean) / (2.0 * config.std)


def model_input(waveform: torch.Tensor, config: FeatureConfig) -> torch.Tensor:
    """Waveform (..., N) at 16 kHz -> normalised model input (..., num_frames, F), padded or cut."""
    return normalize(pad_or_cut(fbank(waveform, config), config.num_frames, config.pad_log_mel), config)


class FbankStreamer:
    """Incremental fbank: push samples in any chunk sizes, get back only the newly completed frames.

    Owned by one thread (the tagger or analysis thread). Frame k covers samples [160 k, 160 k + 400) of
    the stream; the streamer keeps the at most 399 samples not yet consumed by a frame.
    """

    def __init__(self, config: FeatureConfig = FeatureConfig(), device: str | torch.device = "cpu"):
        self.config = config
        self.device = torch.device(device)
        self.fbank = Fbank(config).to(self.device)
        self._pending = torch.zeros(0, device=self.device)
        self.num_frames = 0   # frames emitted so far
        self.num_samples = 0  # samples pushed so far

    def push(self, samples: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Append mono float samples (N,); returns the new frames (n, F) (possibly n = 0)."""
        chunk = torch.as_tensor(samples, dtype=torch.float32).to(self.device).reshape(-1)
        self.num_samples += chunk.numel()
        pending = torch.cat([self._pending, chunk]) if self._pending.numel() else chunk
        n = num_frames_for(pending.numel(), self.config)
        if n == 0:
            self._pending = pending
            return torch.zeros(0, self.config.num_mel_bins, device=self.device)
        shift, length = self.config.frame_shift_samples, self.config.frame_length_samples
        frames = self.fbank(pending[: shift * (n - 1) + length])
        self._pending = pending[shift * n:].clone()
        self.num_frames += n
        return frames
