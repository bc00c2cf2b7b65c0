"""The training loop: one config in, a trained AST, its logs, checkpoints and a model file out.

Runs on the main thread of `python -m training`. Reads top to bottom: data -> model -> optimiser ->
epochs (augment on the device, forward, loss, clip, step) -> evaluate -> checkpoint -> export.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import multiprocessing
import os
import pickle
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from core.atomic import atomic_write
from core.config import FeatureConfig, ModelConfig, from_dict
from core.errors import ModelFileError
from core.features import normalize
from core.model import AST
from core.modelfile import load_model
from core.scorer import resolve_device
from training import augment
from training.config import TrainConfig, config_from_json
from training.export import export_model
from training.data import ClipSet, FeatureCache, synthetic_negatives, label_names, load_clips, split_clips
from training.metrics import evaluate_scores, write_eval_files

log = logging.getLogger(__name__)


def build_model(cfg: TrainConfig, labels: list[str]) -> tuple[AST, FeatureConfig]:
    """A fresh AST from the config, or a pretrained one (window adapted, new head for new labels)."""
    if not cfg.init:
        mcfg = ModelConfig(num_classes=len(labels), num_frames=cfg.num_frames, patch_size=cfg.patch_size,
                           frequency_stride=cfg.patch_size, time_stride=cfg.patch_size,
                           embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads)
        return AST(mcfg), FeatureConfig(num_frames=cfg.num_frames, mean=cfg.mean, std=cfg.std, padding=cfg.padding)
    loaded = load_model(cfg.init, num_frames=cfg.num_frames)  # position table cut or interpolated here
    model = loaded.model
    if loaded.labels.names != labels and [l.id for l in loaded.labels] != labels:
        D = model.config.embed_dim
        model.mlp_head[1] = nn.Linear(D, len(labels))  # new head for the new labels (LayerNorm kept)
        nn.init.trunc_normal_(model.mlp_head[1].weight, std=0.02)
        nn.init.zeros_(model.mlp_head[1].bias)
        model.config = dataclasses.replace(model.config, num_classes=len(labels))
    return model, dataclasses.replace(loaded.features, padding=cfg.padding)


def lr_at(step: int, warmup_steps: int, progress: float, cfg: TrainConfig) -> float:
    """Linear warmup to cfg.lr over warmup_steps, then cosine decay to cfg.lr * min_lr_ratio as
    progress (the fraction of the run done, by steps or by the time budget) goes from 0 to 1."""
    if step < warmup_steps:
        return cfg.lr * (step + 1) / warmup_steps
    progress = min(1.0, max(0.0, progress))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def predict(model: AST, data: ClipSet, features: FeatureConfig, loss: str, device: torch.device,
            batch_size: int = 64) -> np.ndarray:
    """Scores (N, L) for every clip: its first window, as the Analyzer scores a clip (cut or padded)."""
    model.eval()
    out = []
    for i in range(0, len(data), batch_size):
        x, _, _ = data.batch(range(i, min(i + batch_size, len(data))), features.num_frames, False,
                             pad_value=features.pad_log_mel)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(normalize(x.to(device), features)).float()      # (B, L)
        out.append((torch.sigmoid(logits) if loss == "bce" else logits.softmax(-1)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_classes), np.float32)


def evaluate(model, data, features, cfg, device, labels) -> dict:
    scores = predict(model, data, features, cfg.loss, device)
    return evaluate_scores(scores, data.targets.cpu().numpy(), [c.source for c in data.clips], labels)


def train(cfg: TrainConfig) -> dict:
    """Train (or resume) one run; returns {'metrics', 'history', 'out_dir', 'model_file', ...}."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)

    # ---- data: manifests -> cached features -> train / held-out sets
    clips = load_clips(cfg.data, cfg.num_folds, cfg.seed)
    labels = label_names(clips)
    if cfg.loss == "ce" and any(not c.labels or len(c.labels) > 1 for c in clips):
        raise ValueError("loss=ce needs exactly one label per clip; use loss=bce for multi-label data or "
                         "for negatives (clips with no label)")
    train_clips, eval_clips = split_clips(clips, cfg.eval_fold)
    if not train_clips:
        raise ValueError(f"no training clips: eval_fold={cfg.eval_fold} holds out everything in {cfg.data}")
    model, features = build_model(cfg, labels)
    cache = FeatureCache(cfg.cache_dir or out.parent / "cache", features)
    workers = min(8, os.cpu_count() or 1)  # decoding threads, for clips not yet cached
    train_set = ClipSet.build(train_clips, labels, cache, cfg.progress, workers).to(device)  # stays there
    eval_set = ClipSet.build(eval_clips, labels, cache, cfg.progress, workers).to(device) if eval_clips else None
    bank_clips = _bank_clips(train_clips)
    bank = ClipSet.build(bank_clips, [], cache).batch(range(len(bank_clips)), features.num_frames, False,
                                                      pad_value=augment.LOG_FLOOR)[0].to(device)  # (M, T, F)
    log.info("%d labels, %d training clips, %d held out, device %s", len(labels), len(train_set),
             len(eval_set or []), device)

    # ---- model and optimiser
    model.to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "token" not in n and "pos_embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "token" not in n and "pos_embed" not in n)]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    Opt = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    optimizer = Opt(groups, lr=cfg.lr, betas=tuple(cfg.betas))
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = max(1, int(cfg.warmup_epochs * steps_per_epoch))
    gen = torch.Generator(device=device).manual_seed(cfg.seed)   # augmentation randomness, on the device
    cpu_gen = torch.Generator().manual_seed(cfg.seed + 1)         # order and crop positions
    start_epoch, step, history, trained_s = 1, 0, [], 0.0
    budget_s = cfg.time_budget_min * 60.0  # > 0: the schedule runs on training time, not on epochs

    ckpt_path = out / "ckpt.pt"
    if cfg.resume and ckpt_path.exists():
        ckpt = load_checkpoint_dict(ckpt_path, device)
        if ckpt["labels"] != labels:
            raise ValueError(f"{ckpt_path} was trained on other labels; use another out_dir or resume=false")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch, step, history = ckpt["epoch"] + 1, ckpt["step"], json.loads(ckpt["history"])
        trained_s = float(ckpt["trained_s"])
        gen.set_state(ckpt["gen"].to(gen.get_state().device))
        cpu_gen.set_state(ckpt["cpu_gen"])
        log.info("resumed from %s at epoch %d (step %d)", ckpt_path, start_epoch, step)

    def save_checkpoint(epoch: int) -> None:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                 "step": step, "trained_s": trained_s, "history": json.dumps(history), "labels": labels,
                 "config": json.dumps(cfg.to_dict()), "model_config": json.dumps(dataclasses.asdict(model.config)),
                 "feature_config": json.dumps(dataclasses.asdict(features)),
                 "gen": gen.get_state(), "cpu_gen": cpu_gen.get_state()}
        with atomic_write(ckpt_path, "wb") as f:
            torch.save(state, f)

    # ---- epochs
    metrics: dict = history[-1]["eval"] if history else {}
    for epoch in range(start_epoch, cfg.epochs + 1):
        if budget_s and trained_s >= budget_s:
            break  # resumed after the time budget was spent: only export
        model.train()
        t0, seen, loss_sum = time.time(), 0, torch.zeros((), device=device)  # no per-step host sync
        order = torch.randperm(len(train_set), generator=cpu_gen)
        bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"epoch {epoch}/{cfg.epochs}",
                   disable=not cfg.progress, leave=False)
        for i in bar:
            x, valid, y = train_set.batch(order[i:i + cfg.batch_size], features.num_frames, True, cpu_gen,
                                          features.pad_log_mel)
            # x (B, T, F), valid (B, T), y (B, L): already on the device, as is all augmentation below
            x = augment.random_gain(x, valid, cfg.gain_db, gen)
            x = augment.spectral_shape(x, valid, cfg.tilt_prob, features, gen)
            x, valid = augment.add_background(x, valid, bank, cfg.noise_prob, cfg.noise_snr_db, gen)
            x, valid = augment.time_shift(x, valid, cfg.time_shift, gen)
            if cfg.mixup > 0 and len(x) > 1 and float(torch.rand(1, generator=cpu_gen)) < cfg.mixup:
                lam = augment.beta(cfg.mixup_alpha, cpu_gen)  # drawn on the host: no device sync
                x, valid, y = augment.mixup(x, valid, y, cfg.mixup_alpha, gen, lam)
            x = augment.spec_augment(x, cfg.freq_mask, cfg.time_mask, cfg.num_masks, gen)
            x = normalize(x, features)
            if budget_s:
                progress = (trained_s + time.time() - t0) / budget_s
            else:
                progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
            lr = lr_at(step, warmup_steps, progress, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(x).float()                                     # (B, L)
            if cfg.loss == "bce":
                loss = F.binary_cross_entropy_with_logits(logits, y)
            else:
                loss = torch.sum(-y * F.log_softmax(logits, -1), -1).mean()   # soft targets (mixup)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            seen += len(x)
            loss_sum += loss.detach() * len(x)
            if cfg.progress and step % 10 == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}", lr=f"{lr:.2e}")
            if (cfg.max_steps and step >= cfg.max_steps) or (budget_s and trained_s + time.time() - t0 >= budget_s):
                break
        seconds = time.time() - t0
        trained_s += seconds
        last = (epoch == cfg.epochs or (cfg.max_steps and step >= cfg.max_steps)
                or (budget_s and trained_s >= budget_s))
        row = {"epoch": epoch, "step": step, "lr": lr, "trained_s": round(trained_s, 1), "train_loss": float(loss_sum) / max(1, seen),
               "seconds": round(seconds, 1), "clips_per_s": round(seen / max(seconds, 1e-9), 1)}
        if eval_set is not None and (epoch % cfg.eval_every == 0 or last):
            metrics = evaluate(model, eval_set, features, cfg, device, labels)
            write_eval_files(metrics, labels, out)
            metrics = {k: v for k, v in metrics.items() if k != "confusion"}
        row["eval"] = metrics
        history.append(row)
        _append_log(out / "log.csv", row)
        if epoch % cfg.eval_every == 0 or last:
            save_checkpoint(epoch)  # with the evaluations: a GPU epoch can take less time than a save
        log.info("epoch %d: loss %.4f, %.1f clips/s, eval accuracy %s, mAP %s", epoch, row["train_loss"],
                 row["clips_per_s"], _fmt(metrics.get("accuracy")), _fmt(metrics.get("mAP")))
        if last:
            break

    model_file = export_model(model, features, labels, out / "model.safetensors", cfg, metrics, history)
    return {"metrics": metrics, "history": history, "out_dir": str(out), "model_file": str(model_file),
            "labels": labels, "model": model, "features": features}


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _append_log(path: Path, row: dict) -> None:
    """One CSV row per epoch: training numbers plus the main evaluation numbers."""
    ev = row.get("eval") or {}
    flat = {k: v for k, v in row.items() if k != "eval"}
    flat.update({"eval_accuracy": ev.get("accuracy"), "eval_mAP": ev.get("mAP"),
                 "eval_negatives_tagged": ev.get("negatives_tagged")})
    for source, acc in (ev.get("accuracy_by_source") or {}).items():
        flat[f"eval_accuracy_{source}"] = acc
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(flat), extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(flat)


