"""StreamingTagger: the window grid of file analysis, warm-up, skip-on-lag, gaps, and live == file
through the ring buffer (no device needed; real capture is in test_listen.py)."""
import queue
import random
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from core.analyze import Analyzer
from core.audio_io import StreamingResampler
from core.capture import CaptureReader
from core.config import FeatureConfig, ModelConfig
from core.errors import ConfigError
from core.labels import LabelSet
from core.model import AST
from core.modelfile import load_model, save_model_file
from core.ringbuffer import RingBuffer
from core.scorer import Scorer
from core.session import Recorder
from core.tagger import StreamingTagger, TagFrame, TaggerConfig, TaggerEnd, TaggerState


def make_energy_model(path: Path, num_frames: int = 100, level: float = -1.0, loud_share: float = 0.1) -> Path:
    """A tiny AST model file whose label 0 ("Sound") is on when more than `loud_share` of the window's
    patches have a mean normalised log-mel above `level` (digital silence is -1.28), and label 1
    ("Silence") is its opposite: events that mean something on real audio, with no training.

    How: patch channel 0/1 = +-(patch mean - level); LayerNorm turns each patch token into +-1 by its sign;
    attention with q = k = 0 averages all tokens into the cls token, which also carries a constant, so the
    final LayerNorm keeps the share of loud patches; the head bias puts 0.5 at `loud_share`.
    """
    D = 8
    cfg = ModelConfig(num_classes=2, num_frames=num_frames, embed_dim=D, depth=1, num_heads=1)
    model = AST(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0 if name.endswith(("norm1.weight", "norm2.weight")) or name in
                    ("norm.weight", "mlp_head.0.weight") else 0.0)
        model.patch_embed.proj.weight[0].fill_(1 / 256)
        model.patch_embed.proj.weight[1].fill_(-1 / 256)
        model.patch_embed.proj.bias[:2] = torch.tensor([-level, level])
        for token in (model.cls_token, model.dist_token):
            token[0, 0, 2:4] = torch.tensor([1.0, -1.0])
        block = model.blocks[0]
        block.attn.qkv.weight[2 * D:] = torch.eye(D)          # q = k = 0, v = identity
        block.attn.proj.weight.copy_(torch.eye(D))
        head = model.mlp_head[1]
        head.weight[:, :2] = torch.tensor([[10.0, -10.0], [-10.0, 10.0]])
        x = torch.full((1, num_frames, 128), -1.3)             # a window with loud_share loud patch columns
        x[:, :10 * (max(1, round(loud_share * cfg.grid[1])) - 1) + 16] = 0.0
        middle = model(x)[0, 0].item()
        head.bias[:] = torch.tensor([-middle, middle])
    labels = LabelSet.from_names(["Sound", "Silence"], ["/t/sound", "/t/silence"])
    return save_model_file(path, model, FeatureConfig(num_frames=num_frames), labels, {"data": "none (built)"})


class FakeScorer:
    """Stands in for Scorer: score 0 = 1 if any frame of the window is louder than silence, score 1 = mean
    log-mel of the window; `delay_s` makes it slow on purpose."""

    def __init__(self, num_frames: int = 128, delay_s: float = 0.0):
        self.features = FeatureConfig(num_frames=num_frames)
        self.device = torch.device("cpu")
        self.loaded = types.SimpleNamespace(labels=LabelSet.from_names(["burst", "level"]), name="fake")
        self.delay_s = delay_s
        self.calls = 0

    def describe(self) -> str:
        return "fake"

    def __call__(self, windows: torch.Tensor) -> np.ndarray:
        self.calls += 1
        time.sleep(self.delay_s)
        frame_level = windows.mean(dim=-1)                                     # (B, T)
        loud = ((frame_level > -10) & (frame_level != 0)).any(dim=1).float()   # 0 = padding
        return torch.stack([loud, windows.mean(dim=(1, 2))], dim=1).numpy()   # (B, 2)


def burst_signal(seconds: float = 6.0, at_s: float = 3.0, length_s: float = 0.2) -> np.ndarray:
    x = np.zeros(round(seconds * 16000), dtype=np.float32)
    a, b = round(at_s * 16000), round((at_s + length_s) * 16000)
    x[a:b] = 0.3 * np.sin(2 * np.pi * 440 * np.arange(b - a) / 16000)
    return x


def drain(results: queue.Queue, timeout_s: float = 60) -> tuple[list[TagFrame], TaggerEnd]:
    frames, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        item = results.get(timeout=timeout_s)
        if isinstance(item, TaggerEnd):
            return frames, item
        frames.append(item)
    raise AssertionError("the tagger did not end")


