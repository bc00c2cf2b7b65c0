"""Inference backends (core.backends, core.ov_backend): the accuracy gate of bf16 on real audio, the choice of
backend and precision, the fallback without OpenVINO, the conversion cache, the thread policy."""
from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import core.backends as backends
from bench.gate import gate, scale_head
from core.analyze import Analyzer
from core.cli import main
from core.config import EventConfig, FeatureConfig, InferenceOptions, ModelConfig
from core.errors import ConfigError
from core.events import detect_events
from core.features import fbank, normalize
from core.labels import LabelSet, audioset_labels
from core.model import AST
from core.modelfile import LoadedModel, load_model, save_model_file
from core.scorer import Scorer
from tests.conftest import DATA, SHARED

needs_openvino = pytest.mark.skipif(backends.import_openvino() is None,
                                    reason="openvino is not installed (pip install '.[fast]')")
needs_bf16 = pytest.mark.skipif(not backends.has_native_bf16(torch.device("cpu")),
                                reason="this CPU has no native bf16 (AVX512-BF16 or AMX)")
REDUCED = [pytest.param("torch", id="torch")] + [pytest.param("openvino", id="openvino", marks=needs_openvino)]


def write_scene(path, clips, seconds: float | None = None):
    """Real ESC-50 clips end to end as one 16 kHz WAV (the first `seconds` of it)."""
    audio = np.concatenate([sf.read(c, dtype="float32")[0] for c in clips])
    sf.write(path, audio[:round(seconds * 16000)] if seconds else audio, 16000, subtype="PCM_16")
    return path


def analyse(loaded, options, path, hop_s: float):
    timeline = Analyzer(Scorer(loaded, options), hop_s=hop_s).analyze(str(path))
    return timeline, detect_events(timeline, EventConfig())


# ---- the accuracy gate on real audio ------------------------------------------------------------------

@needs_bf16
@pytest.mark.parametrize("backend", REDUCED)
def test_bf16_on_the_shipped_model_over_a_10_minute_scene(backend, tmp_path):
    """The accuracy gate (bench/gate.py) on 120 real clips: torch bf16 passes it; OpenVINO bf16 keeps the
    scores within 0.02 but 3 of 107 events differ (97.2 %, two peaks of 0.301 and 0.303 at the 0.3 threshold
    fall below it, one event ends a hop later), which is why `auto` keeps small models in fp32."""
    clips = sorted((SHARED / "esc50" / "audio").glob("*.flac"))[:120]
    if len(clips) < 120:
        pytest.skip(f"the ESC-50 clips are not in {SHARED / 'esc50' / 'audio'}")
    scene = write_scene(tmp_path / "scene.wav", clips)                       # 10 minutes of 120 real clips
    loaded = load_model()
    reference, reference_events = analyse(loaded, "cpu", scene, hop_s=1.0)
    timeline, events = analyse(loaded, InferenceOptions("cpu", backend, "bf16"), scene, hop_s=1.0)
    result = gate(reference.scores, timeline.scores, reference_events, events)
    assert timeline.extra["inference"] == f"{backend} bf16, 1 thread"
    assert len(reference_events) > 100 and 0 < result["max_score_difference"] <= 0.02, result
    assert result["passed"] if backend == "torch" else result["same_events"] >= 0.97, result
    auto, auto_events = analyse(loaded, InferenceOptions("cpu", backend), scene, hop_s=1.0)
    assert np.abs(auto.scores - reference.scores).max() < 1e-5 and len(auto_events) == len(reference_events)


@needs_bf16
def test_bf16_on_an_ast_base_with_trained_like_logits_stays_near_fp32(tmp_path):
    """AST-base as released (768 wide, 12 blocks, 1024 frames, 527 labels), random weights, the head scaled to
    logits of std 3 and mean -5 on these clips, converted and run by each backend. Measured: torch 0.0205 max
    score difference and 90 % of 81 events the same, OpenVINO 0.0185 and 95 %: bf16 does not pass the gate on
    this stand-in (docs/speed.md says why and what auto does); this guards the conversion of the released shape
    against real breakage (a wrong graph moves scores by tenths)."""
    scene = write_scene(tmp_path / "scene.wav", sorted(DATA.glob("*.flac")))  # 20 s of 4 real clips
    torch.manual_seed(0)
    model = AST(ModelConfig()).eval()
    features = FeatureConfig(num_frames=1024)
    wave = torch.from_numpy(sf.read(scene, dtype="float32")[0])
    x = normalize(fbank(wave, features), features)                           # (N, F)
    starts = range(0, x.shape[0] - 1024 + 1, 200)
    scale_head(model, torch.stack([x[s:s + 1024] for s in starts]))         # logits: std 3, mean -5
    loaded = LoadedModel(model, features, audioset_labels(), "ast-base-scaled", "ast-tagger")
    reference, reference_events = analyse(loaded, "cpu", scene, hop_s=2.0)
    assert reference.scores.std() > 0.1 and len(reference_events) > 30      # trained-like: scores spread out
    for backend in ["torch"] + (["openvino"] if backends.import_openvino() else []):
        timeline, events = analyse(loaded, InferenceOptions("cpu", backend, "bf16"), scene, hop_s=2.0)
        result = gate(reference.scores, timeline.scores, reference_events, events)
        assert result["max_score_difference"] <= 0.03 and result["same_events"] >= 0.85, (backend, result)


