"""The window's document: what the user has loaded, set and produced, which the views show.

Sonic Visualiser's `Document` in small. It holds the model in use, the event rule (the global on/off
thresholds and per-label ones), the pinned labels, every result in the Files list (analysed files and
finished live sessions, `FileResult`) and the running live session (`LiveRun`). Views observe it through its
signals and send the user's intents to it; MainWindow builds the parts, feeds it what the workers report and
keeps the dialogs, the banner and the timer that drains the queues. It also holds what the Files tab shares:
each result's review marks (core.review; the store on disk is app.filetools' business) and the playhead.

One event rule: every result's events come from core.events with this document's rule (`rule_for` narrows
it to the result's labels) and are recomputed when it changes. A running session applies the rule it
started with (core.session.LiveTimeline closes events as frames arrive and says which labels have one open:
the bars' colour); once it ends, its events follow the document's rule like any file's.

GUI thread only. It touches no widget and calls nothing that can block: a live session is started, stopped
and finished by app.workers.LiveControl, and the document only drains its queue (LiveSession.add).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from PySide6 import QtCore

from core.config import EventConfig, FeatureConfig
from core.events import detect_events, rule_for
from core.labels import LabelSet
from core.review import Mark, Verdict, match_marks
from core.session import LiveFrames, LiveResult, LiveSession, RecordingStopped
from core.tagger import TagFrame, TaggerEnd
from core.timeline import Event, Timeline
from app.spectrogram_view import SessionImage
from app.workers import MAX_DISPLAY_COLUMNS, ModelReady, pending

__all__ = ["Document", "FileResult", "LiveRun", "live_title"]


@dataclass
class FileResult:
    """One row of the Files list: an analysed file, or a finished live session (kind "live")."""

    job: int                                  # its key: the analysis job, or a negative number for a session
    path: str                                 # the audio: a file, a session's recording, or `live:<device>`
    duration_s: float
    timeline: Timeline | None = None
    spectrogram: np.ndarray | None = None     # (F, C) uint8 display image (app.workers.JobDone, SessionImage)
    column_s: float = 0.01
    features: FeatureConfig | None = None
    events: list[Event] = field(default_factory=list)      # by the document's rule
    status: str = "queued"                    # queued, running, done, failed, cancelled
    message: str = ""
    done_s: float = 0.0                       # analysed so far (progress)
    kind: str = "file"                        # "file" or "live"
    title: str = ""                           # a session's name in the list: "Live 07:31–07:45, <device>"
    exported_windows: int = 0                 # a session's windows that an export has written
    recorded: bool = False                    # a session's audio is whole in its recording (timeline.source)
    marks: tuple[Mark, ...] = ()              # review marks of this recording under its model (core.review)
    exported_marks: frozenset[Mark] = frozenset()          # the marks the last export of it wrote

    @property
    def audio(self) -> str | None:
        """The recording to play and to keep review marks for: the file, a session's FLAC; None for a session
        that was not recorded (`live:<device>`)."""
        return None if self.path.startswith("live:") else self.path

    def reviews(self) -> dict[Event, Mark]:
        """The mark of each event (by the current rule) that has one: core.review.match_marks."""
        if self.timeline is None or not self.marks:
            return {}
        return match_marks(self.events, self.timeline.labels, self.marks)

    @property
    def unsaved_windows(self) -> bool:
        """A live session with windows that no export has written and no recording holds."""
        return (self.kind == "live" and not self.recorded and self.timeline is not None
                and self.timeline.num_windows > self.exported_windows)

    @property
    def unsaved_marks(self) -> bool:
        """Review marks made or changed since the last export of a session that was not recorded: with no
        recording to key them by in the review store, the document and its exports are their only copies."""
        return self.audio is None and frozenset(self.marks) != self.exported_marks

    @property
    def unsaved(self) -> bool:
        """A live session whose results (what it found, or its review marks) would be lost."""
        return self.unsaved_windows or self.unsaved_marks


@dataclass
class LiveRun:
    """The running live session, as the document holds it."""

    session: LiveSession
    features: FeatureConfig
    image: SessionImage                       # the whole session's spectrogram, for the Files list after Stop
    events: list[Event] = field(default_factory=list)      # closed so far, by the session's rule
    stopping: bool = False                    # Stop was asked: the source is ending on the control thread
    ended: bool = False                       # its TaggerEnd came: it is being finished
    recording_error: str | None = None
    exported_windows: int = 0

    @property
    def device_name(self) -> str:
        return self.session.source.device.name

    def clock_start(self) -> datetime | None:
        """Wall-clock time of the stream's second 0 (the source's estimate), for showing event times."""
        clock = getattr(self.session.source, "clock_start", None)
        return clock() if clock else None

    @property
    def unsaved(self) -> bool:
        recorded = self.session.recorder is not None and self.recording_error is None
        return not recorded and self.session.live.num_windows > self.exported_windows


class Document(QtCore.QObject):
    """See the module docstring. Signals carry keys or copies; read the rest from the attributes."""

    modelChanged = QtCore.Signal()
    ruleChanged = QtCore.Signal()             # every result's events are recomputed before it is emitted
    pinsChanged = QtCore.Signal()
    fileAdded = QtCore.Signal(int)
    fileChanged = QtCore.Signal(int)
    fileRemoved = QtCore.Signal(int, str)     # key, path
    liveChanged = QtCore.Signal()             # live_state changed (starting, running, stopping, idle)
    liveStarted = QtCore.Signal()             # a new session runs: `live` is its LiveRun
    liveFrames = QtCore.Signal(object)        # LiveFrames
    liveScores = QtCore.Signal(object, object)     # TagFrame, (L,) bool labels with an event open now
    liveEvents = QtCore.Signal(object, object)     # list[Event] that closed, the session's clock_start
    dirtyChanged = QtCore.Signal(bool)        # some live session has results (or review marks) that would be lost
    errorRaised = QtCore.Signal(str, str)     # cause key ("live", "recording"), text
    errorCleared = QtCore.Signal(str)         # cause key
    reviewChanged = QtCore.Signal(int)        # a result's review marks changed
    playheadChanged = QtCore.Signal()         # `playhead` moved, or was hidden

    def __init__(self, event_config: EventConfig = EventConfig(), pinned_ids: list[str] = (), parent=None):
        super().__init__(parent)
        self.model: ModelReady | None = None
        self.on_threshold, self.off_threshold = event_config.on_threshold, event_config.off_threshold
        self.label_thresholds: dict[str, float] = dict(event_config.label_thresholds)
        self.pinned_ids: list[str] = list(pinned_ids)
        self.files: dict[int, FileResult] = {}
        self.live: LiveRun | None = None
        self.starting = False                 # a session is being opened on the control thread
        self._live_keys = itertools.count(-1, -1)
        self._dirty = False
        self.playhead: tuple[int, float] | None = None     # (result key, seconds of it) being played or inspected

    # ---- model --------------------------------------------------------------------------------------

    def set_model(self, ready: ModelReady) -> None:
        self.model = ready
        self.modelChanged.emit()

    def features_of(self, timeline: Timeline) -> FeatureConfig:
        """The features a result was computed with: the model's if it is the one in use, else its window."""
        model = self.model.loaded if self.model else None
        if model is not None and model.name == timeline.model_name:
            return model.features
        return FeatureConfig(num_frames=round(timeline.window_s * 100))

    # ---- the event rule and pins --------------------------------------------------------------------

    def event_config(self) -> EventConfig:
        return EventConfig(on_threshold=self.on_threshold, off_threshold=self.off_threshold,
                           label_thresholds=tuple(self.label_thresholds.items()))

    def rule_for(self, labels: LabelSet) -> EventConfig:
        """The rule for results with these labels (per-label thresholds of labels they lack are left out)."""
        return rule_for(self.event_config(), labels)

    def set_thresholds(self, on: float, off: float) -> None:
        """The global thresholds; off is kept at most on (the rule needs 0 <= off <= on)."""
        off = min(off, on)
        if (on, off) != (self.on_threshold, self.off_threshold):
            self.on_threshold, self.off_threshold = on, off
            self._rule_changed()

    def set_label_thresholds(self, thresholds: dict[str, float]) -> None:
        """Label id -> its own on threshold (labels not named use the global one)."""
        if thresholds != self.label_thresholds:
            self.label_thresholds = dict(thresholds)
            self._rule_changed()

    def _rule_changed(self) -> None:
        for result in self.done_results():
            result.events = detect_events(result.timeline, self.rule_for(result.timeline.labels))
        self.ruleChanged.emit()

    def set_pinned_ids(self, pinned_ids: list[str]) -> None:
        """Label ids always shown first (bars, every result's strip), by id so that any model's results have them."""
        if list(pinned_ids) != self.pinned_ids:
            self.pinned_ids = list(pinned_ids)
            self.pinsChanged.emit()

    # ---- files --------------------------------------------------------------------------------------

    def add_job(self, job: int, path: str) -> None:
        self.files[job] = FileResult(job, path, 0.0)
        self.fileAdded.emit(job)

    def set_progress(self, job: int, done_s: float, total_s: float) -> None:
        result = self.files.get(job)
        if result is not None:
            result.status, result.duration_s, result.done_s = "running", total_s, done_s
            self.fileChanged.emit(job)

    def set_done(self, job: int, timeline: Timeline, spectrogram: np.ndarray, column_s: float) -> None:
        if job not in self.files:          # removed from the list while it ran
            return
        result = FileResult(job, self.files[job].path, timeline.duration_s, timeline, spectrogram, column_s,
                            self.features_of(timeline), status="done", done_s=timeline.duration_s)
        result.events = detect_events(timeline, self.rule_for(timeline.labels))
        self.files[job] = result
        self.fileChanged.emit(job)

    def set_failed(self, job: int, message: str, cancelled: bool) -> None:
        result = self.files.get(job)
        if result is not None:
            result.status, result.message = ("cancelled" if cancelled else "failed"), message
            self.fileChanged.emit(job)

    def remove(self, key: int) -> None:
        result = self.files.pop(key, None)
        if result is not None:
            if self.playhead is not None and self.playhead[0] == key:
                self.set_playhead(None)
            self.fileRemoved.emit(key, result.path)
            self._update_dirty()

    def done_results(self) -> list[FileResult]:
        return [r for r in self.files.values() if r.status == "done"]

    def live_results(self) -> list[FileResult]:
        """Finished live sessions still in the list, oldest first."""
        return [r for r in self.files.values() if r.kind == "live"]

    # ---- reviews and the playhead -------------------------------------------------------------------

    def set_marks(self, key: int, marks: tuple[Mark, ...]) -> None:
        """A result's marks as the review store keeps them (loaded, or answered after a change)."""
        result = self.files.get(key)
        if result is not None and tuple(marks) != result.marks:
            result.marks = tuple(marks)
            self.reviewChanged.emit(key)
            self._update_dirty()

    def mark_event(self, key: int, index: int, verdict: Verdict | str, relabel_to: str = "") -> Mark:
        """Mark event `index` of result `key` (it replaces the event's mark); returns the mark, for the store.
        ReviewError for a relabel to a label the result's model does not have."""
        result = self.files[key]
        mark = Mark.of(result.events[index], result.timeline.labels, verdict, relabel_to)
        self.set_marks(key, tuple(m for m in result.marks if m.key != mark.key) + (mark,))
        return mark

    def unmark_event(self, key: int, index: int) -> Mark | None:
        """Take away the mark event `index` of result `key` shows (the exact one, or the one it was matched
        to after a rule change); returns it (None: the event had none)."""
        result = self.files[key]
        mark = result.reviews().get(result.events[index])
        if mark is not None:
            self.set_marks(key, tuple(m for m in result.marks if m.key != mark.key))
        return mark

    def set_playhead(self, key: int | None, t_s: float = 0.0) -> None:
        """Put the playhead at t_s seconds of result `key` (None: no playhead)."""
        playhead = None if key is None else (key, float(t_s))
        if playhead != self.playhead:
            self.playhead = playhead
            self.playheadChanged.emit()

    # ---- the live session ---------------------------------------------------------------------------

    @property
    def live_state(self) -> str:
        """"idle", "starting", "running" or "stopping" (Stop was asked, or the stream ended on its own)."""
        if self.live is not None:
            return "stopping" if self.live.stopping or self.live.ended else "running"
        return "starting" if self.starting else "idle"

    def start_requested(self) -> None:
        """A session is being opened (app.workers.LiveControl); begin_live or start_failed follows."""
        self.starting = True
        self.liveChanged.emit()

    def start_failed(self, message: str) -> None:
        self.starting = False
        self.errorRaised.emit("live", f"could not start listening: {message}")
        self.liveChanged.emit()

    def begin_live(self, session: LiveSession) -> None:
        """The session started; from now on poll_live drains it."""
        self.starting = False
        features = session.tagger.features
        self.live = LiveRun(session, features, SessionImage(features, MAX_DISPLAY_COLUMNS))
        self.errorCleared.emit("live")
        self.errorCleared.emit("recording")
        self.liveStarted.emit()
        self.liveChanged.emit()

    def stop_requested(self) -> LiveSession | None:
        """Mark the session as stopping; returns it for LiveControl.stop (None: nothing to stop)."""
        run = self.live
        if run is None or run.stopping or run.ended:
            return None
        run.stopping = True
        self.liveChanged.emit()
        return run.session

    def poll_live(self) -> TaggerEnd | None:
        """Take what the session has queued; returns its TaggerEnd once, when the stream is over."""
        run = self.live
        if run is None or run.ended:
            return None
        if not run.stopping:
            run.session.check()     # a lost device closes the ring; the tagger then ends with the reason
        for item in pending(run.session.results):
            if isinstance(item, LiveFrames):
                run.image.add(item.start_frame, item.frames)
                self.liveFrames.emit(item)
            elif isinstance(item, TagFrame):
                events = run.session.add(item)
                run.events.extend(events)
                self.liveScores.emit(item, run.session.open_labels())
                if events:
                    self.liveEvents.emit(events, run.clock_start())
            elif isinstance(item, RecordingStopped):
                run.recording_error = item.message
                self.errorRaised.emit("recording", item.message)
            elif isinstance(item, TaggerEnd):
                run.ended = True
                self.liveChanged.emit()
                self._update_dirty()
                return item
        self._update_dirty()
        return None

    def end_live(self, result: LiveResult) -> FileResult:
        """The finished session (LiveControl closed it) becomes a result in the Files list, whole."""
        run, self.live = self.live, None
        timeline = result.timeline
        entry = FileResult(next(self._live_keys), timeline.source, timeline.duration_s, timeline,
                           run.image.image(), run.image.column_s, run.features, status="done",
                           done_s=timeline.duration_s, kind="live", title=live_title(timeline, run.device_name),
                           exported_windows=run.exported_windows,
                           recorded=run.session.recorder is not None and run.recording_error is None)
        entry.events = detect_events(timeline, self.rule_for(timeline.labels))
        self.files[entry.job] = entry
        if result.unreported:
            self.liveEvents.emit(result.unreported, timeline.clock_start)
        if result.error:
            self.errorRaised.emit("live", f"listening stopped: {result.error}. What was heard before is kept "
                                          "(in the Files list); File ▸ Export… writes it.")
        self.fileAdded.emit(entry.job)
        self.liveChanged.emit()
        self._update_dirty()
        return entry

    def forget_live(self) -> None:
        """The window quits: the running session is LiveControl's to close, and no longer shown or asked about."""
        self.live, self.starting = None, False
        self.liveChanged.emit()
        self._update_dirty()

    def live_timeline(self) -> Timeline | None:
        """A snapshot of the running session's timeline (None when none runs)."""
        return self.live.session.timeline() if self.live is not None else None

    # ---- what is saved ------------------------------------------------------------------------------

    def mark_exported(self, key: int | None, timeline: Timeline, with_marks: bool = True) -> None:
        """An export wrote `timeline`: of result `key`, and (with_marks: it wrote a format with review columns,
        core.export.REVIEW_FORMATS) the result's review marks as they are now (every export reads them from the
        result, app.exporting); or of the running session (None)."""
        target = self.live if key is None else self.files.get(key)
        if target is not None:
            target.exported_windows = max(target.exported_windows, timeline.num_windows)
            if key is not None and with_marks:
                target.exported_marks = frozenset(target.marks)
            self._update_dirty()

    def unsaved(self) -> list[tuple[int | None, str]]:
        """(key, description) of every live session whose results would be lost now: the running one
        (key None) and finished ones, where an export has not written all of them and no recording holds them,
        or (not recorded) whose review marks changed since their last export."""
        found: list[tuple[int | None, str]] = [(r.job, _unsaved_text(r)) for r in self.live_results() if r.unsaved]
        if self.live is not None and self.live.unsaved:
            session = self.live.session
            heard = _clock_text(session.stats().num_samples / session.live.sample_rate_hz)
            found.append((None, f"the running session ({heard}, {self.live.device_name})"))
        return found

    def _update_dirty(self) -> None:
        dirty = any(r.unsaved for r in self.live_results()) or (self.live is not None and self.live.unsaved)
        if dirty != self._dirty:
            self._dirty = dirty
            self.dirtyChanged.emit(dirty)


def live_title(timeline: Timeline, device_name: str) -> str:
    """How the Files list names a session: 'Live 07:31–07:45, <device>' (wall clock, local time)."""
    start = timeline.clock_start or datetime.now().astimezone()
    end = start + timedelta(seconds=timeline.duration_s)
    return f"Live {start:%H:%M}–{end:%H:%M}, {device_name}"


def _unsaved_text(result: FileResult) -> str:
    """A finished session as the unsaved question names it, with what of it would be lost."""
    if not result.unsaved_windows:
        return f"{result.title}: the review marks made since its last export"
    return f"{result.title}: what it found and its review marks" if result.unsaved_marks else result.title


def _clock_text(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}" if m < 60 else f"{m // 60}:{m % 60:02d}:{s:02d}"
