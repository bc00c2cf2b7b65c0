"""Damaged and unusual input end to end (issue 10): non-finite results, bad feature statistics,
truncated files, FLAC streams of unknown length, odd model rates. Real files written with soundfile,
then damaged byte by byte; the CLI as a user runs it."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file

from core.analyze import Analyzer
from core.cli import main
from core.config import FeatureConfig
from core.errors import ConfigError, TaggerError
from core.modelfile import load_model
from core.scorer import Scorer

pytest.importorskip("transformers")


def outputs(folder: Path, stem: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(stem + ".")) if folder.exists() else []


def params(folder: Path, stem: str) -> dict[str, str]:
    with open(folder / f"{stem}.params.csv", newline="") as f:
        return {row[0]: row[1] for row in list(csv.reader(f))[1:]}


def copy_hf_dir(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# --- non-finite results (defect 5) ---------------------------------------------------------------

@pytest.mark.parametrize("field, value", [("std", 0.0), ("std", -4.5), ("std", float("nan")),
                                          ("std", float("inf")), ("mean", float("nan")), ("mean", float("-inf")),
                                          ("std", "4.5")])
def test_feature_statistics_are_refused_when_unusable(field, value):
    with pytest.raises(ConfigError, match=f"feature {field}"):
        FeatureConfig(**{field: value})


def test_model_with_std_zero_is_refused_at_load(tiny_hf_dir, esc50_clip, tmp_path, capsys):
    model = copy_hf_dir(tiny_hf_dir, tmp_path / "std0")
    (model / "preprocessor_config.json").write_text(json.dumps({"mean": -4.27, "std": 0}))
    assert main(["analyze", str(esc50_clip), "--model", str(model), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "std" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def _nan_weights_model(tiny_hf_dir: Path, folder: Path) -> Path:
    model = copy_hf_dir(tiny_hf_dir, folder)
    state = load_file(str(model / "model.safetensors"))
    key = next(k for k in state if k.endswith("classifier.dense.weight"))
    state[key] = torch.full_like(state[key], float("nan"))
    save_file(state, str(model / "model.safetensors"), metadata={"format": "pt"})
    return model


def test_nan_scores_fail_the_file_and_export_nothing(tiny_hf_dir, esc50_clip, tmp_path, capsys):
    model = _nan_weights_model(tiny_hf_dir, tmp_path / "nan-model")
    with pytest.raises(TaggerError, match="non-finite scores"):
        Analyzer(Scorer(load_model(model), "cpu"), hop_s=0.5).analyze(str(esc50_clip))
    out = tmp_path / "out"
    assert main(["analyze", str(esc50_clip), "--model", str(model), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "non-finite scores" in lines[0] and str(esc50_clip) in lines[0], err
    assert outputs(out, esc50_clip.stem) == []


@pytest.mark.parametrize("damage", ["huge", "corrupt"])
def test_huge_or_corrupt_float_samples_give_finite_scores(tiny_hf_dir, esc50_clip, tmp_path, caplog, damage):
    wave = sf.read(esc50_clip, dtype="float32")[0]
    path = tmp_path / f"{damage}.wav"
    if damage == "huge":
        wave[::997] = 3e38
        wave[1::997] = -3e38
        sf.write(path, wave, 16000, subtype="FLOAT")
    else:  # random bytes over the middle of the float data: NaN, inf and values like 1e30
        sf.write(path, wave, 16000, subtype="FLOAT")
        data = bytearray(path.read_bytes())
        data[100_000:140_000] = np.random.default_rng(0).integers(0, 256, 40_000, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(data))
    out = tmp_path / "out"
    assert main(["analyze", str(path), "--model", str(tiny_hf_dir), "--out", str(out), "--quiet",
                 "--hop", "0.5"]) == 0
    with open(out / f"{damage}.scores.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    assert len(rows) == 9 and all(np.isfinite(float(v)) for row in rows for v in row[2:])
    assert "clipped to [-1, 1]" in caplog.text             # logged as a warning: on stderr for a user
    rows = params(out, damage)
    assert int(rows["samples_clipped"]) > 0 and "warning" not in rows  # recorded; not a damaged file


# --- truncated files: one policy for every container (defect 8) ----------------------------------

def _truncated(kind: str, clip: Path, folder: Path) -> Path:
    """The dog clip (5 s) written as WAV or FLAC with soundfile, then cut to about 60 % of its bytes."""
    wave = sf.read(clip, dtype="float32")[0]
    path = folder / f"cut_{kind}.{'wav' if kind.startswith('wav') else 'flac'}"
    sf.write(path, wave, 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6) + (1 if kind == "wav_mid_sample" else 0)])
    return path


@pytest.mark.parametrize("kind", ["wav", "wav_mid_sample", "flac"])
def test_truncated_file_is_analysed_reported_and_fails(tiny_hf_dir, esc50_clip, tmp_path, capsys, kind):
    """Analyse what decodes, warn on stderr, record it in params.csv, exit 1 for that file: the same for
    a WAV (libsndfile shortens it silently) and a FLAC (libsndfile raises 'lost sync' at the cut)."""
    path = _truncated(kind, esc50_clip, tmp_path)
    out = tmp_path / "out"
    code = main(["analyze", str(path), str(esc50_clip), "--model", str(tiny_hf_dir), "--out", str(out),
                 "--quiet", "--hop", "0.5"])
    err = capsys.readouterr().err
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(path) in lines[0] and "truncated" in lines[0], err
    assert "Traceback" not in err
    assert {p.suffixes[-2] for p in outputs(out, path.stem)} == {".tags", ".scores", ".params"}
    rows = params(out, path.stem)
    truncated_at_s = float(rows["truncated_at_s"])
    assert 1.5 < truncated_at_s < 4.0 and "truncated" in rows["warning"]   # 60 % of the bytes of 5 s
    assert float(rows["duration_s"]) == pytest.approx(truncated_at_s, abs=0.001)
    assert "warning" not in params(out, esc50_clip.stem)        # the intact file next to it is untouched


# --- streams of unknown length (defect 9) ---------------------------------------------------------

def test_streamed_flac_is_analysed_like_the_original(tiny_hf_dir, esc50_clip, tmp_path, capsys):
    from tests.core.test_audio_io import streamed_flac
    path = streamed_flac(esc50_clip, tmp_path / "streamed.flac")
    analyzer = Analyzer(Scorer(load_model(tiny_hf_dir), "cpu"), hop_s=0.5)
    seen = []
    streamed = analyzer.analyze(str(path), progress=lambda done, total: seen.append((done, total)))
    original = analyzer.analyze(str(esc50_clip))
    np.testing.assert_array_equal(streamed.scores, original.scores)
    assert streamed.duration_s == 5.0 and "truncated_at_s" not in streamed.extra
    assert all(total == 0.0 for _, total in seen[:-1]) and seen[-1] == (5.0, 5.0)   # 0 = length unknown
    out = tmp_path / "out"
    assert main(["analyze", str(path), "--model", str(tiny_hf_dir), "--out", str(out), "--hop", "0.5"]) == 0
    assert "error" not in capsys.readouterr().err
    assert params(out, "streamed")["duration_s"] == "5.000"


# --- a model whose frames are not 10 ms (defect 14, part) -----------------------------------------

def test_odd_model_rate_is_named_instead_of_the_hop(esc50_clip, tmp_path, capsys):
    """A model file whose feature config says 44101 Hz has frames of 160 / 44101 s: the default hop of
    1 s is no whole number of them. The error blamed --hop; it must name the model's feature config."""
    from core.config import ModelConfig
    from core.labels import LabelSet
    from core.model import AST
    from core.modelfile import save_model_file
    cfg = ModelConfig(num_classes=3, num_frames=128, embed_dim=64, depth=1, num_heads=1)
    model = save_model_file(tmp_path / "odd.safetensors", AST(cfg),
                            FeatureConfig(sample_rate_hz=44101, num_frames=128), LabelSet.generic(3))
    assert main(["analyze", str(esc50_clip), "--model", str(model), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "hop must be" not in err, err
    assert "44101 Hz" in err and "feature config" in err and "16000 Hz" in err
    assert main(["analyze", str(esc50_clip), "--model", str(model), "--out", str(tmp_path / "out"),
                 "--hop", "0.123"]) == 2
    assert "hop must be" in capsys.readouterr().err       # a hop that is wrong on any grid is still the hop