@pytest.mark.parametrize("backend", REDUCED)
def test_fp32_is_exact_on_every_backend(backend, esc50_clip):
    loaded = load_model()
    reference, _ = analyse(loaded, "cpu", esc50_clip, hop_s=0.5)
    timeline, _ = analyse(loaded, InferenceOptions("cpu", backend, "fp32"), esc50_clip, hop_s=0.5)
    assert np.abs(reference.scores - timeline.scores).max() < 1e-5
    assert timeline.extra["inference"] == f"{backend} fp32, 1 thread"


# ---- choosing precision and backend -------------------------------------------------------------------

def test_auto_precision_is_fp32_on_a_cpu_without_native_bf16(monkeypatch):
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    scorer = Scorer(load_model(), InferenceOptions("cpu", "torch", "auto"))
    assert scorer.describe() == "torch fp32, 1 thread" and scorer.note is None
    with pytest.raises(ConfigError, match="no native bf16"):
        Scorer(load_model(), InferenceOptions("cpu", "torch", "bf16"))


def ast_tiny_1024() -> LoadedModel:
    """AST-tiny at the AudioSet window (26 GFLOP per window: past the small-model line of the policy)."""
    torch.manual_seed(0)
    model = AST(ModelConfig(embed_dim=192, num_heads=3)).eval()
    return LoadedModel(model, FeatureConfig(num_frames=1024), audioset_labels(), "ast-tiny", "ast-tagger")


@needs_bf16
def test_auto_precision_takes_bf16_within_tolerance_and_fp32_outside_it(monkeypatch):
    loaded = ast_tiny_1024()
    assert Scorer(loaded, InferenceOptions("cpu", "torch", "auto", threads=1)).describe() == "torch bf16, 1 thread"
    verdicts = list((backends.cache_root() / "verdicts").glob("*-torch-*-bf16-1024x128-probe*.json"))
    assert len(verdicts) == 1                                   # the probe's verdict is kept for the next start
    verdicts[0].unlink()
    monkeypatch.setattr(backends, "BF16_TOLERANCE", 1e-7)       # a model that bf16 would move too far
    scorer = Scorer(loaded, InferenceOptions("cpu", "torch", "auto", threads=1))
    assert scorer.describe() == "torch fp32, 1 thread"
    assert scorer.note.startswith("bf16 moved this model's scores by up to") and "\n" not in scorer.note
    assert scorer.note.endswith("so it runs in fp32 (--precision bf16 forces it)")