def run_stream(scorer, x: np.ndarray, rate_hz: int, config: TaggerConfig, block=None, realtime=False,
               on_audio=None):
    """Feed x into a ring like a capture callback (block sizes from `block`), tag it; (frames, end, tagger)."""
    ring = RingBuffer.for_seconds(30, rate_hz)
    tagger = StreamingTagger(scorer, CaptureReader(ring), config, on_audio=on_audio).start()
    rng = random.Random(0)
    i = 0
    while i < len(x):
        n = block or rng.randint(50, 3000)
        ring.write(x[i:i + n])
        i += n
        if realtime:
            time.sleep(n / rate_hz)
    ring.close()
    frames, end = drain(tagger.results)
    assert tagger.join(10)
    return frames, end, tagger


def test_windows_sit_on_the_file_grid_with_known_onsets(tmp_path):
    x = burst_signal()                                  # a 0.2 s tone at 3.0 s in 6 s of silence
    frames, end, tagger = run_stream(FakeScorer(), x, 16000, TaggerConfig(hop_s=0.25, skip_on_lag=False))
    assert end == TaggerEnd(96000, 6.0, None, False) and tagger.state == TaggerState.FINISHED
    # 598 fbank frames; window k = frames [25k, 25k + 128): 19 full windows, then one padded to the end
    assert [f.index for f in frames] == list(range(20))
    assert [f.padded for f in frames] == [False] * 19 + [True]
    assert all(f.start_sample == 4000 * f.index and f.start_s == 0.25 * f.index for f in frames)
    assert all(f.end_sample == f.start_sample + 20480 and f.end_s == f.start_s + 1.28 for f in frames[:-1])
    assert (frames[-1].end_sample, frames[-1].end_s) == (96000, 6.0)
    # the tone touches fbank frames 298..319, so exactly windows 7..12 hear it
    assert [k for k, f in enumerate(frames) if f.scores[0] == 1.0] == list(range(7, 13))
    assert not frames[0].scores.flags.writeable
    # ... the same windows and scores as file analysis of the same samples
    sf.write(tmp_path / "burst.wav", x, 16000, subtype="FLOAT")
    timeline = Analyzer(FakeScorer(), hop_s=0.25).analyze(str(tmp_path / "burst.wav"))
    np.testing.assert_array_equal(timeline.starts_s, [f.start_s for f in frames])
    np.testing.assert_array_equal(timeline.ends_s, [f.end_s for f in frames])
    np.testing.assert_allclose(timeline.scores, np.stack([f.scores for f in frames]), atol=1e-6)


def test_warm_up_emits_nothing_until_the_first_full_window():
    scorer = FakeScorer()
    ring = RingBuffer.for_seconds(10, 16000)
    tagger = StreamingTagger(scorer, CaptureReader(ring), TaggerConfig(hop_s=0.5)).start()
    first_window = 160 * 127 + 400                      # samples that complete window 0 (1.295 s)

    def settle(n: int) -> None:
        deadline = time.monotonic() + 10
        while tagger.stats().num_samples < n and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)

    assert tagger.warmup_progress == 0.0
    ring.write(np.full(8000, 0.1, np.float32))
    settle(8000)
    assert tagger.state == TaggerState.WARMING_UP and tagger.results.empty()
    assert tagger.warmup_progress == pytest.approx(48 / 128)
    ring.write(np.full(first_window - 8000 - 1, 0.1, np.float32))
    settle(first_window - 1)
    assert tagger.state == TaggerState.WARMING_UP and tagger.results.empty()
    assert tagger.warmup_progress == pytest.approx(127 / 128)
    ring.write(np.full(1, 0.1, np.float32))
    frame = tagger.results.get(timeout=10)
    assert (frame.index, frame.start_s, frame.end_s, frame.padded) == (0, 0.0, 1.28, False)
    assert tagger.state == TaggerState.RUNNING and tagger.warmup_progress == 1.0
    tagger.stop()
    frames, end = drain(tagger.results)
    assert frames == [] and end.stopped


def test_short_stream_gives_one_padded_window_like_a_short_file():
    frames, end, _ = run_stream(FakeScorer(), np.full(8000, 0.1, np.float32), 16000, TaggerConfig(hop_s=0.5))
    assert [(f.index, f.start_s, f.end_s, f.padded) for f in frames] == [(0, 0.0, 0.5, True)]
    frames, end, _ = run_stream(FakeScorer(), np.zeros(0, np.float32), 16000, TaggerConfig(hop_s=0.5))
    assert frames == [] and end.num_samples == 0


