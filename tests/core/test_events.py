"""The event rule on synthetic score tracks with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from core.config import EventConfig
from core.errors import ConfigError
from core.events import detect_events, detect_label_events, median_filter, thresholds_for
from core.labels import LabelSet
from core.timeline import Timeline

LABELS = LabelSet.from_names(["Speech", "Dog", "Baby cry, infant cry"], ids=["/m/09x0r", "/m/0bt9lr", "/t/dd00002"])
SPEECH, DOG, BABY = 0, 1, 2


def make_timeline(tracks: dict[int, list[float]], window_s: float = 2.0, hop_s: float = 1.0,
                  duration_s: float | None = None) -> Timeline:
    """Windows k = 0..W-1 start at k * hop_s and end at min(start + window_s, duration_s)."""
    num_windows = len(next(iter(tracks.values()))) if tracks else 0
    if duration_s is None:
        duration_s = (num_windows - 1) * hop_s + window_s if num_windows else 0.0
    scores = np.zeros((num_windows, len(LABELS)), dtype=np.float32)
    for index, values in tracks.items():
        scores[:, index] = values
    starts = np.arange(num_windows) * hop_s
    ends = np.minimum(starts + window_s, duration_s)
    return Timeline(source="clip.wav", labels=LABELS, starts_s=starts, ends_s=ends, scores=scores,
                    duration_s=duration_s, window_s=window_s, hop_s=hop_s, model_name="test")


def config(**overrides) -> EventConfig:
    values = dict(on_threshold=0.5, off_threshold=0.3, median_windows=1, min_duration_s=0.0, merge_gap_s=0.0)
    values.update(overrides)
    return EventConfig(**values)


def spans(events) -> list[tuple[float, float]]:
    return [(e.start_s, e.end_s) for e in events]


def test_one_block_gives_one_event_with_computed_times_and_scores():
    # window 2 s, hop 1 s: centre of window k is k + 1; a run i..j spans [c_i - 0.5, c_j + 0.5]
    track = [0, 0, 0, 0.7, 0.95, 0.8, 0, 0, 0, 0]
    for median in (1, 3):
        events = detect_events(make_timeline({DOG: track}), config(median_windows=median))
        assert len(events) == 1
        e = events[0]
        assert (e.label_index, e.start_s, e.end_s) == (DOG, 3.5, 6.5)
        assert e.peak_score == pytest.approx(0.95)
        assert e.mean_score == pytest.approx((0.7 + 0.95 + 0.8) / 3)
        assert e.peak_time_s == 5.0   # centre of window 4


def test_hysteresis_stays_open_through_a_dip_above_off_and_closes_below_off():
    track = [0, 0.6, 0.4, 0.6, 0.2, 0.4, 0, 0]
    events = detect_events(make_timeline({SPEECH: track}), config())
    # open at window 1, through the 0.4 dip, closed at window 4 (0.2 < off); window 5 (0.4 < on) opens nothing
    assert spans(events) == [(1.5, 4.5)]


def test_event_opens_at_the_first_window_above_on_not_above_off():
    events = detect_events(make_timeline({SPEECH: [0, 0.4, 0.6, 0.6, 0, 0]}), config())
    assert spans(events) == [(2.5, 4.5)]


def test_median_filter_removes_a_one_window_spike_only_when_on():
    track = [0, 0, 0, 0.9, 0, 0, 0]
    assert detect_events(make_timeline({SPEECH: track}), config(median_windows=3)) == []
    assert spans(detect_events(make_timeline({SPEECH: track}), config(median_windows=1))) == [(3.5, 4.5)]


def test_median_filter_shrinks_at_the_edges():
    np.testing.assert_allclose(median_filter(np.array([1.0, 2.0, 3.0, 10.0]), 3), [1.5, 2.0, 3.0, 6.5])
    np.testing.assert_allclose(median_filter(np.array([5.0, 0.0, 0.0, 0.0, 0.0, 9.0]), 5),
                               [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(median_filter(np.array([1.0, np.nan, 3.0]), 1), [1.0, 0.0, 3.0])
    # zero padding would give 0 at window 0; the shrunk window gives median(0.9, 0) = 0.45 >= on
    events = detect_events(make_timeline({SPEECH: [0.9, 0, 0, 0, 0]}), config(on_threshold=0.4, median_windows=3))
    assert spans(events) == [(0.0, 1.5)]


def test_gap_merge_joins_runs_and_recomputes_peak_and_mean_over_their_windows():
    track = [0, 0.8, 0.8, 0, 0, 0.6, 1.0, 0, 0]
    timeline = make_timeline({DOG: track})
    assert spans(detect_events(timeline, config(merge_gap_s=2.0))) == [(1.5, 3.5), (5.5, 7.5)]  # gap 2 is not < 2
    [merged] = detect_events(timeline, config(merge_gap_s=2.5))
    assert (merged.start_s, merged.end_s) == (1.5, 7.5)
    assert merged.peak_score == pytest.approx(1.0)
    assert merged.peak_time_s == 7.0
    assert merged.mean_score == pytest.approx((0.8 + 0.8 + 0.6 + 1.0) / 4)   # gap windows excluded


def test_min_duration_drops_short_events_after_merging():
    timeline = make_timeline({SPEECH: [0, 0, 0.9, 0, 0, 0.9, 0.9, 0.9, 0, 0]})
    assert spans(detect_events(timeline, config(min_duration_s=1.5))) == [(5.5, 8.5)]
    assert spans(detect_events(timeline, config(min_duration_s=1.0))) == [(2.5, 3.5), (5.5, 8.5)]
    two_short = make_timeline({SPEECH: [0, 0.9, 0, 0.9, 0]})
    assert detect_events(two_short, config(min_duration_s=2.5)) == []
    assert spans(detect_events(two_short, config(min_duration_s=2.5, merge_gap_s=1.5))) == [(1.5, 4.5)]


def test_first_and_last_windows_extend_to_zero_and_duration():
    timeline = make_timeline({SPEECH: [0.9, 0.9, 0, 0, 0.9, 0.9]}, duration_s=7.3)
    assert spans(detect_events(timeline, config())) == [(0.0, 2.5), (4.5, 7.3)]


def test_single_padded_window_covers_the_file_and_peak_time_is_clipped():
    timeline = make_timeline({BABY: [0.7]}, window_s=10.24, hop_s=1.0, duration_s=3.0)
    [e] = detect_events(timeline, config())
    assert (e.start_s, e.end_s, e.peak_time_s) == (0.0, 3.0, 3.0)


def test_no_windows_gives_no_events():
    assert detect_events(make_timeline({}), config()) == []
    empty = np.zeros(0)
    assert detect_label_events(empty, empty, empty, 1.0, 0.0, 0.5, 0.3, 3, 0.0, 1.0, 0) == []


def test_nan_scores_count_as_zero():
    events = detect_events(make_timeline({DOG: [0, 0.9, np.nan, 0.9, 0]}), config())
    assert spans(events) == [(1.5, 2.5), (3.5, 4.5)]
    assert all(np.isfinite([e.peak_score, e.mean_score]).all() for e in events)
    [e] = detect_events(make_timeline({DOG: [0, 0.9, np.nan, 0.9, 0]}), config(merge_gap_s=1.5))
    assert e.mean_score == pytest.approx(0.9)


def test_per_label_thresholds_keep_the_off_ratio_and_apply():
    cfg = config(on_threshold=0.5, off_threshold=0.25,
                 label_thresholds=(("Dog", 0.8), ("/m/09x0r", 0.4), ("baby CRY, infant cry", 0.6)))
    np.testing.assert_allclose(thresholds_for(LABELS, cfg), [[0.4, 0.2], [0.8, 0.4], [0.6, 0.3]])
    track = [0, 0.7, 0.7, 0]
    events = detect_events(make_timeline({SPEECH: track, DOG: track}), cfg)
    assert [e.label_index for e in events] == [SPEECH]   # Dog needs 0.8


def test_unknown_label_key_raises_config_error_with_valid_names():
    with pytest.raises(ConfigError, match="Dog"):
        thresholds_for(LABELS, config(label_thresholds=(("Dgo", 0.8),)))
    with pytest.raises(ConfigError, match="Speech"):
        detect_events(make_timeline({SPEECH: [0.9]}), config(label_thresholds=(("Cat", 0.8),)))


def test_events_sorted_by_start_then_label_index():
    block = [0, 0.9, 0.9, 0, 0]
    events = detect_events(make_timeline({BABY: block, SPEECH: [0, 0, 0, 0.9, 0], DOG: block}), config())
    assert [(e.start_s, e.label_index) for e in events] == [(1.5, DOG), (1.5, BABY), (3.5, SPEECH)]


def test_times_are_rounded_to_milliseconds():
    num_windows = 7000
    track = np.zeros(num_windows)
    track[6066:6080] = 0.9
    timeline = make_timeline({SPEECH: track.tolist()}, window_s=0.96, hop_s=0.1)
    [e] = detect_events(timeline, config())
    for t in (e.start_s, e.end_s, e.peak_time_s):
        assert t == round(t, 3)
        assert len(repr(t).split(".")[1]) <= 3
    assert e.start_s == pytest.approx(6066 * 0.1 + 0.48 - 0.05)


def test_detect_label_events_defaults_window_to_the_longest_window():
    starts = np.arange(4) * 1.0
    ends = np.minimum(starts + 2.0, 4.5)   # last window padded (ends at 4.5)
    events = detect_label_events(np.array([0, 0.9, 0, 0]), starts, ends, 1.0, 4.5, 0.5, 0.3, 1, 0.0, 0.0, 7)
    assert [(e.label_index, e.start_s, e.end_s, e.peak_time_s) for e in events] == [(7, 1.5, 2.5, 2.0)]


def test_rule_for_drops_thresholds_of_labels_a_model_lacks_and_keeps_the_rest():
    from core.events import rule_for
    labels = LabelSet.from_names(["Dog", "Speech"], ["/m/dog", "/m/speech"])
    config = EventConfig(label_thresholds=(("/m/dog", 0.6), ("Church bell", 0.4)))
    kept = rule_for(config, labels)
    assert kept.label_thresholds == (("/m/dog", 0.6),)
    assert thresholds_for(labels, kept)[0, 0] == 0.6
    assert rule_for(kept, labels) is kept
    with pytest.raises(ConfigError):                       # the strict check still refuses typed input
        thresholds_for(labels, config)
