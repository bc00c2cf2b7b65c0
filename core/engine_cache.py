"""What the CPU engines share with their caches: which optional engine is installed, its version, the per-user
folder converted models and precision verdicts are cached in, and the weights hash that names their entries.

A leaf below core.backends (the choice of engine) and core.ov_backend (the OpenVINO engine), so that neither
imports the other to reach these. Any thread.
"""
from __future__ import annotations

import importlib
import logging
import os
import weakref
from pathlib import Path

import torch

from core.manifest import model_hash

__all__ = ["import_openvino", "backend_version", "cache_root", "weights_hash"]

log = logging.getLogger(__name__)


def import_openvino():
    """The openvino module, or None when it is not installed (or does not load)."""
    try:
        return importlib.import_module("openvino")
    except ImportError as e:
        log.debug("openvino is not available: %s", e)
        return None


def backend_version(backend: str) -> str:
    """The installed version of a backend, as cache keys name it ('2026.4.1', '2.11.0')."""
    if backend == "openvino":
        return import_openvino().__version__.split("-")[0]
    return torch.__version__.split("+")[0]


_HASHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def weights_hash(loaded) -> str:
    """core.manifest.model_hash, computed once per model object (AST-base: SHA-256 over 350 MB of weights)."""
    if loaded.model not in _HASHES:
        _HASHES[loaded.model] = model_hash(loaded)
    return _HASHES[loaded.model]


def cache_root() -> Path:
    """Converted models and precision verdicts: the per-user cache folder (platformdirs), or $AST_TAGGER_CACHE."""
    if override := os.environ.get("AST_TAGGER_CACHE"):
        return Path(override)
    import platformdirs
    return Path(platformdirs.user_cache_dir("ast-tagger")) / "backends"
