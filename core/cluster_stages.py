"""The worker side of `analyze --cluster` (core.cluster): decode + fbank tasks and the scoring actors.

Runs in Ray worker processes: `decode_chunks` in a CPU task per block of files, `WindowScorer` in an actor that
holds the model. They share nothing with the driver but the rows described in core.cluster's docstring; torch and
Ray are imported inside the functions, so the driver imports this module cheaply.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from core.errors import TaggerError

__all__ = ["decode_chunks", "WindowScorer", "PipelineSpec", "stream_batches", "CRASH_ONCE_ENV"]

CRASH_ONCE_ENV = "AST_TAGGER_CRASH_ONCE"   # tests: a marker file; the first actor call that finds it removes it, dies


# ---- stage 2: decode + fbank (a Ray task per block of files) --------------------------------------

def _row(file: int, *, first_frame: int = 0, k0: int = 0, k1: int = 0, frames: np.ndarray | None = None,
         final: bool = False, num_windows: int = -1, meta: str = "", error: str = "") -> dict:
    frames = np.zeros((0, 0), np.float32) if frames is None else np.ascontiguousarray(frames, np.float32)
    return {"file": file, "first_frame": first_frame, "k0": k0, "k1": k1, "frames": frames.tobytes(),
            "num_frame_rows": frames.shape[0], "final": final, "num_windows": num_windows, "meta": meta,
            "error": error}


def _as_batch(row: dict) -> dict[str, np.ndarray]:
    return {k: np.array([v], dtype=object if isinstance(v, (bytes, str)) else None) for k, v in row.items()}


def decode_chunks(batch: dict[str, np.ndarray], features, hop_s: float, chunk_windows: int,
                  block_s: float) -> Iterator[dict[str, np.ndarray]]:
    """Ray Data UDF: rows (file, path bytes) -> rows of frames, `chunk_windows` windows each (see module doc)."""
    from core.inputs import one_line
    for index, raw in zip(batch["file"].tolist(), batch["path"].tolist()):
        path = os.fsdecode(bytes(raw))
        try:
            for row in _file_chunks(int(index), path, features, hop_s, chunk_windows, block_s):
                yield _as_batch(row)
        except (TaggerError, OSError) as e:
            yield _as_batch(_row(int(index), final=True, error=one_line(str(e))))
        except Exception as e:  # noqa: BLE001 - a bug in one file must not stop the others
            yield _as_batch(_row(int(index), final=True, error=one_line(
                f"unexpected {type(e).__name__}: {e} (a bug: report it)")))


def _file_chunks(index: int, path: str, features, hop_s: float, chunk_windows: int, block_s: float
                 ) -> Iterator[dict]:
    """The decode and window loop of Analyzer.analyze, cut into rows instead of model calls."""
    import torch

    from core.analyze import _report_rows
    from core.audio_io import iter_blocks, probe
    from core.features import FbankStreamer
    from core.windows import WindowPlan

    info = probe(path)
    plan, T = WindowPlan.for_model(features, hop_s), features.num_frames
    rate = features.sample_rate_hz
    streamer = FbankStreamer(features)
    buffer = torch.zeros(0, features.num_mel_bins)   # frames [buffer_start, ...)
    buffer_start, next_window = 0, 0

    def chunk(ks: range) -> dict:
        nonlocal buffer, buffer_start
        lo = min(max(plan.start(ks[0]) - buffer_start, 0), buffer.shape[0])
        hi = min(plan.start(ks[-1]) + T - buffer_start, buffer.shape[0])
        row = _row(index, first_frame=buffer_start + lo, k0=ks[0], k1=ks[-1] + 1, frames=buffer[lo:hi].numpy())
        drop = min(plan.start(ks[-1] + 1) - buffer_start, buffer.shape[0])   # as Analyzer: never more than held
        if drop > 0:
            buffer, buffer_start = buffer[drop:], buffer_start + drop
        return row

    blocks = iter_blocks(path, rate, block_s)
    while True:
        try:
            block = next(blocks)
        except StopIteration as end:
            report = end.value
            break
        frames = streamer.push(block)
        buffer = torch.cat([buffer, frames]) if buffer.numel() else frames
        available = buffer_start + buffer.shape[0]
        while plan.start(next_window + chunk_windows - 1) + T <= available:   # a whole row of complete windows
            yield chunk(range(next_window, next_window + chunk_windows))
            next_window += chunk_windows
    num_windows = plan.num_windows(streamer.num_frames)
    rest = list(range(next_window, num_windows))
    for i in range(0, len(rest), chunk_windows):
        yield chunk(range(rest[i], rest[min(i + chunk_windows, len(rest)) - 1] + 1))
    meta = {"duration_s": streamer.num_samples / rate, "source_sample_rate_hz": info.sample_rate_hz,
            "source_channels": info.num_channels, **_report_rows(report)}
    yield _row(index, k0=num_windows, k1=num_windows, final=True, num_windows=num_windows, meta=json.dumps(meta))


# ---- stage 3: scoring (an actor pool; the model once per actor) -----------------------------------

class WindowScorer:
    """Ray Data callable class: rows of frames -> rows of (k1 - k0, L) float32 scores (bytes)."""

    def __init__(self, model_ref: list, hop_s: float, batch_size: int | None, inference,
                 crash_marker: str | None = None):
        import ray

        from core.scorer import Scorer
        from core.windows import WindowPlan
        loaded = ray.get(model_ref[0])        # a list, so that Ray hands over the reference, not a copy per call
        self.scorer = Scorer(loaded, inference)   # core.config.InferenceOptions of the command line
        self.features = loaded.features
        self.plan = WindowPlan.for_model(self.features, hop_s)
        self.batch_size = batch_size or (64 if self.scorer.device.type == "cuda" else 8)
        self.crash_marker = crash_marker

    def _maybe_crash(self) -> None:
        if self.crash_marker:
            try:
                os.unlink(self.crash_marker)
            except FileNotFoundError:
                return
            os._exit(17)   # a worker dying mid-run (tests): Ray restarts the actor and retries the call

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch
        self._maybe_crash()
        F, L = self.features.num_mel_bins, len(self.scorer.loaded.labels)
        pieces, owners = [], []     # (n, T, F) windows of each row, the row they belong to
        for i in range(len(batch["file"])):
            k0, k1 = int(batch["k0"][i]), int(batch["k1"][i])
            if batch["error"][i] or k1 <= k0:
                continue
            frames = torch.from_numpy(np.frombuffer(batch["frames"][i], np.float32).reshape(-1, F).copy())
            pieces.append(self.plan.batch(frames, int(batch["first_frame"][i]), list(range(k0, k1)),
                                          self.features.pad_log_mel))
            owners += [i] * (k1 - k0)
        # model calls of batch_size windows across rows (and files); pieces are views of the rows' frames, so
        # only one batch of windows is ever copied
        flat = [(piece, j) for piece in pieces for j in range(piece.shape[0])]
        scores = np.zeros((0, L), np.float32) if not flat else np.concatenate([
            self.scorer(torch.stack([piece[j] for piece, j in flat[b:b + self.batch_size]]))   # (B, T, F)
            for b in range(0, len(flat), self.batch_size)])                                    # (W, L)
        owners_a = np.asarray(owners, dtype=np.int64)
        out = {k: batch[k] for k in ("file", "k0", "k1", "final", "num_windows", "meta", "error")}
        out["scores"] = np.array([scores[owners_a == i].astype(np.float32).tobytes()
                                  for i in range(len(batch["file"]))], dtype=object)
        out["device"] = np.array([self.scorer.device.type] * len(batch["file"]), dtype=object)
        out["inference"] = np.array([self.scorer.describe()] * len(batch["file"]), dtype=object)
        return out


# ---- the dataset, and where it is executed ----------------------------------------------------------

@dataclass(frozen=True)
class PipelineSpec:
    """Everything the dataset is built from (picklable: a Ray Client run builds it on the cluster)."""

    items: list            # [{"file": index, "path": bytes}]
    decode_tasks: int      # blocks of files, one decode task each (see core.cluster.decode_blocks)
    features: object       # core.config.FeatureConfig
    hop_s: float
    chunk_windows: int
    block_s: float
    rows_per_call: int
    actors: int            # most scoring actors
    gpus: int              # GPUs in the cluster: GPU actors (one GPU each) when > 0
    actor_memory_bytes: int
    model_ref: list        # [ObjectRef of the LoadedModel]
    batch_size: int | None
    crash_marker: str | None
    inference: object      # core.config.InferenceOptions for the scoring actors


def build_dataset(ray, spec: PipelineSpec):
    """files -> decode_chunks tasks -> WindowScorer actor pool (see core.cluster's docstring)."""
    ray.data.DataContext.get_current().enable_progress_bars = False   # one bar: the driver's
    ds = ray.data.from_items(spec.items, override_num_blocks=spec.decode_tasks)
    # retries are Ray Data's defaults: a task whose worker dies is retried (max_retries 3), an actor that dies is
    # restarted and its calls retried (max_restarts / max_task_retries -1); tests/core/test_cluster.py kills one
    ds = ds.map_batches(decode_chunks, batch_size=None, num_cpus=1,       # one task per block of files
                        fn_kwargs={"features": spec.features, "hop_s": spec.hop_s,
                                   "chunk_windows": spec.chunk_windows, "block_s": spec.block_s})
    return ds.map_batches(WindowScorer, batch_size=spec.rows_per_call,
                          compute=ray.data.ActorPoolStrategy(min_size=1, max_size=spec.actors),
                          num_cpus=1, num_gpus=1 if spec.gpus else 0, memory=spec.actor_memory_bytes,
                          fn_constructor_kwargs={"model_ref": spec.model_ref, "hop_s": spec.hop_s,
                                                 "batch_size": spec.batch_size,
                                                 "inference": spec.inference,
                                                 "crash_marker": spec.crash_marker})


class PipelineDriver:
    """The dataset executed on the cluster, batch by batch, for a driver connected through Ray Client
    (ray://), where Ray Data's executor cannot run: the client pulls the output batches one call at a time."""

    def __init__(self, spec: PipelineSpec):
        import ray
        self.batches = iter(build_dataset(ray, spec).iter_batches(batch_size=None, batch_format="numpy"))

    def next(self):
        return next(self.batches, None)


def stream_batches(ray, spec: PipelineSpec) -> Iterator[dict[str, np.ndarray]]:
    """The output batches of the dataset: executed here, or on the cluster when this is a Ray Client driver."""
    if not ray.util.client.ray.is_connected():
        yield from build_dataset(ray, spec).iter_batches(batch_size=None, batch_format="numpy")
        return
    driver = ray.remote(num_cpus=0)(PipelineDriver).remote(spec)
    while (batch := ray.get(driver.next.remote())) is not None:
        yield batch
