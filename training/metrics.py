"""Evaluation metrics over a held-out set: accuracy, average precision, confusion matrix (numpy only).

Pure functions; training thread.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """AP of one class: mean precision at the rank of each positive (NaN when there is none)."""
    if positives.sum() == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = positives[order].astype(np.float64)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def evaluate_scores(scores: np.ndarray, targets: np.ndarray, sources: list[str], labels: list[str],
                    threshold: float = 0.5) -> dict:
    """scores (N, L) in [0, 1], targets (N, L) multi-hot -> metrics dict.

    accuracy: argmax == label over clips with exactly one label (per source too); mAP over classes with
    a positive; negatives_tagged: fraction of no-label clips with any score >= threshold; confusion over
    single-label clips (rows true, columns predicted).
    """
    single = targets.sum(1) == 1
    truth = targets.argmax(1)
    pred = scores.argmax(1)
    ap = [average_precision(scores[:, k], targets[:, k] > 0.5) for k in range(len(labels))]
    valid_ap = [a for a in ap if not np.isnan(a)]
    negative = targets.sum(1) == 0
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(confusion, (truth[single], pred[single]), 1)
    by_source = {}
    for name in sorted(set(sources)):
        mask = single & (np.array(sources) == name)
        if mask.any():
            by_source[name] = float((pred[mask] == truth[mask]).mean())
    hit = scores >= threshold
    return {
        "accuracy": float((pred[single] == truth[single]).mean()) if single.any() else float("nan"),
        "accuracy_by_source": by_source,
        "mAP": float(np.mean(valid_ap)) if valid_ap else float("nan"),
        "per_class_ap": {labels[k]: ap[k] for k in range(len(labels))},
        "recall_at_threshold": float((hit & (targets > 0.5)).sum() / max(1, (targets > 0.5).sum())),
        "negatives_tagged": float(hit[negative].any(1).mean()) if negative.any() else float("nan"),
        "num_clips": int(len(scores)),
        "confusion": confusion,
    }


def write_eval_files(metrics: dict, labels: list[str], out_dir: Path, prefix: str = "eval") -> None:
    """<prefix>_metrics.json, <prefix>_per_class_ap.csv, <prefix>_confusion.csv in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {k: v for k, v in metrics.items() if k != "confusion"}
    (out_dir / f"{prefix}_metrics.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    with open(out_dir / f"{prefix}_per_class_ap.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "ap"])
        for name, ap in metrics["per_class_ap"].items():
            w.writerow([name, f"{ap:.4f}"])
    with open(out_dir / f"{prefix}_confusion.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true\\predicted"] + labels)
        for name, row in zip(labels, metrics["confusion"]):
            w.writerow([name] + [int(v) for v in row])
