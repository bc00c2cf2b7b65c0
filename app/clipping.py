"""File ▸ Export clips…: an audio clip per event (core.clips.export_clips), for the shown file or every file.

The dialog and the choice of events run on the GUI thread; `cut_clips` reads and writes audio, so the window
runs it on a worker (app.background.SerialWorker) with `ClipJob`s, frozen copies of what it needs. Each
recording's clips are one set (all written or none, core.clips); existing clips are never replaced unasked:
the sets that would replace files come back in `ClipsOutcome.existing`, the window asks once and runs only
those again with overwrite.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from PySide6 import QtWidgets

from core.clips import CLIP_FORMATS, CLIP_MARGIN_S, export_clips
from core.errors import ExportExistsError, TaggerError
from core.labels import LabelSet
from core.review import Mark, Verdict
from core.timeline import Event
from app.controls import FolderField
from app.document import FileResult
from app.exporting import each_plan

__all__ = ["ClipsRequest", "ClipJob", "ClipsOutcome", "ClipsDialog", "clip_jobs", "cut_clips", "ALL", "ACCEPTED",
           "MIN_PEAK"]

ALL, ACCEPTED, MIN_PEAK = "all", "accepted", "min_peak"     # which events get a clip
WHICH_TITLES = {ALL: "Every event", ACCEPTED: "Reviewed as correct (or relabelled)", MIN_PEAK: "Peak at least"}


@dataclass(frozen=True)
class ClipsRequest:
    scope: str               # "file" (the shown result) or "each" (every result with audio)
    out_dir: Path
    pre_s: float = CLIP_MARGIN_S
    post_s: float = CLIP_MARGIN_S
    audio_format: str = "flac"
    which: str = ALL
    min_peak: float = 0.5


@dataclass(frozen=True)
class ClipJob:
    """One recording's clips: what core.clips.export_clips needs, copied for the worker thread."""

    audio: str
    events: tuple[Event, ...]
    labels: LabelSet
    out_dir: Path
    stem: str
    reviews: Mapping[Event, Mark]


@dataclass(frozen=True)
class ClipsOutcome:
    written: tuple[Path, ...]
    existing: tuple[ClipJob, ...]        # sets not written because clips of theirs exist (ask, then again)
    existing_paths: tuple[Path, ...]
    failed: tuple[str, ...]              # one line per recording that failed (unreadable, disk full)


def chosen_events(result: FileResult, request: ClipsRequest) -> list[Event]:
    """The result's events the request wants clips of, in time order."""
    reviews = result.reviews()
    if request.which == ACCEPTED:
        return [e for e in result.events if e in reviews and reviews[e].verdict in (Verdict.CORRECT, Verdict.RELABEL)]
    if request.which == MIN_PEAK:
        return [e for e in result.events if e.peak_score >= request.min_peak]
    return list(result.events)


def clip_jobs(request: ClipsRequest, shown: FileResult | None, done: list[FileResult]) -> list[ClipJob]:
    """The jobs of a request: the shown result's clips straight into out_dir, or every result's into its
    folder and under its name as File ▸ Export…'s "each file" names them (app.exporting.each_plan). Results
    without audio (a session that was not recorded) and without chosen events get none."""
    if request.scope == "file":
        plans = [(shown, request.out_dir, Path(shown.audio).stem)] if shown is not None and shown.audio else []
    else:
        plans = each_plan([r for r in done if r.audio is not None], request.out_dir)
    jobs = []
    for result, folder, stem in plans:
        events = chosen_events(result, request)
        if events:
            jobs.append(ClipJob(result.audio, tuple(events), result.timeline.labels, folder, stem,
                                MappingProxyType(result.reviews())))
    return jobs


def cut_clips(request: ClipsRequest, jobs: list[ClipJob], overwrite: bool = False) -> ClipsOutcome:
    """Write every job's clips (worker thread): each recording's set whole or not at all."""
    written, existing, existing_paths, failed = [], [], [], []
    for job in jobs:
        try:
            written += export_clips(job.audio, job.events, job.labels, job.out_dir, pre_s=request.pre_s,
                                    post_s=request.post_s, audio_format=request.audio_format, overwrite=overwrite,
                                    reviews=job.reviews, stem=job.stem)
        except ExportExistsError as e:
            existing.append(job)
            existing_paths += e.paths
        except TaggerError as e:
            failed.append(f"{job.stem}: {' '.join(str(e).split())}")
    return ClipsOutcome(tuple(written), tuple(existing), tuple(existing_paths), tuple(failed))


class ClipsDialog(QtWidgets.QDialog):
    """What to cut (the shown file or every file), where, how much before and after, the format, and which
    events (every one, those reviewed as correct, or those whose peak reaches a minimum)."""

    def __init__(self, scopes: dict[str, str], out_dir: str, parent: QtWidgets.QWidget | None = None):
        """scopes: "file" and/or "each" -> title, only those that have clips to cut."""
        super().__init__(parent)
        self.setWindowTitle("Export clips")
        form = QtWidgets.QFormLayout(self)
        self.scope = QtWidgets.QComboBox()
        for key, title in scopes.items():
            self.scope.addItem(title, key)
        form.addRow("What", self.scope)
        folder = FolderField(out_dir, "Write clips to")
        self.folder = folder.edit
        form.addRow("Folder", folder)
        self.pre, self.post = self._seconds(), self._seconds()
        form.addRow("Before each event", self.pre)
        form.addRow("After each event", self.post)
        self.audio_format = QtWidgets.QComboBox()
        for key in CLIP_FORMATS:
            self.audio_format.addItem(key.upper(), key)
        form.addRow("Format", self.audio_format)
        self.which = QtWidgets.QComboBox()
        for key, title in WHICH_TITLES.items():
            self.which.addItem(title, key)
        self.min_peak = QtWidgets.QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.05, decimals=2, value=0.5)
        which = QtWidgets.QHBoxLayout()
        which.addWidget(self.which, 1)
        which.addWidget(self.min_peak)
        form.addRow("Events", which)
        self.which.currentIndexChanged.connect(self._which_changed)
        self.min_peak.setEnabled(False)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Save
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _which_changed(self) -> None:
        self.min_peak.setEnabled(self.which.currentData() == MIN_PEAK)

    @staticmethod
    def _seconds() -> QtWidgets.QDoubleSpinBox:
        box = QtWidgets.QDoubleSpinBox(minimum=0.0, maximum=60.0, singleStep=0.5, decimals=1, value=CLIP_MARGIN_S)
        box.setSuffix(" s")
        return box

    def request(self) -> ClipsRequest:
        return ClipsRequest(self.scope.currentData(), Path(self.folder.text()).expanduser(), self.pre.value(),
                            self.post.value(), self.audio_format.currentData(), self.which.currentData(),
                            self.min_peak.value())
