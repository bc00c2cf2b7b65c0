"""Runs a loaded model on batches of windows, on the GPU when there is one.

A Scorer is owned by one thread (the file-analysis thread or the live tagger thread): it holds the model
on its device and turns raw log-mel windows into sigmoid scores. bf16 autocast on CUDA, fp32 on CPU.
"""
from __future__ import annotations

import numpy as np
import torch

from core.errors import ConfigError
from core.features import normalize, pad_or_cut
from core.modelfile import LoadedModel


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


class Scorer:
    """Model + device + precision. __call__(windows (B, T', F) raw log-mel) -> (B, L) float32 scores.

    Windows shorter than the model's T frames are padded in the log-mel domain as the model was trained
    (FeatureConfig.padding: AST's zeros, or digital silence), then normalised with the model's statistics.
    """

    def __init__(self, loaded: LoadedModel, device: str | torch.device = "auto"):
        self.loaded = loaded
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.model = loaded.model.to(self.device).eval()
        self.features = loaded.features
        self.autocast = self.device.type == "cuda"

    @property
    def num_frames(self) -> int:
        return self.features.num_frames

    @torch.inference_mode()
    def __call__(self, windows: torch.Tensor) -> np.ndarray:
        x = normalize(pad_or_cut(windows.to(self.device), self.num_frames, self.features.pad_log_mel),
                      self.features)  # (B, T, F)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
            logits = self.model(x)
        return torch.sigmoid(logits.float()).cpu().numpy()
