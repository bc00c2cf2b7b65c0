"""The OpenVINO backend: the transformer converted once to OpenVINO IR, cached on disk, compiled per Scorer.

Used by core.backends on the thread that builds a Scorer (compilation; the conversion itself runs on one
converter thread, see _CONVERTER) and then on the thread that owns the Scorer (inference). Why OpenVINO and not ONNX Runtime: docs/speed.md.

Cache: one folder per model under core.engine_cache.cache_root(), named by the SHA-256 of the weights (labels
and features included: core.manifest.model_hash), the OpenVINO version, the input shape and CONVERSION_VERSION:
`model.xml` + `model.bin` (fp32 IR, batch dimension dynamic) + `meta.json`. The IR holds no precision: the
precision (and the thread count) are compile options, so fp32 and bf16 share one entry. A folder is built
under a temp name and renamed into place, so a reader sees a whole entry or none; an entry that does not
read back (cut short, damaged, of another shape) is rebuilt, not fatal.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import secrets
import shutil
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from core.engine_cache import backend_version, cache_root, import_openvino, weights_hash

__all__ = ["OpenVinoRunner", "converted_model", "entry_dir", "CONVERSION_VERSION"]

log = logging.getLogger(__name__)

# Every conversion runs on this one thread: torch.export on a second thread after a first had exported (two
# model loaders of the window, one after the other) crashed the process (torch 2.11), and one at a time also
# lets a second caller read what the first converted.
_CONVERTER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="openvino-convert")
CONVERSION_VERSION = "1"   # bump when what is converted changes (core.model's graph, the wrapper below)
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}


class _Logits(torch.nn.Module):
    """AST's forward without its Python-side input check (the IR's input shape holds it): (B, T, F) -> (B, L)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.mlp_head(self.model.forward_features(x))


def entry_dir(loaded) -> Path:
    """The cache folder of this model's IR for the installed OpenVINO."""
    cfg = loaded.model.config
    version, shape = backend_version("openvino"), f"{cfg.num_frames}x{cfg.num_mel_bins}"
    return cache_root() / f"{weights_hash(loaded)}-openvino-{version}-{shape}-v{CONVERSION_VERSION}"


def _read(ov, core, entry: Path, num_classes: int):
    """The cached ov.Model, or an exception that says why the entry is unusable."""
    meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
    size = (entry / "model.bin").stat().st_size
    if size != meta["bin_bytes"]:
        raise ValueError(f"model.bin has {size} bytes, meta.json says {meta['bin_bytes']}")
    model = core.read_model(str(entry / "model.xml"))
    outputs = model.outputs[0].get_partial_shape()
    if outputs[-1] != ov.Dimension(num_classes):
        raise ValueError(f"the IR has {outputs[-1]} outputs, the model {num_classes}")
    return model


def _export(ov, loaded):
    """The fp32 model as an ov.Model: torch.export (jit.trace is deprecated) with the batch dimension free."""
    cfg = loaded.model.config
    T, F = cfg.num_frames, cfg.num_mel_bins
    on_cpu = next(loaded.model.parameters()).device.type == "cpu"   # a GPU scorer's model stays there
    source = loaded.model if on_cpu else copy.deepcopy(loaded.model).cpu()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # torch.export's pytree warns about its own internals
        program = torch.export.export(_Logits(source).eval(), (torch.zeros(2, T, F),),
                                      dynamic_shapes=({0: torch.export.Dim("batch")},))
        return ov.convert_model(program, input=[ov.PartialShape([-1, T, F])])


def _save(ov, model, loaded, entry: Path) -> None:
    """Write `model` in a temp folder beside `entry`, then rename it into place (OSError when it cannot)."""
    cfg = loaded.model.config
    temp = entry.with_name(f".{entry.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        temp.mkdir(parents=True)
        ov.save_model(model, str(temp / "model.xml"), compress_to_fp16=False)
        meta = {"bin_bytes": (temp / "model.bin").stat().st_size, "openvino": backend_version("openvino"),
                "num_frames": cfg.num_frames, "num_mel_bins": cfg.num_mel_bins, "num_classes": cfg.num_classes,
                "model": loaded.name}
        (temp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        if entry.exists():   # a damaged entry: moved aside first, so the rename below is one step
            doomed = entry.with_name(f".{entry.name}.{secrets.token_hex(4)}.old")
            os.rename(entry, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        os.rename(temp, entry)
    except OSError:
        if not (entry / "meta.json").exists():   # not a race that another process won
            raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def converted_model(loaded):
    """The model as an ov.Model: read from the cache, or converted (AST-base: about 4 s) and cached."""
    return _CONVERTER.submit(_read_or_convert, loaded).result()


def _read_or_convert(loaded):
    ov = import_openvino()
    core = ov.Core()
    entry = entry_dir(loaded)
    if entry.exists():
        try:
            return _read(ov, core, entry, loaded.model.config.num_classes)
        except Exception as e:  # noqa: BLE001 - OpenVINO raises RuntimeError; any unreadable entry is rebuilt
            log.warning("rebuilding the converted model in %s (%s)", entry, e)
    model = _export(ov, loaded)
    try:
        _save(ov, model, loaded, entry)
    except OSError as e:   # a read-only or full cache: this run uses the model in memory
        log.warning("cannot cache the converted model in %s (%s); it is converted again at the next start",
                    entry.parent, e)
        return model
    return _read(ov, core, entry, loaded.model.config.num_classes)


class OpenVinoRunner:
    """The converted model compiled for the CPU in `precision` on `threads` threads, one infer request
    (the Scorer's thread is its only caller). Pinning is off: two scorers of one process (live + files)
    could otherwise be pinned to the same cores."""

    backend = "openvino"
    device = torch.device("cpu")

    def __init__(self, loaded, precision: str, threads: int):
        ov = import_openvino()
        self.precision, self.threads = precision, threads
        config = {"INFERENCE_PRECISION_HINT": _OV_PRECISION[precision], "INFERENCE_NUM_THREADS": threads,
                  "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False}
        self.compiled = ov.Core().compile_model(converted_model(loaded), "CPU", config)
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.request.infer({0: x.contiguous().numpy()})[0]   # (B, L), owned by the request: copy it
        return torch.from_numpy(out.copy())
