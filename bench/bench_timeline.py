"""Benchmark: GUI thread time to pan and zoom a 10-minute file's timeline, lanes vs text over the spectrogram.

The file is app.timeline_demo's made-up 10-minute analysis (600 s at a 1 s hop, 20 labels, about 100 events
from core.events' rule, a 6000-column display image as app.workers makes for 10 minutes), also with ten times
the events on the same labels. Each step moves the view (a pan of a 60 s view by 5 s, or a wheel-sized zoom
of 0.9 / 1.1 about the centre) and repaints the plots at once (viewport().repaint()), timed as the GUI thread
spends it.

- **lanes**: app.timeline_view.TimelinePanel (overview, detail, one BarGraphItem per lane);
- **lanes: playhead tick**: the same panel during playback, the playhead moved by 1/30 s and Qt's repaint of
  what moved (processEvents), as a window's 30 Hz timer would do it;
- **text over spectrogram** (reference, the Files tab before issue 12): app.spectrogram_view.SpectrogramView
  showing the file with the same events drawn as that tab drew them (a LinearRegionItem and a TextItem per
  event; `text_over_spectrogram` below keeps that code, which the app no longer has).

Usage: python bench/bench_timeline.py [--steps 120] [--size 1366x768] [--json PATH]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
RESULTS = ROOT / "bench" / "results"

import numpy as np  # noqa: E402


def ten_times(events, duration_s: float, seed: int = 0) -> list:
    """Ten 1-s events per original event, on the same labels, spread over the file."""
    from core.timeline import Event
    rng = np.random.default_rng(seed)
    starts = rng.uniform(0, duration_s - 1, 10 * len(events))
    return sorted((Event(e.label_index, float(s), float(s) + 1.0, e.peak_score, e.mean_score, float(s) + 0.5)
                   for e, s in zip(np.repeat(events, 10), starts)), key=lambda e: e.start_s)


def time_steps(set_range, repaint, steps: int, duration_s: float) -> list[float]:
    """ms per step: half pans of a 60 s view by 5 s, half zooms by 0.9 / 1.1 about the centre."""
    times = []
    start, width = 0.0, 60.0
    for k in range(steps):
        if k < steps // 2:
            start = (start + 5.0) % (duration_s - width)
        else:
            width = min(max(width * (0.9 if (k // 10) % 2 else 1.1), 5.0), duration_s)
            start = min(max(300.0 - width / 2, 0.0), duration_s - width)
        t0 = time.perf_counter()
        set_range(start, start + width)
        repaint()
        times.append(1000 * (time.perf_counter() - t0))
    return times


def text_over_spectrogram(features, image, column_s: float, spans: list) -> tuple:
    """(view, items): the Files tab before issue 12, a SpectrogramView with the file's image and, per
    (start_s, end_s, name, colour), a shaded region and its name over the spectrogram (names for the first 200)."""
    import pyqtgraph as pg
    from PySide6 import QtCore
    from app.spectrogram_view import SpectrogramView

    view = SpectrogramView()
    view.set_features(features)
    view.spec_image.setImage(image, levels=(0, 255), autoLevels=False)
    view.spec_image.setRect(QtCore.QRectF(0, 0, column_s * image.shape[1], features.num_mel_bins))
    items = []
    for i, (start, end, name, color) in enumerate(spans):
        items.append(pg.LinearRegionItem((start, end), movable=False, pen=pg.mkPen(color, width=1),
                                         brush=pg.mkBrush(color.red(), color.green(), color.blue(), 40)))
        if len(spans) <= 200:
            items.append(pg.TextItem(name[:24], color=color, anchor=(0, 0)))
            items[-1].setPos(start, features.num_mel_bins - 2 - 10 * (i % 4))
    for item in items:
        item.setZValue(10)
        view.spec_plot.addItem(item)
    return view, items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--size", default="1366x768")
    parser.add_argument("--json", default=str(RESULTS / "timeline-cpu.json"))
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    from app import make_application
    from app.lanes import event_colours
    from app.timeline_demo import demo_file
    from app.timeline_view import TimelinePanel

    app = make_application()
    features, image, column_s, timeline, events = demo_file()
    duration = timeline.duration_s
    rows = []
    for name, chosen in (("100 events", events), ("10x events", ten_times(events, duration))):
        panel = TimelinePanel()
        panel.resize(width, height)
        panel.set_file(features, image, column_s, timeline, chosen)
        panel.show()
        app.processEvents()
        lanes = time_steps(panel.show_range, panel.graphics.viewport().repaint, args.steps, duration)
        items = len(panel.lane_plot.getViewBox().addedItems)
        panel.show_range(100.0, 160.0)
        playhead = []
        for k in range(args.steps):                        # playback: 30 ticks per second, Qt repaints what moved
            t0 = time.perf_counter()
            panel.set_playhead(100.0 + k / 30)
            app.processEvents()
            playhead.append(1000 * (time.perf_counter() - t0))
        panel.close()

        colours = event_colours(chosen, timeline)
        view, drawn = text_over_spectrogram(features, image, column_s, [
            (e.start_s, e.end_s, timeline.labels[e.label_index].name, colours[e.label_index]) for e in chosen])
        view.resize(width, height)
        view.show()
        app.processEvents()
        text = time_steps(lambda a, b: view.spec_plot.setXRange(a, b, padding=0), view.viewport().repaint,
                          args.steps, duration)
        view.close()
        runs = (("lanes", lanes, items), ("lanes: playhead tick", playhead, items),
                ("text over spectrogram", text, len(drawn)))
        for kind, times, count in runs:
            rows.append({"file": name, "events": len(chosen), "view": kind, "items": count,
                         "p50_ms": round(float(np.percentile(times, 50)), 2),
                         "p95_ms": round(float(np.percentile(times, 95)), 2),
                         "max_ms": round(float(np.max(times)), 2)})
            row = rows[-1]
            print(f"{name:>10} ({len(chosen):4d} events)  {kind:<22} items {count:5d}  "
                  f"p50 {row['p50_ms']:7.2f} ms  p95 {row['p95_ms']:7.2f} ms  max {row['max_ms']:7.2f} ms")
    result = {"bench": "timeline", "date": datetime.date.today().isoformat(), "machine": platform.processor()
              or platform.machine(), "cpus": os.cpu_count(), "size": args.size, "steps": args.steps,
              "platform": os.environ.get("QT_QPA_PLATFORM"), "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
