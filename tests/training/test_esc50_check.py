"""ESC-50 excerpt detection on the repository's ESC-50 fixtures (an index of the four clips, built in tmp_path)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from training.esc50_check import Esc50Index, find_duplicates, fingerprint, sample_hash

DATA = Path(__file__).resolve().parents[1] / "data"
CLIPS = ["1-100032-A-0", "1-44831-A-1", "4-150364-B-46", "5-251426-B-30"]


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Esc50Index:
    root = tmp_path_factory.mktemp("esc50")
    (root / "audio").mkdir()
    for name in CLIPS:
        shutil.copy(DATA / f"{name}.flac", root / "audio" / f"{name}.flac")
    return Esc50Index.build(root, cache=root / "index.npz")


def _degrade(wave: np.ndarray, start_s: float, length_s: float) -> np.ndarray:
    """Cut, resample 16 -> 44.1 -> 16 kHz, -6 dB: what a re-upload does to an ESC-50 clip."""
    x = torch.from_numpy(wave[int(start_s * 16000):int((start_s + length_s) * 16000)].copy())
    x = AF.resample(AF.resample(x, 16000, 44100), 44100, 16000)
    return x.numpy() * 10 ** (-6 / 20)


@pytest.mark.parametrize("name,start_s,length_s", [("1-100032-A-0", 1.9, 1.2),   # the dog bark (2.0-2.8 s)
                                                   ("1-44831-A-1", 0.77, 2.0),
                                                   ("4-150364-B-46", 2.31, 1.0),
                                                   ("5-251426-B-30", 0.5, 3.5)])
def test_degraded_excerpt_is_found_at_its_offset(index, name, start_s, length_s):
    wave, _ = sf.read(DATA / f"{name}.flac", dtype="float32")
    m = index.match_detail(_degrade(wave, start_s, length_s))
    assert m is not None and m.filename == f"audio/{name}.flac"
    assert m.score > 0.9
    assert m.offset_s == pytest.approx(start_s, abs=0.002)
    assert index.match(_degrade(wave, start_s, length_s))[0] == f"audio/{name}.flac"


def test_excerpt_inside_a_longer_recording_is_found(index):
    """The clip's bark placed 3 s into 8 s of other sound (a source recording longer than its ESC-50 cut)."""
    wave, _ = sf.read(DATA / "1-100032-A-0.flac", dtype="float32")
    rng = np.random.default_rng(1)
    host = (rng.standard_normal(8 * 16000) * 0.003).astype(np.float32)
    host[3 * 16000:3 * 16000 + 16000] += wave[32000:48000]
    assert index.match(host)[0] == "audio/1-100032-A-0.flac"


def test_unrelated_sounds_are_not_matched(index):
    rng = np.random.default_rng(0)
    t = np.arange(3 * 16000) / 16000
    # speech-like: a 120-180 Hz glottal buzz with harmonics, syllable-rate envelope, plus breath noise
    f0 = 150 + 30 * np.sin(2 * np.pi * 0.7 * t)
    buzz = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16000) / k for k in range(1, 20))
    speechy = buzz * np.clip(np.sin(2 * np.pi * 4 * t), 0, None) + 0.05 * rng.standard_normal(t.size)
    for wave in (speechy, rng.standard_normal(t.size), np.zeros(t.size), np.zeros(100)):
        assert index.match(wave.astype(np.float32) * 0.1) is None


def test_fingerprint_is_gain_invariant_and_short_input_is_empty():
    wave, _ = sf.read(DATA / "1-44831-A-1.flac", dtype="float32")
    fp, loud = fingerprint(wave)
    fp2, loud2 = fingerprint(wave * 0.25)
    assert loud.sum() > 100 and np.array_equal(fp[loud], fp2[loud])
    assert fingerprint(wave[:1000])[0].size == 0


def test_index_cache_is_reused(index, tmp_path):
    again = Esc50Index.build(index.root, cache=index.root / "index.npz")
    assert np.array_equal(again.keys, index.keys) and again.filenames == index.filenames


def test_duplicates_by_decoded_samples(tmp_path):
    wave, rate = sf.read(DATA / "1-44831-A-1.flac", dtype="int16")
    sf.write(tmp_path / "a.wav", wave, rate, subtype="PCM_16")
    sf.write(tmp_path / "b.flac", wave, rate, subtype="PCM_16")      # same samples, other container
    sf.write(tmp_path / "c.wav", wave[:-1], rate, subtype="PCM_16")  # one sample shorter: not a duplicate
    paths = [tmp_path / n for n in ("a.wav", "b.flac", "c.wav")]
    assert sample_hash(paths[0]) == sample_hash(paths[1])
    assert find_duplicates(paths) == {str(paths[1]): str(paths[0])}
