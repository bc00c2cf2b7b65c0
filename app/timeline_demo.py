"""A synthetic 10-minute analysis to judge the timeline view by eye, and its offscreen screenshot.

    python -m app.timeline_demo out.png [--size 1366x768]

Nothing here is measured: 20 of the shipped model's labels each sound a few times in 600 s (bursts of 2 to
25 s), windows of 5.12 s at a 1 s hop score them by how much of the burst they hold, over a little noise,
and the events come from core.events with the default rule, as in a real analysis. The display image is
drawn from the same bursts (each label a band of mel rows) over quiet noise, at the 0.1 s columns that
app.workers gives a 10-minute file. GUI thread only.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from PySide6 import QtCore, QtWidgets

from core.config import EventConfig, FeatureConfig
from core.events import detect_events
from core.labels import ESC50_CSV, LabelSet
from core.timeline import Event, Timeline
from core.windows import ends_s, starts_s
from app import make_application
from app.events_table import EventsTable
from app.timeline_view import TimelinePanel

__all__ = ["demo_file", "main"]

WINDOW_S, HOP_S, COLUMN_S = 5.12, 1.0, 0.1


def demo_file(seed: int = 0, duration_s: float = 600.0, num_labels: int = 20, bursts: int = 130
              ) -> tuple[FeatureConfig, np.ndarray, float, Timeline, list[Event]]:
    """(features, (128, C) uint8 image, column_s, timeline, events) of a made-up analysis of duration_s."""
    rng = np.random.default_rng(seed)
    labels = LabelSet.from_csv(ESC50_CSV)
    sounding = rng.choice(len(labels), size=num_labels, replace=False)
    weights = rng.pareto(1.2, num_labels) + 0.3                        # a few labels sound often, most rarely
    who = rng.choice(sounding, size=bursts, p=weights / weights.sum())
    start = rng.uniform(0, duration_s - 2, bursts)
    end = np.minimum(start + rng.uniform(2, 25, bursts) ** rng.uniform(0.7, 1.0, bursts) + 1, duration_s)
    peak = rng.uniform(0.35, 1.0, bursts)

    num_windows = int(np.ceil(max(duration_s - WINDOW_S, 0) / HOP_S)) + 1
    win_start = starts_s(0, num_windows, HOP_S)
    win_end = ends_s(win_start, WINDOW_S, duration_s)
    scores = rng.beta(1, 40, (num_windows, len(labels))).astype(np.float32)      # (W, L) quiet noise
    for label, a, b, p in zip(who, start, end, peak):
        held = np.clip(np.minimum(win_end, b) - np.maximum(win_start, a), 0, None) / min(WINDOW_S, b - a)
        scores[:, label] = np.maximum(scores[:, label], p * held * rng.uniform(0.85, 1.0, num_windows))
    timeline = Timeline(source="demo:synthetic-10-min", labels=labels, starts_s=win_start, ends_s=win_end,
                        scores=scores, duration_s=duration_s, window_s=WINDOW_S, hop_s=HOP_S,
                        model_name="synthetic scores (app.timeline_demo)")
    events = detect_events(timeline, EventConfig())

    features = FeatureConfig()
    F, C = features.num_mel_bins, int(np.ceil(duration_s / COLUMN_S))
    rows = np.arange(F)[:, None]
    image = 55 - 0.2 * rows + rng.normal(0, 10, (F, C))                 # quiet noise, darker up high
    band_centre = rng.uniform(10, 110, len(labels))
    band_width = rng.uniform(3, 14, len(labels))
    for label, a, b, p in zip(who, start, end, peak):
        cols = slice(int(a / COLUMN_S), int(np.ceil(b / COLUMN_S)))
        width = cols.stop - cols.start
        pulse = 0.6 + 0.4 * np.abs(np.sin(np.arange(width) * rng.uniform(0.1, 0.8)))    # syllables, strokes
        for harmonic in (1.0, 1.6, 2.1):
            centre = band_centre[label] * harmonic
            band = np.exp(-0.5 * ((rows - centre) / band_width[label]) ** 2)             # (F, 1)
            image[:, cols] += 150 * p / harmonic * band * pulse
    return features, np.clip(image, 0, 255).astype(np.uint8), COLUMN_S, timeline, events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="PNG to write")
    parser.add_argument("--size", default="1366x768", help="window size, WIDTHxHEIGHT")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--range", nargs=2, type=float, metavar=("START_S", "END_S"), help="zoom the detail to this")
    parser.add_argument("--select", type=int, metavar="EVENT", help="select this event (its index)")
    args = parser.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size must be WIDTHxHEIGHT, e.g. 1366x768, got {args.size!r}")

    app = make_application()
    features, image, column_s, timeline, events = demo_file(args.seed)
    window = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
    panel, table = TimelinePanel(), EventsTable(review=True)
    window.addWidget(panel)
    window.addWidget(table)
    panel.set_file(features, image, column_s, timeline, events)
    table.set_events(events, timeline)
    table.eventSelected.connect(panel.select_event)
    table.minPeakChanged.connect(panel.set_min_peak)
    panel.eventActivated.connect(table.select_event)
    panel.set_playhead(200.0)
    if args.range:
        panel.show_range(*args.range)
    if args.select is not None:
        panel.select_event(args.select)
        table.select_event(args.select)
    window.setWindowTitle(f"{timeline.source}: {len(events)} events")
    window.resize(width, height)
    window.setSizes([width - table.sizeHint().width(), table.sizeHint().width()])   # the table takes what it needs
    window.show()
    for _ in range(5):
        app.processEvents()
    window.grab().save(args.out)
    print(f"wrote {args.out}: {len(events)} events, {len(panel.lanes)} lanes, {width}x{height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
