"""The view pieces on their own: bar ranking with hysteresis, the Hz axis, the live ring, painting safety."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from app.spectrogram_view import SMOOTH_S, SpectrogramView, mel_ticks, quantize, spectrogram_levels
from app.tags_view import BarRanking, BarRow, ConfidenceBars
from core.config import FeatureConfig


def test_ranking_keeps_its_order_while_scores_jitter():
    ranking = BarRanking(num_rows=3, margin=0.1)
    base = np.array([0.9, 0.5, 0.45, 0.4, 0.0])
    assert ranking.update(base) == [0, 1, 2]
    rng = np.random.default_rng(0)
    for _ in range(50):                                   # +-0.04 noise never beats the 0.1 margin
        assert ranking.update(base + rng.uniform(-0.04, 0.04, 5)) == [0, 1, 2]


def test_ranking_lets_a_clearly_stronger_label_in_and_up():
    ranking = BarRanking(num_rows=3, margin=0.1)
    ranking.update(np.array([0.9, 0.5, 0.45, 0.4, 0.0]))
    assert ranking.update(np.array([0.9, 0.5, 0.45, 0.5, 0.0])) == [0, 1, 2]   # 0.5 vs 0.45: not enough
    assert ranking.update(np.array([0.9, 0.5, 0.45, 0.6, 0.0])) == [0, 1, 3]   # replaces the weakest
    assert ranking.update(np.array([0.9, 0.5, 0.45, 0.95, 0.0])) == [0, 3, 1]  # one step up: 0.95 beats 0.5, not 0.9 + 0.1
    assert ranking.update(np.array([0.7, 0.5, 0.45, 0.95, 0.0])) == [3, 0, 1]


def test_ranking_puts_pins_first_and_honours_the_filter():
    ranking = BarRanking(num_rows=3, margin=0.1)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.01])
    allowed = np.array([False, True, True, True, True])
    assert ranking.update(scores, allowed, pinned=[4]) == [4, 1, 2]        # pin shown even at 0.01
    assert ranking.update(scores, allowed, pinned=[4, 2]) == [4, 2, 1]
    assert ranking.update(np.full(5, np.nan)) == [1]                      # NaN = not scored; kept, none added


def test_ranking_drops_silent_labels_and_orders_low_scores():
    ranking = BarRanking(num_rows=4, margin=0.1, floor=0.05)
    assert ranking.update(np.array([0.9, 0.8, 0.7, 0.6, 0.0])) == [0, 1, 2, 3]
    assert ranking.update(np.array([0.0, 0.05, 0.12, 0.01, 0.0])) == [2, 1]      # no zeros; 0.12 above 0.05
    assert ranking.update(np.array([0.0, 0.03, 0.12, 0.04, 0.0])) == [2, 1]      # 0.03 stays (above 0.025), 0.04 is not in
    assert ranking.update(np.array([0.0, 0.65, 0.6, 0.0, 0.0])) == [2, 1]        # 0.65 over 0.6: jitter, no swap


def test_mel_ticks_put_hz_on_the_kaldi_mel_rows():
    features = FeatureConfig()
    ticks = dict((text, y) for y, text in mel_ticks(features))
    assert list(ticks) == ["50 Hz", "100 Hz", "200 Hz", "500 Hz", "1 kHz", "2 kHz", "4 kHz"]
    mel = lambda hz: 1127.0 * math.log(1.0 + hz / 700.0)  # noqa: E731
    delta = (mel(8000) - mel(20)) / 129
    centres = [700 * (math.exp((mel(20) + (i + 1) * delta) / 1127) - 1) for i in range(128)]   # Hz of row i
    below = max(i for i, c in enumerate(centres) if c <= 1000)       # rows span [i, i + 1], centre at i + 0.5
    assert below + 0.5 <= ticks["1 kHz"] <= below + 1.5


def test_quantize_maps_the_fixed_levels_to_0_and_255():
    levels = spectrogram_levels(FeatureConfig(mean=-6.0, std=4.0))
    assert levels == (-12.0, 4.0)
    frames = np.array([[-20.0, -12.0, -4.0, 4.0, 9.0]], dtype=np.float32)      # (N=1, F=5)
    assert quantize(frames, levels).ravel().tolist() == [0, 0, 127, 255, 255]
    assert quantize(frames, levels).shape == (5, 1)                                # (F, N)


def test_the_live_ring_scrolls_by_stream_time_and_leaves_gaps_dark(qtbot):
    view = SpectrogramView(history_s=1.0)                  # 100 columns
    qtbot.addWidget(view)
    features = FeatureConfig(num_mel_bins=4, mean=0.0, std=1.0)
    view.start_live(features)
    loud = np.full((30, 4), 2.5, dtype=np.float32)
    view.add_frames(0, loud)
    assert view.refresh()
    image = view.spec_image.image
    assert image.shape == (4, 100) and (image[:, -30:] == 255).all() and (image[:, :-30] == 0).all()
    view.add_frames(50, loud[:10])                         # frames 30-49 were lost: they stay dark
    view.refresh()
    image = view.spec_image.image
    assert (image[:, -10:] == 255).all() and (image[:, -30:-10] == 0).all() and (image[:, -60:-30] == 255).all()
    assert view.live_end_s == pytest.approx(0.6)
    x0, x1 = view.spec_plot.getViewBox().viewRange()[0]
    assert x0 == pytest.approx(-0.4) and x1 == pytest.approx(0.6)
    view._arrival -= 1.0                                   # no audio for a second: scroll at most SMOOTH_S on
    assert view.refresh() and not view.refresh()
    assert view.spec_plot.getViewBox().viewRange()[0][1] == pytest.approx(0.6 + SMOOTH_S)


def test_painting_does_not_eat_references_to_none(qtbot):
    """PySide6 6.12.0 under Python 3.11 dropped a reference to None on every void QPainter call, and the
    app died with 'none_dealloc' seconds into listening. This paints the live views many times."""
    view = SpectrogramView()
    bars = ConfidenceBars()
    for w in (view, bars):
        qtbot.addWidget(w)
        w.resize(600, 300)
        w.show()
    view.start_live(FeatureConfig(num_frames=512))
    bars.set_rows([BarRow("Dog", 0.7, 0.3, True), BarRow("Speech", 0.2, 0.3, False, pinned=True)])
    before = sys.getrefcount(None)
    for i in range(300):
        view.add_frames(5 * i, np.random.default_rng(i).normal(-6, 3, (5, 128)).astype(np.float32))
        view.refresh()
        view.repaint()
        bars.repaint()
    assert sys.getrefcount(None) >= before - 10


def test_the_file_display_is_max_pooled_the_same_for_any_chunking():
    from app.workers import _Pooler
    frames = np.random.default_rng(1).normal(size=(1003, 4)).astype(np.float32)
    pooler = _Pooler(10)
    for a, b in ((0, 7), (7, 260), (260, 261), (261, 1003)):
        pooler.push(a, frames[a:b])
    pooled = pooler.result(4)
    assert pooled.shape == (101, 4)                                  # 100 whole groups + the 3-frame rest
    assert np.array_equal(pooled[:100], frames[:1000].reshape(100, 10, 4).max(axis=1))
    assert np.array_equal(pooled[100], frames[1000:].max(axis=0))
    assert _Pooler(10).result(4).shape == (0, 4)
