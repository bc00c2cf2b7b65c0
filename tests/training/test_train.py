"""The training loop end to end on a tiny config: smoke run, resume, export, fine-tuning, k-fold."""
from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.modelfile import load_model
from training.export import check_same_logits
from training.train import build_model, cross_validate, train

REPO = Path(__file__).resolve().parents[2]


def test_two_step_smoke_training_writes_log_checkpoint_and_model(tiny_cfg):
    cfg = tiny_cfg(max_steps=2)
    torch.manual_seed(cfg.seed)
    before = {k: v.clone() for k, v in build_model(cfg, ["dog", "hum"])[0].state_dict().items()}
    result = train(cfg)
    out = Path(result["out_dir"])
    assert result["history"][-1]["step"] == 2
    assert np.isfinite(result["history"][-1]["train_loss"])
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert len(rows) == 1 and float(rows[0]["eval_mAP"]) > 0
    for name in ("ckpt.pt", "eval_metrics.json", "eval_confusion.csv", "eval_per_class_ap.csv"):
        assert (out / name).exists(), name
    loaded = load_model(out / "model.safetensors")
    assert loaded.labels.names == ["Dog", "hum"] and loaded.labels.ids == ["/m/0bt9lr", "hum"]  # known name -> MID
    changed = [k for k, v in loaded.model.state_dict().items() if not torch.equal(v, before[k])]
    assert "mlp_head.1.weight" in changed and any(k.startswith("blocks.0.") for k in changed)


