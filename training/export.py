"""Export a trained AST to our model file, and prove the file gives the same logits.

Runs on the training thread (end of a run) or from `python -m training export`.
"""
from __future__ import annotations

import copy
import datetime
import logging
from pathlib import Path

import torch

from core.config import FeatureConfig
from core.export import code_revision  # the one revision form: exports record the same
from core.model import AST
from core.modelfile import load_model, save_model_file
from training.config import TrainConfig
from training.labels import label_set

log = logging.getLogger(__name__)


def check_same_logits(model: AST, path: Path, atol: float = 1e-5, num_windows: int = 3) -> float:
    """Reload `path` the way the app does and compare logits with `model` on random windows.

    Returns the largest absolute difference; raises RuntimeError when it exceeds atol.
    """
    loaded = load_model(path)
    gen = torch.Generator().manual_seed(0)
    cfg = model.config
    x = torch.randn(num_windows, cfg.num_frames, cfg.num_mel_bins, generator=gen)  # (B, T, F)
    reference = copy.deepcopy(model).to("cpu", torch.float32).eval()  # the same weights, on the app's device:
    with torch.no_grad():                                              # GPU kernels (TF32 convolutions) would
        want = reference(x).float()                                    # differ by more than atol
        got = loaded.model(x).float()
    diff = float((want - got).abs().max())
    if diff > atol:
        raise RuntimeError(f"exported {path} gives logits {diff:.3g} away from the trained model (> {atol})")
    return diff


def export_model(model: AST, features: FeatureConfig, labels: list[str], path: str | Path,
                 cfg: TrainConfig, metrics: dict | None = None, history: list | None = None,
                 extra: dict | None = None) -> Path:
    """Write `path` (labels, feature and model config, data, recipe, metrics, code revision) and check it."""
    provenance = {
        "training_data": list(cfg.data),
        "eval_fold": cfg.eval_fold,
        "recipe": cfg.to_dict(),
        "metrics": metrics or {},
        "epochs_run": len(history or []),
        "code_revision": code_revision(),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "init": cfg.init or "from scratch (random initialisation, no pretraining)",
        **(extra or {}),
    }
    path = save_model_file(path, model, features, label_set(labels), provenance)
    diff = check_same_logits(model, path)
    log.info("exported %s (%.1f MB); reload logits differ by at most %.2g", path, path.stat().st_size / 1e6, diff)
    return path