def test_without_openvino_the_backend_falls_back_to_torch_and_says_so(monkeypatch, esc50_clip, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "openvino", None)          # `import openvino` now fails
    scorer = Scorer(load_model(), InferenceOptions("cpu", "openvino", "fp32"))
    assert scorer.describe() == "torch fp32, 1 thread"
    assert scorer.note == ("openvino is not installed, running on torch: pip install 'ast-tagger[fast]' "
                           "(or pip install openvino)")
    assert main(["analyze", str(esc50_clip), "--out", str(tmp_path), "--backend", "openvino", "--quiet"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if line.startswith("note:")] == [f"note: {scorer.note}"]
    auto = Scorer(load_model(), InferenceOptions("cpu"))
    assert auto.runner.backend == "torch" and "pip install 'ast-tagger[fast]'" in auto.note


def test_analyze_runs_the_engine_asked_for_and_writes_it_to_params(esc50_clip, tmp_path, capsys):
    import csv
    assert main(["analyze", str(esc50_clip), "--out", str(tmp_path), "--backend", "torch", "--precision", "fp32",
                 "--threads", "2", "--quiet"]) == 0
    assert "on cpu: torch fp32, 2 threads" in capsys.readouterr().err
    with open(tmp_path / f"{esc50_clip.stem}.params.csv", newline="") as f:
        assert {r["name"]: r["value"] for r in csv.DictReader(f)}["inference"] == "torch fp32, 2 threads"


def test_openvino_refuses_a_gpu_and_a_bad_precision_is_one_line(capsys, esc50_clip):
    with pytest.raises(ConfigError, match="--backend openvino runs on the CPU"):
        backends.build_runner(load_model(), InferenceOptions("cuda", "openvino"))
    with pytest.raises(SystemExit) as stop:
        main(["analyze", str(esc50_clip), "--precision", "fp16"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


# ---- the conversion cache ------------------------------------------------------------------------------

def tiny_model_file(path, seed: int) -> str:
    torch.manual_seed(seed)
    cfg = ModelConfig(num_classes=3, num_frames=128, embed_dim=64, depth=2, num_heads=2)
    save_model_file(path, AST(cfg).eval(), FeatureConfig(num_frames=128), LabelSet.from_names(["a", "b", "c"]))
    return str(path)


@needs_openvino
def test_the_cache_is_rebuilt_when_the_model_file_changes(tmp_path, esc50_clip):
    path = tmp_path / "mine.safetensors"
    openvino = InferenceOptions("cpu", "openvino", "fp32")
    for seed in (1, 2):                                          # the same path, other weights
        loaded = load_model(tiny_model_file(path, seed))
        exact, _ = analyse(loaded, "cpu", esc50_clip, hop_s=0.5)
        converted, _ = analyse(loaded, openvino, esc50_clip, hop_s=0.5)
        assert np.abs(exact.scores - converted.scores).max() < 1e-5, seed
    from core.ov_backend import entry_dir
    entries = {p.name for p in backends.cache_root().glob("*-openvino-*-128x128-v*")}
    assert entry_dir(loaded).name in entries and len(entries) >= 2


@needs_openvino
def test_a_damaged_cache_entry_is_rebuilt_not_fatal(tmp_path, esc50_clip, caplog):
    from core.ov_backend import entry_dir
    loaded = load_model(tiny_model_file(tmp_path / "m.safetensors", 3))
    options = InferenceOptions("cpu", "openvino", "fp32")
    Scorer(loaded, options)
    weights = entry_dir(loaded) / "model.bin"
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[:size // 2])        # cut short, as by a full disk
    with caplog.at_level(logging.WARNING, logger="core.ov_backend"):
        converted, _ = analyse(loaded, options, esc50_clip, hop_s=0.5)
    assert "rebuilding the converted model" in caplog.text and weights.stat().st_size == size
    exact, _ = analyse(loaded, "cpu", esc50_clip, hop_s=0.5)
    assert np.abs(exact.scores - converted.scores).max() < 1e-5


@needs_openvino
def test_models_converted_on_two_threads_one_after_the_other(tmp_path):
    """The window converts each model on its loader's thread; torch.export on a second thread after a first
    had exported crashed the process (a segfault) until every conversion ran on one converter thread."""
    import threading
    described = []
    for seed in (4, 5):
        loaded = load_model(tiny_model_file(tmp_path / f"m{seed}.safetensors", seed))
        loader = threading.Thread(target=lambda: described.append(
            Scorer(loaded, InferenceOptions("cpu", "openvino", "fp32")).describe()))
        loader.start()
        loader.join()
    assert described == ["openvino fp32, 1 thread"] * 2


@needs_openvino
def test_a_cache_that_cannot_be_written_costs_a_conversion_per_start_not_the_run(tmp_path, monkeypatch, caplog):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv("AST_TAGGER_CACHE", str(blocked))
    loaded = load_model(tiny_model_file(tmp_path / "m.safetensors", 6))
    with caplog.at_level(logging.WARNING, logger="core.ov_backend"):
        scorer = Scorer(loaded, InferenceOptions("cpu", "openvino", "fp32"))
    assert "cannot cache the converted model" in caplog.text
    x = torch.randn(2, 128, 128)
    assert np.abs(scorer(x) - Scorer(loaded, "cpu")(x)).max() < 1e-5


# ---- threads ---------------------------------------------------------------------------------------------

def test_thread_policy_one_thread_for_small_models_and_for_files_during_live_tagging(monkeypatch):
    monkeypatch.setattr(backends, "usable_cores", lambda: 2)
    base, shipped = ModelConfig(), load_model().model.config
    assert 240 < backends.gflop_per_window(base) < 280           # AST.md: about 261 GFLOP per window
    assert backends.auto_threads(shipped) == 1 and backends.auto_threads(base) == 2
    with backends.live_tagging():
        assert backends.auto_threads(base, live=True) == 2       # the live tagger keeps its cores
        assert backends.auto_threads(base) == 1                  # file analysis meanwhile takes one
    assert backends.auto_threads(base) == 2