def test_resume_continues_exactly_where_it_stopped(tiny_cfg, tmp_path):
    straight = train(tiny_cfg(epochs=2, out_dir=str(tmp_path / "a")))
    steps_per_epoch = straight["history"][0]["step"]
    first = train(tiny_cfg(epochs=2, max_steps=steps_per_epoch, out_dir=str(tmp_path / "b")))
    assert len(first["history"]) == 1
    resumed = train(tiny_cfg(epochs=2, out_dir=str(tmp_path / "b")))
    assert [r["epoch"] for r in resumed["history"]] == [1, 2]
    assert resumed["history"][-1]["step"] == straight["history"][-1]["step"]
    a, b = straight["model"].state_dict(), resumed["model"].state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_export_round_trip_and_cli_loads_it(tiny_cfg, esc50_clip, tmp_path):
    result = train(tiny_cfg(max_steps=1))
    path = Path(result["model_file"])
    assert check_same_logits(result["model"], path) <= 1e-5
    loaded = load_model(path)
    prov = loaded.provenance
    for key in ("training_data", "recipe", "metrics", "code_revision", "eval_fold"):
        assert key in prov
    assert prov["recipe"]["embed_dim"] == 32 and loaded.features.num_frames == 128
    out = tmp_path / "analysis"
    run = subprocess.run([sys.executable, "main.py", "analyze", str(esc50_clip), "--model", str(path),
                          "--out", str(out), "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert any(out.rglob("*.csv"))


def test_export_check_catches_a_different_model(tiny_cfg):
    result = train(tiny_cfg(max_steps=1))
    model = result["model"]
    with torch.no_grad():
        model.mlp_head[1].bias += 1.0
    with pytest.raises(RuntimeError, match="logits"):
        check_same_logits(model, Path(result["model_file"]))


def test_fine_tune_from_hugging_face_dir_adapts_window_and_head(tiny_cfg, tiny_hf_dir):
    cfg = tiny_cfg(init=str(tiny_hf_dir), num_frames=160, max_steps=2, lr=1e-4)
    model, features = build_model(cfg, ["dog", "hum"])
    reference = load_model(tiny_hf_dir)
    assert model.config.num_frames == 160 and model.config.num_classes == 2
    assert model.pos_embed.shape[1] == 2 + 12 * 15  # 128 frames -> 12 x 12 grid, 160 frames -> 12 x 15
    assert torch.equal(model.state_dict()["blocks.1.mlp.fc2.weight"], reference.model.state_dict()["blocks.1.mlp.fc2.weight"])
    assert model.mlp_head[1].weight.shape == (2, 128)
    assert (features.mean, features.std) == (reference.features.mean, reference.features.std)
    result = train(cfg)
    loaded = load_model(result["model_file"])
    assert loaded.model.config.embed_dim == 128 and loaded.labels.names == ["Dog", "hum"]
    assert "tiny-ast" in loaded.provenance["init"]


def test_cross_validation_runs_every_fold_and_writes_a_summary(tiny_cfg, tmp_path):
    rows = cross_validate(tiny_cfg(max_steps=1, out_dir=str(tmp_path / "cv")), [1, 2])
    assert [r["fold"] for r in rows] == [1, 2, "mean", "std"]
    summary = list(csv.DictReader(open(tmp_path / "cv" / "cv_summary.csv")))
    assert len(summary) == 4 and all((tmp_path / "cv" / f"fold{k}" / "model.safetensors").exists() for k in (1, 2))
    assert 0.0 <= float(summary[2]["accuracy"]) <= 1.0


def test_parallel_cross_validation_matches_the_serial_one(tiny_cfg, tmp_path):
    cfg = tiny_cfg(max_steps=2)
    serial = cross_validate(dataclasses.replace(cfg, out_dir=str(tmp_path / "serial")), [1, 2])
    parallel = cross_validate(dataclasses.replace(cfg, out_dir=str(tmp_path / "parallel")), [1, 2], jobs=2)
    assert parallel == serial  # same seeds, same data: fold processes reproduce the serial runs exactly


def test_single_label_loss_refuses_clips_without_labels(tiny_cfg):
    cfg = tiny_cfg(loss="ce", data=tiny_cfg().data + ("negatives:4",))
    with pytest.raises(ValueError, match="loss=bce"):
        train(cfg)


def test_time_budget_stops_the_run_and_a_rerun_only_exports(tiny_cfg):
    cfg = tiny_cfg(time_budget_min=0.01, epochs=100000)  # 0.6 s of training
    result = train(cfg)
    last = result["history"][-1]
    assert 0.6 <= last["trained_s"] < 30 and last["epoch"] < 100000
    again = train(cfg)
    assert len(again["history"]) == len(result["history"])


def test_report_counts_false_tags_through_the_analyzer(tiny_cfg, tmp_path):
    from training.report import report
    result = train(tiny_cfg(max_steps=1))
    out = tmp_path / "metrics.json"
    metrics = report(result["model_file"], out=str(out), fold=0, fsdd=str(tmp_path / "none"), minutes=0.05)
    assert json.loads(out.read_text()) == json.loads(json.dumps(metrics))
    silence = metrics["false_tags_per_minute"]["silence"]
    assert silence["minutes"] == 0.05 and silence["tags_per_min@0.5"] >= 0 and 0 <= silence["max_score"] <= 1
    assert "esc50_fold_accuracy" not in metrics and "fsdd_test_speech_detection" not in metrics


def test_metrics_file_gathers_cv_report_and_provenance(tiny_cfg, tmp_path):
    cv_dir = tmp_path / "cv"
    rows = cross_validate(tiny_cfg(max_steps=1, out_dir=str(cv_dir)), [1, 2])
    model = cv_dir / "fold1" / "model.safetensors"
    report = {"fsdd_test_speech_detection": {"files": 3, "detected": 1.0},
              "false_tags_per_minute": {"silence": {"tags_per_min@0.3": 0.0}}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    out = tmp_path / "m.json"
    result = subprocess.run([sys.executable, "-m", "training", "metrics-file", str(model), "--report",
                             str(tmp_path / "report.json"), "--cv", str(cv_dir), "--note", "why=a test",
                             "--out", str(out)], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr
    m = json.loads(out.read_text())
    cv = m["esc50_accuracy"]["cross_validation"]
    esc = [r.get("accuracy_esc50", r["accuracy"]) for r in rows[:2]]
    assert sorted(cv["folds"]) == ["1", "2"] and cv["folds"]["1"]["epochs"] == 1
    assert cv["measure"] == "accuracy" and cv["mean_accuracy"] == pytest.approx(float(np.mean(esc)), abs=1e-4)
    assert m["sha256"] and m["labels"] == 2 and m["architecture"]["embed_dim"] == 32
    assert m["fsdd_test_speech_detection"] == report["fsdd_test_speech_detection"]
    assert m["trained_on"]["eval_fold"] == 1 and m["notes"] == {"why": "a test"}


def pickled_checkpoint(path: Path) -> Path:
    """A checkpoint as an older or foreign script might write it: a config object pickled beside the weights."""
    from training.config import TrainConfig
    torch.save({"model": {"cls_token": torch.zeros(1, 1, 4)}, "config": TrainConfig()}, path)
    return path


def test_export_of_a_pickled_checkpoint_is_refused_in_one_line(tmp_path, capsys):
    from training.__main__ import main
    ckpt = pickled_checkpoint(tmp_path / "ckpt.pt")
    assert main(["export", str(ckpt), str(tmp_path / "model.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "pickled" in err and "refused" in err and "python -m training train" in err
    assert "weights_only" not in err and "Traceback" not in err
    assert not (tmp_path / "model.safetensors").exists()
    for i, foreign in enumerate(({"weights": torch.zeros(2)}, torch.zeros(2))):  # plain tensors, not ours
        torch.save(foreign, tmp_path / f"foreign{i}.pt")
        assert main(["export", str(tmp_path / f"foreign{i}.pt"), str(tmp_path / "model.safetensors")]) == 2
        err = capsys.readouterr().err
        assert "not a checkpoint of `python -m training train`" in err and len(err.strip().splitlines()) == 1


def test_resume_from_a_pickled_checkpoint_is_refused_with_the_way_out(tiny_cfg, tmp_path):
    from core.errors import TaggerError
    cfg = tiny_cfg(max_steps=1, out_dir=str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    pickled_checkpoint(tmp_path / "run" / "ckpt.pt")
    with pytest.raises(TaggerError, match="pickled.*refused.*resume=false") as refused:
        train(cfg)
    assert "weights_only" not in str(refused.value)
