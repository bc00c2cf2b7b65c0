"""A scripted walkthrough of the window as a daily tool, for the README: `docs/walkthrough.sh` runs it in a real
X window (Xvfb, 1366x768).

    python -m app.walkthrough --out docs [--esc50 ../shared/data/esc50] [--work DIR]

1. Builds a 10-minute scene of real clips: CC0 ESC-50 clips of twelve sounds, in a fixed random order with 5-10 s
   of silence between them (deterministic; `scene-10min.credits.csv` lists each clip, its place and its author).
2. Starts the app as a user would, `python main.py scene-10min.flac short.wav` (core.cli.main with that argv,
   in this process so that it can press keys), with a temporary settings file and review store
   (XDG_CONFIG_HOME and XDG_DATA_HOME point into the work folder), and waits for both analyses.
3. Steps through the scene's events with J (auto-play plays each) and reviews three with the keys: Y where
   the clip under the event is of its label, N where no clip is, R where a clip of another sound is (typed
   into the relabel dialog), judged against the scene it built.
4. Zooms to a reviewed event and plays it with Enter: `walkthrough-event.png` is taken mid-play, playhead
   inside the event; `walkthrough-file.png` is the whole file at a glance.
5. Exports per-file tables of both files (File ▸ Export…, "Each analysed file") and clips of the events
   reviewed as correct (File ▸ Export clips…), through their dialogs.

Playing needs an audio output: the shared virtual microphone is started first (its null sink is the default
output); where it cannot start, playing is skipped with a message and the rest goes on. GUI thread only.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
CATEGORIES = ("dog", "rooster", "church_bells", "door_wood_knock", "crying_baby", "cow", "clock_alarm", "car_horn",
              "cat", "glass_breaking", "sneezing", "pig")
SCENE_S, RATE_HZ, GAP_S = 600.0, 16000, (5.0, 10.0)
SIZE = (1366, 768)
REVIEW_FROM_S = 240.0       # the reviews start at the first event after this (marks away from the edges)
VMIC = ROOT.parent / "shared" / "tools" / "virtual-mic.sh"


class WalkthroughError(RuntimeError):
    """A step did not happen (one line for the terminal)."""


# ---- the scene ----------------------------------------------------------------------------------------------

def cc0_clips(esc50: Path) -> list[dict]:
    """The manifest rows of the CC0 clips of CATEGORIES, by file name; WalkthroughError without ESC-50."""
    manifest = esc50 / "manifest.csv"
    if not manifest.is_file():
        raise WalkthroughError(f"no ESC-50 at {esc50} (its manifest.csv is missing); pass --esc50 DIR, the folder "
                               "with manifest.csv and audio/ (see ../shared/data/esc50/README.md)")
    with open(manifest, encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["clip_license"] == "CC0" and r["category"] in CATEGORIES]
    return sorted(rows, key=lambda r: r["filename"])


def make_long_scene(esc50: Path, path: Path, seed: int = 0) -> list[tuple[float, str]]:
    """Write the 10-minute scene (16 kHz FLAC) and its credits; returns (start_s, category) of each clip."""
    rows = cc0_clips(esc50)
    authors = _authors(esc50)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rows))
    audio = np.zeros(int(SCENE_S * RATE_HZ), np.float32)
    placed, credits, t = [], [], 1.0
    for k in range(len(rows)):
        row = rows[order[k]]
        clip, rate = sf.read(esc50 / row["filename"], dtype="float32")
        if rate != RATE_HZ or t + len(clip) / rate > SCENE_S:
            break
        start = int(t * RATE_HZ)
        audio[start:start + len(clip)] = clip
        placed.append((t, row["category"]))
        credits.append({"start_s": f"{t:.3f}", "category": row["category"], "clip": row["filename"],
                        **authors.get(row["orig_filename"], {})})
        t += len(clip) / rate + rng.uniform(*GAP_S)
    sf.write(path, audio, RATE_HZ, subtype="PCM_16")
    with open(path.with_suffix(".credits.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(credits[0]))
        writer.writeheader()
        writer.writerows(credits)
    return placed


def _authors(esc50: Path) -> dict[str, dict]:
    path = esc50 / "meta" / "esc50_attributions.csv"
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as f:
        return {r["orig_filename"]: {"author": r["author"], "freesound_url": r["freesound_url"],
                                     "license": r["clip_license"]} for r in csv.DictReader(f)}


def truth(event, labels, placed: list[tuple[float, str]]) -> tuple[str, str]:
    """('correct' | 'wrong' | 'relabel', label id to relabel to): the clip under most of the event decides."""
    overlaps = [(min(event.end_s, t + 5.0) - max(event.start_s, t), category) for t, category in placed]
    overlap, category = max(overlaps)
    if overlap <= 0:
        return "wrong", ""
    label = labels.find(category)
    return ("correct", "") if label is not None and label.index == event.label_index else ("relabel", label.id)


# ---- the virtual output ---------------------------------------------------------------------------------------

def start_output() -> tuple[bool, str]:
    """(started by us, why not playable: '' when there is an output)."""
    if not VMIC.exists():
        return False, f"no virtual microphone script at {VMIC}"
    try:
        running = "vmic" in subprocess.run(["bash", str(VMIC), "status"], capture_output=True, text=True,
                                           timeout=60).stdout.split()
        started = subprocess.run(["bash", str(VMIC), "start"], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"the virtual microphone could not start: {e}"
    if started.returncode != 0:
        return False, f"the virtual microphone could not start: {(started.stderr or started.stdout).strip()[-300:]}"
    return not running, ""


# ---- driving the window ---------------------------------------------------------------------------------------

class Driver:
    """Presses keys and fills dialogs in the running window, as a user would, and takes the screenshots."""

    def __init__(self, out: Path, work: Path, scene: Path, placed: list, can_play: bool):
        from PySide6 import QtWidgets
        self.app = QtWidgets.QApplication.instance()
        self.out, self.work, self.scene, self.placed, self.can_play = out, work, scene, placed, can_play
        self.window = None
        self.error: str | None = None
        self.report: list[str] = []

    def run(self) -> None:
        try:
            self._steps()
        except WalkthroughError as e:
            self.error = str(e)
        finally:
            if self.window is not None:
                self.window.close()
                self.window = None          # the app deletes it; a reference kept past exit crashes Qt

    def wait(self, condition, timeout_s: float, what: str) -> None:
        end = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > end:
                raise WalkthroughError(f"gave up waiting {timeout_s:.0f} s for {what}")
            self.app.processEvents()
            time.sleep(0.01)

    def pause(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.app.processEvents()
            time.sleep(0.01)

    def press(self, key) -> None:
        """A key in the events table, once the window is active (its keys are shortcuts of the active window;
        without a window manager activation takes a moment, and again after each dialog)."""
        from PySide6 import QtTest
        self.window.activateWindow()
        self.wait(self.window.isActiveWindow, 5, "the window to be active")
        QtTest.QTest.keyClick(self.window.files_view.events_table.view, key)
        self.pause(0.15)

    def answer_dialog(self, fill) -> None:
        """Call fill(dialog) on the next modal dialog as soon as it shows (then it is accepted)."""
        from PySide6 import QtCore, QtWidgets

        def look() -> None:
            dialog = QtWidgets.QApplication.activeModalWidget()
            if dialog is None:
                QtCore.QTimer.singleShot(20, look)
                return
            fill(dialog)
            dialog.accept()
        QtCore.QTimer.singleShot(20, look)

    def shot(self, name: str) -> None:
        self.pause(0.3)
        path = self.out / name
        self.window.grab().save(str(path))
        self.report.append(f"screenshot {path}")

    def _steps(self) -> None:
        from app.main_window import MainWindow
        self.wait(lambda: any(isinstance(w, MainWindow) for w in self.app.topLevelWidgets()), 30, "the window")
        self.window = next(w for w in self.app.topLevelWidgets() if isinstance(w, MainWindow))
        self.window.resize(*SIZE)
        self.wait(lambda: len(self.window.document.done_results()) == 2, 300, "the two analyses")
        self.wait(lambda: not self.window.file_tools.busy, 30, "the review store")
        doc, files = self.window.document, self.window.files_view
        long = next(r for r in doc.done_results() if Path(r.path).name == self.scene.name)
        files.select(long.job)
        self.report.append(f"{self.scene.name}: {len(long.events)} events, {len(files.timeline.lanes)} lanes")
        reviewed = self._review(long)
        self._play(long, reviewed)
        files.timeline.show_range(0, long.duration_s)
        files.choose_event(reviewed)
        self.shot("walkthrough-file.png")
        self._export()
        self._clips()

    def _review(self, result) -> int:
        """From the first event after REVIEW_FROM_S (a click on its box), J through the events; Y, N and R
        (through the dialog) for the first of each the scene calls for; returns the event reviewed as
        correct. Auto-play plays each event stepped to (when there is sound)."""
        from PySide6 import QtCore
        from core.review import Verdict
        Key = QtCore.Qt.Key
        tools, files = self.window.file_tools, self.window.files_view
        tools.auto_play_action.setChecked(self.can_play)
        files.events_table.view.setFocus()
        first = next(i for i, e in enumerate(result.events) if e.start_s >= REVIEW_FROM_S)
        files.choose_event(first)                                  # as a click on its box does
        todo = {"correct": Key.Key_Y, "wrong": Key.Key_N, "relabel": Key.Key_R}
        done: dict[str, int] = {}
        while todo and files.selected_event is not None:
            index = files.selected_event
            verdict, relabel_to = truth(result.events[index], result.timeline.labels, self.placed)
            if verdict in todo:
                if verdict == "relabel":
                    name = result.timeline.labels.find(relabel_to).name
                    self.answer_dialog(lambda dialog, name=name: dialog.search.setText(name))
                self.press(todo.pop(verdict))
                done[verdict] = index
            if todo:
                self.press(Key.Key_J)
                if files.selected_event == index:
                    break                                          # the last event: the scene has no more
        marks = {m.verdict for m in result.reviews().values()}
        if marks != {Verdict.CORRECT, Verdict.WRONG, Verdict.RELABEL}:
            raise WalkthroughError(f"three reviews were asked, the file shows {sorted(v.value for v in marks)}")
        labels = result.timeline.labels
        self.report += [f"reviewed {verdict}: {labels[result.events[i].label_index].name} at "
                        f"{result.events[i].start_s:.1f} s" for verdict, i in done.items()]
        return done["correct"]

    def _play(self, result, index: int) -> None:
        """Zoom to the event, press Enter, and take the screenshot while the playhead is inside it."""
        from PySide6 import QtCore
        files, tools = self.window.files_view, self.window.file_tools
        tools.stop()
        files.focus_event(index)
        e = result.events[index]
        if not self.can_play:
            self.window.document.set_playhead(result.job, (e.start_s + e.end_s) / 2)
            self.shot("walkthrough-event.png")
            return
        self.press(QtCore.Qt.Key.Key_Return)
        self.wait(lambda: self.window.document.playhead[1] > e.start_s + 0.4 * (e.end_s - e.start_s), 20,
                  "the playhead to reach the event")
        self.shot("walkthrough-event.png")
        self.wait(lambda: tools.playing is None, 20, "the event to finish playing")
        if self.window.errors:
            raise WalkthroughError(f"playing failed: {self.window.errors[-1]}")
        self.report.append(f"played {result.timeline.labels[e.label_index].name} at {e.start_s:.1f} s "
                           f"(with a second around it) on the default output")

    def _export(self) -> None:
        folder = self.work / "tables"

        def fill(dialog) -> None:
            dialog.scope.setCurrentIndex(dialog.scope.findData("each"))
            dialog.folder.setText(str(folder))
            for key, check in dialog.checks.items():
                check.setChecked(key in ("tags", "raven", "params"))
        self.answer_dialog(fill)
        if not self.window.export_dialog("each"):
            raise WalkthroughError(f"per-file export failed: {self.window.errors[-1:]}")
        written = sorted(folder.rglob("*.*"))
        self.report.append(f"per-file tables: {', '.join(str(p.relative_to(self.work)) for p in written)}")
        with open(folder / f"{self.scene.stem}.tags.csv", encoding="utf-8") as f:
            reviews = [r["review"] for r in csv.DictReader(f) if r["review"]]
        self.report.append(f"{self.scene.stem}.tags.csv review column: {', '.join(reviews)}")

    def _clips(self) -> None:
        from app.clipping import ACCEPTED
        folder, tools = self.work / "clips", self.window.file_tools

        def fill(dialog) -> None:
            dialog.scope.setCurrentIndex(dialog.scope.findData("each"))
            dialog.folder.setText(str(folder))
            dialog.which.setCurrentIndex(dialog.which.findData(ACCEPTED))
        self.answer_dialog(fill)
        tools.clips_dialog()
        self.wait(lambda: not tools.busy, 60, "the clips")
        clips = sorted(folder.rglob("*.flac"))
        if not clips:
            raise WalkthroughError(f"no clips were written: {self.window.errors[-1:]}")
        self.report.append(f"clips: {', '.join(str(p.relative_to(self.work)) for p in clips)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="folder for the PNGs")
    parser.add_argument("--esc50", default=str(ROOT.parent / "shared" / "data" / "esc50"),
                        help="the ESC-50 folder (manifest.csv, audio/)")
    parser.add_argument("--work", help="folder for the scene, settings, review store and exports (default: temporary)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="walkthrough-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["XDG_CONFIG_HOME"] = str(work / "config")        # the window's QSettings
    os.environ["XDG_DATA_HOME"] = str(work / "data")            # its review store
    try:
        scene = work / "scene-10min.flac"
        placed = make_long_scene(Path(args.esc50), scene)
    except WalkthroughError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from app.screenshot import make_scene
    short = make_scene(work / "short.wav")
    started, no_output = start_output()
    if no_output:
        print(f"note: not playing ({no_output})", file=sys.stderr)

    from PySide6 import QtCore
    from app import make_application, run_app
    from core.cli import main as cli_main
    make_application()
    driver = Driver(out, work, scene, placed, can_play=not no_output)
    QtCore.QTimer.singleShot(0, driver.run)
    try:
        code = cli_main([str(scene), str(short)], open_app=run_app)      # `python main.py scene-10min.flac short.wav`
    finally:
        if started:
            subprocess.run(["bash", str(VMIC), "stop"], capture_output=True, timeout=60)
    print("\n".join(driver.report))
    if driver.error or code:
        print(f"error: {driver.error or f'the app exited with {code}'}", file=sys.stderr)
        return 1
    print(f"scene: {len(placed)} CC0 ESC-50 clips, credits in {scene.with_suffix('.credits.csv')}; work folder {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
