"""Benchmark: GUI thread time per redraw tick of the live view, and the app's idle CPU use.

The real window (app.main_window.MainWindow, offscreen unless DISPLAY is set and QT_QPA_PLATFORM=xcb)
on the shipped default model listens to a real scene (three CC0 ESC-50 clips of tests/data, looped)
played in real time through core.capture.FilePlayback, the same path as a microphone. After `--warmup-s`
(>= 30 s, so the 30 s spectrogram history and the label strip are full), each tick is timed as the GUI
thread runs it: the window's timer callback (drain queues, bars, strip, ring) plus the paint Qt does
for it (processEvents), for `--seconds`.

Reference in the same run: the same ticks with a naive redraw, the way a first version would do it
(the whole 30 s history kept as float log-mel, re-levelled with autoLevels and rebuilt every tick).
Idle: process CPU time over `--idle-s` with the model loaded, not listening, nothing queued.

Usage: python bench/bench_gui.py [--warmup-s 32] [--seconds 20] [--idle-s 10] [--json PATH]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
RESULTS = ROOT / "bench" / "results"

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402


def naive_refresh(view):
    """The reference redraw: float history, autoLevels, whole image rebuilt each tick."""
    history = {"frames": None}
    add = view.add_frames

    def add_frames(start_frame, frames):
        add(start_frame, frames)
        if history["frames"] is None:
            history["frames"] = np.full((view._width, view.features.num_mel_bins), view.levels[0], np.float32)
        history["frames"] = np.concatenate([history["frames"], frames])[-view._width:]

    def refresh():
        if not view._dirty or history["frames"] is None:
            return False
        image = np.ascontiguousarray(history["frames"].T)          # (F, <=W) float, copied every tick
        view.spec_image.setImage(image, autoLevels=True)
        end = view.live_end_s
        view.spec_image.setRect(end - image.shape[1] * 0.01, 0, image.shape[1] * 0.01, image.shape[0])
        view.spec_plot.setXRange(end - view._width * 0.01, end, padding=0)
        view._dirty = False
        return True

    view.add_frames, view.refresh = add_frames, refresh


def run(warmup_s: float, seconds: float, naive: bool) -> dict:
    from PySide6 import QtCore, QtWidgets
    from app import make_application
    from app.main_window import MainWindow
    from app.screenshot import make_scene
    from app.workers import FileAudio, set_cpu_threads

    app = make_application()
    set_cpu_threads()
    tmp = Path(tempfile.mkdtemp(prefix="bench-gui-"))
    scene = make_scene(tmp / "scene.wav")
    x, rate = sf.read(scene, dtype="float32")
    sf.write(tmp / "long.wav", np.tile(x, int((warmup_s + seconds) / 21) + 2), rate)
    settings = QtCore.QSettings(str(tmp / "s.ini"), QtCore.QSettings.Format.IniFormat)
    window = MainWindow(qsettings=settings, audio=FileAudio(tmp / "long.wav"))
    window.resize(1400, 820)
    window.show()
    while window.model is None:
        app.processEvents()
        time.sleep(0.01)
    if naive:
        naive_refresh(window.live_view.spectrogram)
    window.timer.stop()                     # the bench drives the ticks itself, at the timer's interval
    window.start_live()
    window.timer.stop()
    interval = window.timer.interval() / 1000
    ticks, cpu0, t_start = [], None, time.perf_counter()
    next_tick = t_start
    while time.perf_counter() - t_start < warmup_s + seconds:
        now = time.perf_counter()
        if now < next_tick:
            time.sleep(next_tick - now)
        next_tick += interval
        t0 = time.perf_counter()
        window._tick()
        app.processEvents()                 # the repaint the tick asked for
        dt = time.perf_counter() - t0
        if t0 - t_start >= warmup_s:
            if cpu0 is None:
                cpu0, wall0 = time.process_time(), time.perf_counter()
            ticks.append(dt * 1000)
    cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    history_s = window.live_view.spectrogram.live_end_s
    strip_rows = len(window.live_view.spectrogram.strip_rows)
    window.stop_live()
    window.timer.start()
    while window.session is not None:
        app.processEvents()
        time.sleep(0.01)
    for key, _ in window.document.unsaved():    # a demo's session: nothing to keep
        window.document.remove(key)
    window.close()
    QtWidgets.QApplication.processEvents()
    t = np.array(ticks)
    return {"ticks": len(t), "p50_ms": float(np.percentile(t, 50)), "p95_ms": float(np.percentile(t, 95)),
            "max_ms": float(t.max()), "stream_s_at_end": round(history_s, 1), "strip_rows": strip_rows,
            "process_cpu_while_listening": round(cpu, 3)}


def idle(seconds: float) -> dict:
    from PySide6 import QtCore
    from app import make_application
    from app.main_window import MainWindow

    app = make_application()
    tmp = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    settings = QtCore.QSettings(str(tmp / "s.ini"), QtCore.QSettings.Format.IniFormat)
    window = MainWindow(qsettings=settings)
    window.show()
    while window.model is None or window.timer.isActive():
        app.processEvents()
        time.sleep(0.01)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    QtCore.QTimer.singleShot(int(seconds * 1000), app.quit)
    app.exec()
    cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    window.close()
    return {"seconds": seconds, "cpu_share_of_one_core": round(cpu, 4), "timer_active": window.timer.isActive()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup-s", type=float, default=32.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--json", default=str(RESULTS / "gui-cpu.json"))
    args = parser.parse_args()
    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "qpa": os.environ.get("QT_QPA_PLATFORM"),
              "idle": idle(args.idle_s),
              "ours": run(args.warmup_s, args.seconds, naive=False),
              "naive_reference": run(args.warmup_s, args.seconds, naive=True)}
    result["p95_ratio_naive_over_ours"] = round(result["naive_reference"]["p95_ms"] / result["ours"]["p95_ms"], 2)
    Path(args.json).write_text(json.dumps(result, indent=1))
    o, n = result["ours"], result["naive_reference"]
    print("| redraw tick (GUI thread) | p50 ms | p95 ms | max ms | ticks |\n|---|---|---|---|---|")
    print(f"| ours (uint8 ring, fixed levels) | {o['p50_ms']:.2f} | {o['p95_ms']:.2f} | {o['max_ms']:.1f} | {o['ticks']} |")
    print(f"| naive (float history, autoLevels) | {n['p50_ms']:.2f} | {n['p95_ms']:.2f} | {n['max_ms']:.1f} | {n['ticks']} |")
    print(f"\np95 naive / ours: {result['p95_ratio_naive_over_ours']}x; strip rows {o['strip_rows']}; "
          f"process CPU while listening {o['process_cpu_while_listening']:.1%} of one core; "
          f"idle CPU {result['idle']['cpu_share_of_one_core']:.2%} of one core (timer active: {result['idle']['timer_active']})")


if __name__ == "__main__":
    main()
