"""The timeline view on a 10-minute file, to judge it by eye, and its offscreen screenshot.

    python -m app.timeline_demo out.png [--size 1366x768]           # a made-up analysis (below)
    python -m app.timeline_demo out.png --audio recording.flac     # a real one, as the window makes it

Made up (the default; nothing in it is measured): 20 of the shipped model's labels each sound a few times
in 600 s (bursts of 2 to 25 s), windows of 5.12 s at a 1 s hop score them by how much of the burst they
hold, over a little noise, and the events come from core.events with the default rule, as in a real
analysis. The display image is drawn from the same bursts (each label a band of mel rows) over quiet noise,
at the 0.1 s columns that app.workers gives a 10-minute file. --audio analyses a real file on the CPU with
the window's own worker (app.workers.AnalysisWorker) and model (the shipped default unless --model) at a
1 s hop and the default event rule. GUI thread, plus the worker's thread for --audio.
"""
from __future__ import annotations

import argparse
import queue
import sys

import numpy as np
import torch
from PySide6 import QtCore, QtWidgets

from core.config import EventConfig, FeatureConfig
from core.errors import TaggerError
from core.events import detect_events
from core.labels import ESC50_CSV, LabelSet
from core.modelfile import load_model
from core.timeline import Event, Timeline
from core.windows import ends_s, starts_s
from app import make_application
from app.events_table import EventsTable
from app.timeline_view import TimelinePanel
from app.workers import AnalysisWorker, JobDone, JobFailed, JobProgress, set_cpu_threads

__all__ = ["demo_file", "analysed_file", "main"]

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


def analysed_file(path: str, model_spec: str | None = None, hop_s: float = 1.0
                  ) -> tuple[FeatureConfig, np.ndarray, float, Timeline, list[Event]]:
    """(features, display image, column_s, timeline, events) of a real analysis of `path` on the CPU, by
    the window's worker; ValueError with the worker's reason when the file cannot be analysed."""
    set_cpu_threads()
    loaded = load_model(model_spec)
    results: queue.Queue = queue.Queue()
    worker = AnalysisWorker(results)
    worker.set_model(loaded, torch.device("cpu"), hop_s)
    worker.submit(path)
    try:
        while isinstance(item := results.get(), JobProgress):
            pass
    finally:
        worker.shutdown()
    if isinstance(item, JobFailed):
        raise ValueError(f"{path}: {item.message}")
    assert isinstance(item, JobDone), item
    column_s = item.frames_per_column * loaded.features.frame_shift_s
    return (loaded.features, item.spectrogram, column_s, item.timeline,
            detect_events(item.timeline, EventConfig()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="PNG to write")
    parser.add_argument("--size", default="1366x768", help="window size, WIDTHxHEIGHT")
    parser.add_argument("--seed", type=int, default=0, help="of the made-up analysis")
    parser.add_argument("--audio", help="analyse this audio file instead of making one up")
    parser.add_argument("--model", help="the model for --audio (default: the shipped one)")
    parser.add_argument("--range", nargs=2, type=float, metavar=("START_S", "END_S"), help="zoom the detail to this")
    parser.add_argument("--select", type=int, metavar="EVENT", help="select this event (its index)")
    args = parser.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size must be WIDTHxHEIGHT, e.g. 1366x768, got {args.size!r}")

    app = make_application()
    try:
        shown = analysed_file(args.audio, args.model) if args.audio else demo_file(args.seed)
    except (OSError, ValueError, TaggerError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    features, image, column_s, timeline, events = shown
    window = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
    panel, table = TimelinePanel(), EventsTable(review=True)
    window.addWidget(panel)
    window.addWidget(table)
    panel.set_file(features, image, column_s, timeline, events)
    table.set_events(events, timeline)
    table.eventSelected.connect(panel.select_event)
    table.minPeakChanged.connect(panel.set_min_peak)
    panel.eventActivated.connect(table.select_event)
    panel.set_playhead(timeline.duration_s / 3)
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
