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
    values = dict(on_threshold=0.5, off_threshold=0.3, median_s=0.0, min_duration_s=0.0, merge_gap_s=0.0)
    values.update(overrides)
    return EventConfig(**values)


def spans(events) -> list[tuple[float, float]]:
    return [(e.start_s, e.end_s) for e in events]


def test_one_block_gives_one_event_with_computed_times_and_scores():
    # window 2 s, hop 1 s: centre of window k is k + 1; a run i..j spans [c_i - 0.5, c_j + 0.5]
    track = [0, 0, 0, 0.7, 0.95, 0.8, 0, 0, 0, 0]
    for median_s in (1.0, 3.0):
        events = detect_events(make_timeline({DOG: track}), config(median_s=median_s))
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


def test_median_bridges_a_one_window_dip_only_when_on():
    track = [0, 0.9, 0.9, 0.1, 0.9, 0.9, 0]
    assert spans(detect_events(make_timeline({SPEECH: track}), config(median_s=3.0))) == [(1.5, 6.5)]
    assert spans(detect_events(make_timeline({SPEECH: track}), config(median_s=1.0))) == [(1.5, 3.5), (4.5, 6.5)]


def test_median_filter_takes_the_lower_middle_of_the_neighbours_that_exist_at_the_edges():
    # every output is one of the inputs: no zero padding, no mean of two neighbours at the ends
    np.testing.assert_allclose(median_filter(np.array([1.0, 2.0, 3.0, 10.0]), 3), [1.0, 2.0, 3.0, 3.0])
    np.testing.assert_allclose(median_filter(np.array([5.0, 0.0, 0.0, 0.0, 0.0, 9.0]), 5),
                               [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(median_filter(np.array([4.0, 0.0, 7.0, 1.0, 5.0]), 5), [4.0, 1.0, 4.0, 1.0, 5.0])
    np.testing.assert_allclose(median_filter(np.array([1.0, np.nan, 3.0]), 1), [1.0, 0.0, 3.0])
    np.testing.assert_allclose(median_filter(np.array([0.0, 0.9, 0.9]), 9), [0.9, 0.9, 0.9])   # fewer values than 9
    events = detect_events(make_timeline({SPEECH: [0.9, 0, 0, 0, 0]}), config(on_threshold=0.4, median_s=3.0))
    assert spans(events) == [(0.0, 1.5)]
    # the edge keeps the context that exists: a dip near the start is bridged by the loud windows after
    # it (a neighbourhood cut symmetrically to {1, 0.1, 0.1} closed the event there, so the events near a
    # file's start depended on where the file began)
    dip = [1, 0.1, 0.1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    assert spans(detect_events(make_timeline({SPEECH: dip}), config(median_s=7.0))) == [(0.0, 8.5)]


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


# ---- defect 13: a reported confidence is a score that crossed the threshold; lone windows; seconds ----------

def test_reported_peak_is_a_raw_score_that_reached_on():
    # the median at the last window (0.77, 0.006) opened an event whose only window scored 0.006
    track = np.array([0, 0, 0, 0.77, 0.006])
    starts = np.arange(5) * 1.0
    events = detect_label_events(track, starts, starts + 2.0, 1.0, 6.0, 0.3, 0.2, 3, 0.0, 1.0, 0)
    assert [(e.start_s, e.peak_score) for e in events] == [(3.5, pytest.approx(0.77))]
    assert events[0].peak_time_s == 4.0


def test_a_lone_strong_window_is_an_event_unless_min_duration_drops_it():
    track = [0, 0, 0.9, 0, 0]
    for median_s in (1.0, 3.0, 5.0):
        [e] = detect_events(make_timeline({SPEECH: track}), config(median_s=median_s))
        assert (e.start_s, e.end_s, e.peak_score) == (2.5, 3.5, pytest.approx(0.9))
    assert detect_events(make_timeline({SPEECH: track}), config(median_s=3.0, min_duration_s=1.5)) == []


@pytest.mark.parametrize("seed", range(20))
def test_every_event_peaks_at_or_above_its_on_threshold(seed):
    rng = np.random.default_rng(seed)
    track = np.clip(rng.normal(0.25, 0.2, 200) * (rng.random(200) < 0.6), 0, 1)
    for median_s in (1.0, 3.0, 5.0, 9.0):
        for e in detect_events(make_timeline({DOG: track.tolist()}), config(on_threshold=0.5, off_threshold=0.2,
                                                                            median_s=median_s)):
            assert e.peak_score >= 0.5
            assert e.mean_score <= e.peak_score


def test_median_length_is_in_seconds_so_the_hop_does_not_change_the_events():
    # 0-10 s loud, a 1 s dip, 11-20 s loud again, then quiet: the 3 s median bridges the dip at any hop
    def score(t: np.ndarray) -> np.ndarray:
        return np.where(((t >= 3) & (t < 10)) | ((t >= 11) & (t < 20)), 0.9, 0.05)

    found = {}
    for hop in (1.0, 0.5, 0.25, 0.1):
        starts = np.round(np.arange(0, 30, hop), 6)
        timeline = make_timeline({DOG: score(starts).tolist()}, window_s=2.0, hop_s=hop)
        found[hop] = spans(detect_events(timeline, config(median_s=3.0)))
    assert all(len(v) == 1 for v in found.values()), found
    for hop, [(start, end)] in found.items():
        assert start == pytest.approx(4.0, abs=hop) and end == pytest.approx(21.0, abs=hop)


def test_median_windows_for_a_hop():
    from core.events import median_windows
    assert [median_windows(3.0, hop) for hop in (1.0, 0.5, 0.25, 0.1, 2.0, 5.0)] == [3, 7, 13, 31, 1, 1]
    assert median_windows(0.0, 1.0) == median_windows(1.0, 1.0) == 1
    assert all(median_windows(float(n), 1.0) == n for n in (1, 3, 5, 7))   # N s at a 1 s hop: N windows


def test_saved_median_in_windows_is_read_as_seconds_at_its_hop():
    old = {"on_threshold": 0.5, "off_threshold": 0.25, "median_windows": 5, "min_duration_s": 0.0,
           "merge_gap_s": 1.0}
    config_ = EventConfig.from_saved(old, hop_s=0.5)
    assert config_.median_s == 2.5 and config_.on_threshold == 0.5
    from core.events import median_windows
    assert median_windows(config_.median_s, 0.5) == 5
    assert EventConfig.from_saved({"median_s": 2.0}, hop_s=0.1).median_s == 2.0
    with pytest.raises(ConfigError, match="median_s"):
        EventConfig.from_saved({"median": 3}, hop_s=1.0)


def test_median_seconds_must_be_a_finite_non_negative_number():
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="median"):
            EventConfig(median_s=bad)


def test_open_at_end_follows_the_rule_not_the_raw_scores():
    from core.events import open_at_end
    args = dict(on=0.5, off=0.3, median_s=3.0, hop_s=1.0)
    assert open_at_end(np.array([0, 0, 0.9]), **args)                 # a raw crossing opens
    assert open_at_end(np.array([0, 0.9, 0.9, 0.1]), **args) is False   # at the end the median is the last score
    assert open_at_end(np.array([0, 0.9, 0.9, 0.1, 0.9]), **args)
    assert open_at_end(np.array([0.9, 0.9, 0.1, 0.9, 0.9, 0.1, 0.2]), **args) is False
    assert open_at_end(np.array([0.9, 0.35, 0.1, 0.35, 0.35]), **args)   # the median bridges the 0.1: raw
                                                                          # hysteresis (the old bars) had closed
    assert open_at_end(np.array([0.9, 0.9, 0.2, 0.9, 0.9]), **args)
    assert not open_at_end(np.array([0.4, 0.45, 0.4]), **args)          # above off, but never reached on
    assert not open_at_end(np.zeros(0), **args)
    track = np.array([0, 0.9, 0.1, 0.9, 0.9, 0.35, 0.2, 0.9, 0.1, 0.1, 0.1])
    for w in range(1, len(track) + 1):   # the same answer as the event rule on the windows so far
        starts = np.arange(w) * 1.0
        events = detect_label_events(track[:w], starts, starts + 2.0, 1.0, w + 1.0, 0.5, 0.3, 3.0, 0.0, 0.0, 0)
        assert open_at_end(track[:w], **args) == (bool(events) and events[-1].end_s == w + 1.0), w