def _bank_clips(train_clips: list | None = None, recorded: int = 200) -> list:
    """The background bank that add_background mixes under clips (never a target): 40 synthetic noises,
    plus up to `recorded` training clips with no label that last at least 3 s (room tone, recorded noise)."""
    bank = [c for c in synthetic_negatives("40", {}) if c.split == "train"]
    real = [c for c in train_clips or [] if not c.labels and not c.path.startswith("synth:")]
    real = [c for c in real if _seconds(c.path) >= 3.0]
    return bank + real[:recorded]


def _seconds(path: str) -> float:
    try:
        return sf.info(path).duration
    except (RuntimeError, OSError):
        return 0.0


def warm_cache(cfg: TrainConfig, workers: int | None = None) -> int:
    """Compute the features of every clip of cfg.data (all folds) and the background bank; returns the
    number of clips. Parallel runs that share the cache then only read it."""
    clips = load_clips(cfg.data, cfg.num_folds, cfg.seed)
    clips += _bank_clips(clips)
    _, features = build_model(cfg, label_names(clips) or ["x"])
    cache = FeatureCache(cfg.cache_dir or Path(cfg.out_dir) / "cache", features)
    cache.load(clips, cfg.progress, workers or os.cpu_count() or 1)
    log.info("feature cache %s: %d clips (%d computed now)", cache.dir, len(clips), cache.computed)
    return len(clips)


