"""The Live screenshot of the README: `docs/screenshot.sh` runs this under Xvfb (the Files tab's are
app.walkthrough's).

    python -m app.screenshot --out docs   # -> docs/screenshot-live.png

The scene is three CC0 ESC-50 clips from tests/data (rooster, church bell, door knock) with silence
between, played in real time into the live view (core.capture.FilePlayback, the same path as a microphone)
and captured mid-way. Uses a temporary settings file and review store, so a user's own are neither used nor
changed.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
CLIPS = ("1-44831-A-1.flac", "4-150364-B-46.flac", "5-251426-B-30.flac")


def make_scene(path: Path) -> Path:
    x = np.zeros(21 * 16000, dtype=np.float32)
    for start_s, name in zip((1, 8, 15), CLIPS):
        clip, _ = sf.read(ROOT / "tests" / "data" / name, dtype="float32")
        x[start_s * 16000:start_s * 16000 + len(clip)] = clip
    sf.write(path, x, 16000, subtype="PCM_16")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="folder for the PNGs")
    parser.add_argument("--live-s", type=float, default=16.0, help="seconds of the scene heard before the live shot")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from PySide6 import QtCore
    from app import make_application
    from app.main_window import MainWindow
    from app.workers import FileAudio, set_cpu_threads
    from core.review import ReviewStore

    app = make_application()
    set_cpu_threads()
    tmp = Path(tempfile.mkdtemp(prefix="screenshot-"))
    scene = make_scene(tmp / "scene.wav")
    settings = QtCore.QSettings(str(tmp / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    window = MainWindow(qsettings=settings, audio=FileAudio(scene), review_store=ReviewStore(tmp))
    window.resize(1400, 820)
    window.show()

    def wait(condition, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not condition():
            app.processEvents()
            time.sleep(0.01)
        return condition()

    if not wait(lambda: window.model is not None, 60):
        print(f"error: the model did not load: {window.errors}", file=sys.stderr)
        return 1
    window.labels_panel.set_pinned(window.labels_panel.labels.find("Speech").index, True)
    window.start_live()
    wait(lambda: window.live_view.spectrogram.live_end_s >= args.live_s, args.live_s + 30)
    wait(lambda: False, 0.3)
    window.grab().save(str(out / "screenshot-live.png"))
    window.stop_live()
    wait(lambda: window.session is None, 30)
    for key, _ in window.document.unsaved():    # a demo's session: nothing to keep
        window.document.remove(key)
    window.close()
    print(f"wrote {out / 'screenshot-live.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
