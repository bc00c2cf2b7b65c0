"""The metrics file that ships next to a model (`assets/models/default.metrics.json`).

Gathers what was measured about one model file into one JSON: what it is and what it was trained on
(from the file's own provenance), the k-fold cross-validation of its recipe (a `cv` out_dir), the
app's-eye report of the file itself (`python -m training report`), and the inference / training benches.
Runs on the main thread of `python -m training metrics-file`.
"""
from __future__ import annotations

import csv
import hashlib
import json
import statistics
from pathlib import Path
from typing import Any

from core.atomic import atomic_write
from core.modelfile import load_model

PUBLISHED_FROM_SCRATCH_5FOLD = {"AST 16x16 (SSAST paper)": 0.419, "AST frame-patch variant": 0.537}


def _log(run: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(run / "log.csv", newline=""))) if (run / "log.csv").exists() else []


def cross_validation(cv_dir: Path) -> dict[str, Any]:
    """Per-fold and mean accuracy of a `python -m training cv` out_dir, with each fold's run. The measure
    is ESC-50 accuracy where the held-out folds hold ESC-50 clips, else accuracy over all held-out clips."""
    rows = list(csv.DictReader(open(cv_dir / "cv_summary.csv", newline="")))
    key = "accuracy_esc50" if "accuracy_esc50" in rows[0] else "accuracy"
    folds = {}
    for r in rows:
        if r["fold"] in ("mean", "std"):
            continue
        log = _log(cv_dir / f"fold{r['fold']}")
        folds[r["fold"]] = {"accuracy": float(r[key]), "mAP": float(r["mAP"]),
                            "epochs": int(log[-1]["epoch"]) if log else None,
                            "training_minutes": round(float(log[-1]["trained_s"]) / 60, 1) if log else None}
    accs = [f["accuracy"] for f in folds.values()]
    return {"measure": key, "folds": folds, "mean_accuracy": round(statistics.fmean(accs), 4),
            "std_accuracy": round(statistics.pstdev(accs), 4), "min": min(accs), "max": max(accs)}


def build(model_path: str | Path, report: dict, cv: dict | None = None, infer_bench: dict | None = None,
          train_bench: dict | None = None, notes: dict | None = None) -> dict[str, Any]:
    """The metrics dict for `model_path`. `notes` (free text by key) says what numbers cannot."""
    path = Path(model_path)
    loaded = load_model(path)
    prov, mc = loaded.provenance, loaded.model.config
    recipe = prov.get("recipe", {})
    out: dict[str, Any] = {
        "model_file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "file_mb": round(path.stat().st_size / 1e6, 2),
        "labels": len(loaded.labels),
        "architecture": {"embed_dim": mc.embed_dim, "depth": mc.depth, "num_heads": mc.num_heads,
                         "patch_size": mc.patch_size, "num_frames": mc.num_frames,
                         "params_m": round(sum(p.numel() for p in loaded.model.parameters()) / 1e6, 2),
                         "window_s": loaded.features.window_s, "init": prov.get("init")},
        "trained_on": {"sources": prov.get("training_data"), "eval_fold": prov.get("eval_fold"),
                       "note": prov.get("training_data_note")},
        "training": {"epochs": prov.get("epochs_run"), "device": recipe.get("device"),
                     "time_budget_min": recipe.get("time_budget_min"), "recipe": recipe,
                     "code_revision": prov.get("code_revision"), "code_revision_note": prov.get("code_revision_note"),
                     "model_selection": "none: the last epoch is shipped"},
        "esc50_accuracy": {"cross_validation": cv, "published_from_scratch_5fold": PUBLISHED_FROM_SCRATCH_5FOLD,
                           "target": "beat 0.537, aim 0.75"},
        "fsdd_test_speech_detection": report.get("fsdd_test_speech_detection"),
        "fsdd_test_speech_in_noise_stream": report.get("fsdd_test_speech_in_noise_stream"),
        "false_tags_per_minute": report.get("false_tags_per_minute"),
        "out_of_domain": report.get("out_of_domain"),
        "event_rule": report.get("event_rule"),
        "inference": infer_bench,
        "training_throughput": train_bench,
    }
    if notes:
        out["notes"] = notes
    return out


def write(model_path: str | Path, report_path: str | Path, out: str | Path, cv_dir: str | Path | None = None,
          infer_bench: str | Path | None = None, train_bench: str | Path | None = None,
          notes: dict | None = None) -> Path:
    def read(p):
        return json.loads(Path(p).read_text()) if p else None
    metrics = build(model_path, read(report_path), cross_validation(Path(cv_dir)) if cv_dir else None,
                    read(infer_bench), read(train_bench), notes)
    out = Path(out)
    with atomic_write(out) as f:
        f.write(json.dumps(metrics, indent=1) + "\n")
    return out
