"""Labels with AudioSet MIDs, config overrides, metrics with known answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.config import ModelConfig
from core.errors import ConfigError
from core.model import AST
from core.modelfile import load_model
from training.config import make_config
from training.labels import ESC50_CATEGORIES, label_set
from training.metrics import average_precision, evaluate_scores


def test_esc50_labels_carry_audioset_mids_where_clear():
    labels = label_set(list(ESC50_CATEGORIES) + ["speech", "my_sound"])
    assert (labels[0].id, labels[0].name) == ("/m/0bt9lr", "Dog")
    assert (labels[50].id, labels[50].name) == ("/m/09x0r", "Speech")
    assert labels[ESC50_CATEGORIES.index("can_opening")].id == "can_opening"
    assert (labels[51].id, labels[51].name) == ("my_sound", "my_sound")


def test_original_50_output_pth_gets_esc50_labels(tmp_path):
    cfg = ModelConfig(num_classes=50, embed_dim=64, depth=1, num_heads=1, num_frames=512)
    state = {f"module.v.{k}" if not k.startswith("mlp_head") else f"module.{k}": v
             for k, v in AST(cfg).state_dict().items()}
    torch.save(state, tmp_path / "esc50.pth")
    loaded = load_model(tmp_path / "esc50.pth")
    assert len(loaded.labels) == 50 and loaded.labels[0].name == "Dog" and loaded.labels[49].id == "/m/01b82r"
    assert loaded.features.mean == pytest.approx(-6.6268077)


def test_overrides_are_typed_and_unknown_keys_listed():
    cfg = make_config("tiny", ["epochs=3", "lr=0.01", "resume=false", "noise_snr_db=5,10", "data=negatives:4"])
    assert (cfg.epochs, cfg.lr, cfg.resume, cfg.noise_snr_db, cfg.data) == (3, 0.01, False, (5.0, 10.0), ("negatives:4",))
    with pytest.raises(ConfigError, match="valid keys"):
        make_config("default", ["epoch=3"])
    with pytest.raises(ConfigError, match="loss"):
        make_config("default", ["loss=mse"])


def test_average_precision_known_answers():
    assert average_precision(np.array([0.9, 0.8, 0.1]), np.array([1, 0, 1])) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(np.array([0.9, 0.8]), np.array([1, 1])) == 1.0
    assert np.isnan(average_precision(np.array([0.9]), np.array([0])))


def test_evaluate_scores_accuracy_confusion_and_negatives():
    scores = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.3], [0.7, 0.1]])
    targets = np.array([[1, 0], [0, 1], [0, 0], [1, 0]], dtype=np.float32)
    m = evaluate_scores(scores, targets, ["a", "a", "neg", "b"], ["x", "y"])
    assert m["accuracy"] == pytest.approx(2 / 3) and m["accuracy_by_source"] == {"a": 0.5, "b": 1.0}
    assert m["confusion"].tolist() == [[2, 0], [1, 0]]
    assert m["negatives_tagged"] == 0.0