def test_slow_inference_skips_to_the_newest_window_instead_of_drifting():
    x = burst_signal(seconds=4.0)
    scorer = FakeScorer(delay_s=0.6)                    # slower than the 0.25 s hop
    frames, end, tagger = run_stream(scorer, x, 16000, TaggerConfig(hop_s=0.25), block=800, realtime=True)
    stats = tagger.stats()
    live = [f for f in frames if not f.padded]
    # 398 frames: live windows 0..10 (one padded window 11 at the end)
    assert [f.index for f in frames if f.padded] == [11] and live[-1].index == 10
    assert [f.index for f in live] == sorted({f.index for f in live})
    assert stats.windows_scored + stats.windows_skipped == 12 and stats.windows_skipped >= 3
    assert max(stats.lags_s) < 1.6, stats.lags_s   # without skipping the lag would grow to ~4 s
    assert min(stats.inference_s) >= 0.6


def test_capture_at_44k_through_the_ring_equals_file_analysis(tiny_hf_dir, esc50_clip, tmp_path):
    """A real model, the real clip taken to 44.1 kHz, callback-sized blocks: the same scores as analyze."""
    clip, _ = sf.read(esc50_clip, dtype="float32")       # 16 kHz
    up = StreamingResampler(16000, 44100)
    x, rate = np.concatenate([up.process(clip), up.flush()]), 44100
    sf.write(tmp_path / "clip44k.wav", x, rate, subtype="FLOAT")
    esc50_clip = tmp_path / "clip44k.wav"
    scorer = Scorer(load_model(tiny_hf_dir), "cpu")
    recorder = Recorder(tmp_path / "rec.wav")
    frames, end, _ = run_stream(scorer, x, rate, TaggerConfig(hop_s=0.5, skip_on_lag=False), on_audio=recorder.write)
    recorder.close()
    timeline = Analyzer(scorer, hop_s=0.5).analyze(str(esc50_clip))
    assert end.num_samples == round(timeline.duration_s * 16000)
    np.testing.assert_array_equal(timeline.starts_s, [f.start_s for f in frames])
    np.testing.assert_allclose(timeline.ends_s, [f.end_s for f in frames], atol=1e-9)
    np.testing.assert_allclose(timeline.scores, np.stack([f.scores for f in frames]), atol=1e-5)
    recorded = Analyzer(scorer, hop_s=0.5).analyze(str(tmp_path / "rec.wav"))   # the recording: same again
    np.testing.assert_allclose(recorded.scores, timeline.scores, atol=1e-5)


def test_audio_lost_to_an_overrun_leaves_a_gap_on_the_grid():
    scorer = FakeScorer()
    ring = RingBuffer.for_seconds(1.0, 16000)
    x = (np.random.default_rng(0).standard_normal(16000 * 4) * 0.1).astype(np.float32)
    ring.write(x[:16000 * 3])                           # 3 s into a 1 s ring before the tagger reads
    recorded = []
    tagger = StreamingTagger(scorer, CaptureReader(ring), TaggerConfig(hop_s=0.5),
                             on_audio=lambda s: recorded.append(s.copy())).start()
    time.sleep(0.2)
    ring.write(x[16000 * 3:])
    ring.close()
    frames, end = drain(tagger.results)
    stats = tagger.stats()
    assert stats.overruns == 1 and stats.lost_samples >= 2 * 16000 and stats.windows_lost >= 4
    assert frames[0].index * 8000 >= stats.lost_samples and all(f.start_sample % 8000 == 0 for f in frames)
    audio = np.concatenate(recorded)                    # the recording keeps stream time: zeros in the gap
    assert len(audio) == end.num_samples == len(x)
    assert not audio[:stats.lost_samples].any()
    np.testing.assert_array_equal(audio[stats.lost_samples:], x[stats.lost_samples:])


def test_tagger_config_checks_the_hop():
    assert TaggerConfig(hop_s=0.25).hop_s == 0.25
    for bad in (0.1, 6.0, 0.333):
        with pytest.raises(ConfigError, match="hop"):
            TaggerConfig(hop_s=bad)


def test_a_failing_model_ends_the_stream_with_the_error():
    class Broken(FakeScorer):
        def __call__(self, windows):
            raise RuntimeError("out of memory")

    frames, end, tagger = run_stream(Broken(), np.zeros(40000, np.float32), 16000, TaggerConfig())
    assert frames == [] and tagger.state == TaggerState.FAILED
    assert "RuntimeError: out of memory" in end.error


def test_energy_model_hears_the_bark(tmp_path, esc50_clip):
    """The helper model of the live tests: 'Sound' on around the clip's one bark (2.3-2.6 s), else 'Silence'."""
    scorer = Scorer(load_model(make_energy_model(tmp_path / "energy.safetensors")), "cpu")
    timeline = Analyzer(scorer, hop_s=0.25).analyze(str(esc50_clip))
    loud = timeline.starts_s[timeline.scores[:, 0] > 0.5]
    assert 1.4 <= loud.min() and loud.max() <= 2.3
    np.testing.assert_allclose(timeline.scores.sum(axis=1), 1.0, atol=1e-5)
