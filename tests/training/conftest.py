"""Fixtures for training tests: a tiny folder-per-class dataset made of real audio (the CC0 ESC-50 clip)."""
from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from training.config import make_config
from training.data import synth_audio


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory, esc50_clip) -> Path:
    """dog/: four 1.5 s pieces of the real dog-bark clip around its bark (2.0-2.8 s), each at another gain;
    hum/: four synthetic hum clips."""
    root = tmp_path_factory.mktemp("folders") / "sounds"
    wave, rate = sf.read(esc50_clip, dtype="float32")
    (root / "dog").mkdir(parents=True)
    (root / "hum").mkdir()
    for i in range(4):
        start = 16000 + 3200 * i
        sf.write(root / "dog" / f"bark{i}.flac", wave[start:start + 24000] * (1 - 0.2 * i), rate)
        sf.write(root / "hum" / f"hum{i}.wav", synth_audio(f"synth:hum:-30:{i}", seconds=1.5), rate)
    return root


@pytest.fixture()
def tiny_cfg(tiny_folders, tmp_path):
    """A seconds-long CPU run: tiny model, two folds, held-out fold 1."""
    def make(**overrides):
        values = dict(data=(f"folders:{tiny_folders}",), num_folds=2, eval_fold=1, out_dir=str(tmp_path / "run"),
                      cache_dir=str(tmp_path / "cache"), batch_size=3, threads=1, noise_prob=0.5, mixup=0.5)
        values.update(overrides)
        return make_config("tiny", values)
    return make