def _train_fold(cfg: TrainConfig) -> dict:
    """One fold in a child process (cross_validate with jobs > 1): train, return its metrics."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s fold{cfg.eval_fold} %(name)s: %(message)s")
    return train(cfg)["metrics"]


def cross_validate(cfg: TrainConfig, folds: list[int], jobs: int = 1) -> list[dict]:
    """Train once per held-out fold (out_dir/fold<k>); write cv_summary.csv and print a table.

    jobs > 1 trains that many folds at once in separate processes (one small model leaves most of a
    GPU idle); the feature cache is filled first, so they only read it."""
    runs = [dataclasses.replace(cfg, eval_fold=k, out_dir=str(Path(cfg.out_dir) / f"fold{k}"),
                                cache_dir=cfg.cache_dir or str(Path(cfg.out_dir) / "cache")) for k in folds]
    if jobs > 1:
        warm_cache(runs[0])
        with multiprocessing.get_context("spawn").Pool(min(jobs, len(runs))) as pool:
            results = pool.map(_train_fold, runs, chunksize=1)
    else:
        results = [train(run)["metrics"] for run in runs]
    rows = []
    for k, m in zip(folds, results):
        rows.append({"fold": k, "accuracy": m.get("accuracy"), "mAP": m.get("mAP"),
                     **{f"accuracy_{s}": a for s, a in (m.get("accuracy_by_source") or {}).items()}})
    keys = sorted({k for r in rows for k in r if k != "fold"})
    mean = {"fold": "mean", **{k: float(np.nanmean([r.get(k, np.nan) for r in rows])) for k in keys}}
    std = {"fold": "std", **{k: float(np.nanstd([r.get(k, np.nan) for r in rows])) for k in keys}}
    with open(Path(cfg.out_dir) / "cv_summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["fold"] + keys)
        w.writeheader()
        w.writerows(rows + [mean, std])
    return rows + [mean, std]


def load_checkpoint_dict(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint at `path` as save_checkpoint wrote it: tensors, numbers and JSON text only.

    Anything else pickled inside (objects of some class) is refused, never unpickled: unpickling can run
    any code. The error says how to get a checkpoint this version can read.
    """
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise ModelFileError(
            f"{path} holds pickled Python objects besides tensors, numbers and text; they are refused for safety "
            "(loading them could run any code). Re-create the checkpoint with this version: run "
            "`python -m training train` again into a new out_dir (or with resume=false), which saves only "
            "weights, numbers and JSON") from None
    if not isinstance(ckpt, dict) or not {"model", "model_config", "feature_config", "labels", "config",
                                          "history"} <= set(ckpt):
        found = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ModelFileError(f"{path} is not a checkpoint of `python -m training train` (expected a dict with "
                             f"model, model_config, feature_config, labels, config, history; found {found}); "
                             "pass the ckpt.pt of a training run's out_dir")
    return ckpt


def load_checkpoint(path: str | Path) -> tuple[AST, FeatureConfig, list[str], TrainConfig, dict]:
    """Model, features, labels, config and the last metrics of a checkpoint (for export)."""
    ckpt = load_checkpoint_dict(path)
    model = AST(from_dict(ModelConfig, json.loads(ckpt["model_config"])))
    model.load_state_dict(ckpt["model"])
    features = from_dict(FeatureConfig, json.loads(ckpt["feature_config"]))
    history = json.loads(ckpt["history"])
    return model.eval(), features, ckpt["labels"], config_from_json(ckpt["config"]), (history[-1]["eval"] if history else {})
