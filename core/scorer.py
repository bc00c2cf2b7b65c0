"""Runs a loaded model on batches of windows, with the engine, precision and threads of core.backends.

A Scorer is owned by one thread (the file-analysis thread, the live tagger thread, a Ray actor): it is built
there (a first OpenVINO conversion of a large model takes seconds, then it comes from the disk cache) and
turns raw log-mel windows into sigmoid scores there. Features stay torch on the Scorer's device.
"""
from __future__ import annotations

import numpy as np
import torch

from core.backends import InferenceOptions, build_runner, describe, resolve_device
from core.features import normalize, pad_or_cut
from core.modelfile import LoadedModel

__all__ = ["Scorer", "InferenceOptions", "resolve_device"]


class Scorer:
    """Model + engine. __call__(windows (B, T', F) raw log-mel) -> (B, L) float32 scores.

    `options` is an InferenceOptions (what --device/--backend/--precision/--threads ask for), or a bare
    device, which means the model exactly as it is: torch in fp32 on that device. `live`: this scorer
    serves a live tagger (core.backends' thread policy). `note` says, in one line, where the choice
    differs from what was asked (a backend that is not installed, bf16 out of tolerance), else None.

    Windows shorter than the model's T frames are padded in the log-mel domain as the model was trained
    (FeatureConfig.padding: AST's zeros, or digital silence), then normalised with the model's statistics.
    """

    def __init__(self, loaded: LoadedModel, options: InferenceOptions | str | torch.device = "auto",
                 live: bool = False):
        if not isinstance(options, InferenceOptions):
            options = InferenceOptions.exact(options)
        self.loaded = loaded
        self.features = loaded.features
        self.runner, self.note = build_runner(loaded, options, live)
        self.device = self.runner.device
        self.options = InferenceOptions(str(self.device), self.runner.backend, self.runner.precision,
                                        options.threads)   # resolved: another Scorer of it skips the probe

    @property
    def num_frames(self) -> int:
        return self.features.num_frames

    def describe(self) -> str:
        """'openvino bf16, 1 thread', 'torch fp32, 2 threads', 'torch bf16, cuda:0'."""
        return describe(self.runner)

    @torch.inference_mode()
    def __call__(self, windows: torch.Tensor) -> np.ndarray:
        x = normalize(pad_or_cut(windows.to(self.device), self.num_frames, self.features.pad_log_mel),
                      self.features)  # (B, T, F) float32
        return torch.sigmoid(self.runner(x)).numpy()
