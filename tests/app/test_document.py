"""The document (app/document.py) and the views that observe it, without a window or worker threads: its
signals drive the Files list, the label panel, the run bar and the Live tab, and its one event rule gives
every result's events; a real LiveSession (the engine's event rule) fed TagFrames by hand colours the bars."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import torch

from app.controls import LabelPanel
from app.document import Document, FileResult
from app.events_table import LABEL
from app.files_view import FilesView
from app.live_view import LiveView
from app.settings import AppSettings
from app.toolbar import RunBar
from app.workers import ModelReady
from core.capture import FilePlayback
from core.config import EventConfig, InferenceOptions
from core.events import detect_events
from core.modelfile import load_model
from core.session import LiveSession, LiveTimeline
from core.tagger import TagFrame, TaggerEnd
from core.timeline import Timeline


@pytest.fixture(scope="module")
def ready() -> ModelReady:
    return ModelReady(1, "", load_model(None), torch.device("cpu"), 0.0, InferenceOptions("cpu", "torch", "fp32"),
                      "torch fp32, 1 thread")


def file_timeline(labels, path: str = "/sounds/a.wav") -> Timeline:
    """20 windows of 5.12 s at a 1 s hop: Dog at 0.9 in windows 2-5, Church bell at 0.6 in windows 10-12."""
    scores = np.zeros((20, len(labels)), np.float32)
    scores[2:6, labels.find("Dog").index] = 0.9
    scores[10:13, labels.find("Church bell").index] = 0.6
    starts = np.arange(20, dtype=np.float64)
    return Timeline(path, labels, starts, np.minimum(starts + 5.12, 24.12), scores, 24.12, 5.12, 1.0, "default")


def texts(table, column: int) -> list[str]:
    return [table.item(r, column).text() for r in range(table.rowCount())]


def shown_labels(files: FilesView) -> list[str]:
    """The Label column of the Files tab's events table, top to bottom."""
    proxy = files.events_table.proxy
    return [proxy.index(r, LABEL).data() for r in range(proxy.rowCount())]


def test_the_documents_signals_drive_the_files_list_the_label_panel_and_the_run_bar(qtbot, ready):
    doc = Document(EventConfig(on_threshold=0.5, off_threshold=0.2))
    files, panel, bar = FilesView(doc), LabelPanel(doc), RunBar(AppSettings(), doc)
    for widget in (files, panel, bar):
        qtbot.addWidget(widget)
    labels = ready.loaded.labels
    doc.set_model(ready)
    assert panel.table.rowCount() == len(labels) and bar.badge.text() == "CPU · torch fp32, 1 thread"

    doc.add_job(7, "/sounds/a.wav")
    assert texts(files.queue, 0) == ["a.wav"] and files.queue.cellWidget(0, 2).text() == "queued"
    doc.set_progress(7, 12.06, 24.12)
    assert files.queue.cellWidget(0, 2).text() == "50 %"
    image = np.full((128, 2412), 90, np.uint8)
    doc.set_done(7, file_timeline(labels), image, 0.01)
    result = doc.files[7]
    assert [labels[e.label_index].name for e in result.events] == ["Dog", "Church bell"]
    assert files.current == 7 and files.queue.cellWidget(0, 2).text() == "2 events"
    assert shown_labels(files) == ["Dog", "Church bell"]

    bar.on.setValue(0.7)                                   # the user's intent goes to the document ...
    assert doc.on_threshold == 0.7
    assert shown_labels(files) == ["Dog"]                  # ... whose one rule redraws the list and the timeline
    assert files.queue.cellWidget(0, 2).text() == "1 events"
    bar.off.setValue(0.9)                                  # off above on: the document keeps it at on
    assert doc.off_threshold == 0.7 and bar.off.value() == pytest.approx(0.7)
    assert panel.shown_threshold(labels.find("Dog").index) == "0.70"      # the inherited value, greyed

    bell = labels.find("Church bell").index
    panel.table.item(bell, 2).setText("0.55")              # its own threshold: its event is back
    assert doc.label_thresholds == {labels[bell].id: 0.55}
    assert shown_labels(files) == ["Dog", "Church bell"]
    assert result.events == detect_events(result.timeline, doc.event_config())

    speech = labels.find("Speech").index
    panel.set_pinned(speech, True)
    assert doc.pinned_ids == [labels[speech].id]
    assert files.timeline.strip_rows[0] == "Speech"        # pinned first on every result's strip

    removed = []
    doc.fileRemoved.connect(lambda key, path: removed.append((key, path)))
    files.remove_requested.connect(lambda keys: [doc.remove(k) for k in keys])   # the window's part
    files.remove(7)
    assert removed == [(7, "/sounds/a.wav")] and files.queue.rowCount() == 0 and files.current is None


def frame(k: int, labels, **scores: float) -> TagFrame:
    row = np.zeros(len(labels), np.float32)
    for name, value in scores.items():
        row[labels.find(name.replace("_", " ")).index] = value
    return TagFrame(k, k * 16000, k * 16000 + 81920, float(k), k + 5.12, row)


def test_the_live_bars_take_their_colour_from_the_sessions_event_rule(qtbot, ready, scene):
    """A real LiveSession (not started: the test is its tagger) with the engine's rule; Dog rises above on,
    then hovers between off and on, where a bar that compared the score with a threshold would turn blue."""
    doc = Document(EventConfig(on_threshold=0.5, off_threshold=0.2))
    live, files = LiveView(doc), FilesView(doc)
    for widget in (live, files):
        qtbot.addWidget(widget)
    doc.set_model(ready)
    labels = ready.loaded.labels
    session = LiveSession(ready.loaded, "cpu", FilePlayback(scene), 1.0, doc.rule_for(labels), display=True)
    doc.begin_live(session)
    assert live.labels is labels and live.start.text() == "Stop"
    engine = LiveTimeline(labels, session.tagger.window_s, 1.0, doc.rule_for(labels), "m", "s")   # a second copy
    dog = [0.1, 0.1, 0.8, 0.9, 0.35, 0.4, 0.3, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05]
    seen_open_below_on = False
    for k, score in enumerate(dog):
        item = frame(k, labels, Dog=score, Speech=0.2)
        session.results.put(item)
        engine.add(item)
        assert doc.poll_live() is None
        shown = {r.name: r.active for r in live.bars.rows}
        expected = engine.open_labels()
        assert shown == {name: bool(expected[labels.find(name).index]) for name in shown}, k
        seen_open_below_on |= shown.get("Dog", False) and score < 0.5
    assert seen_open_below_on                      # hysteresis: open at 0.35-0.4, as the engine says
    assert shown["Dog"] is False                   # and closed once the rule closes it
    assert [labels[e.label_index].name for e in doc.live.events] == ["Dog"]

    session.results.put(TaggerEnd(len(dog) * 16000 + 65920, len(dog) + 4.12, None, False))
    end = doc.poll_live()
    assert isinstance(end, TaggerEnd) and doc.live_state == "stopping"
    clock = session.source.clock_start()
    entry = doc.end_live(session.finish(end))                 # what LiveControl hands back
    assert doc.live is None and doc.live_state == "idle" and live.start.text() == "Start listening"
    assert entry.kind == "live" and entry.title.startswith(f"Live {clock:%H:%M}–")
    assert entry.title.endswith(", playback of scene.wav")
    assert files.display_name(entry.job) == entry.title and files.current == entry.job
    dog_event = entry.events[0]
    assert texts(live.events, 0) == [f"{clock + timedelta(seconds=dog_event.start_s):%H:%M:%S}"]   # wall clock
    assert texts(live.events, 3) == ["Dog"]
    assert [(key, text) for key, text in doc.unsaved()] == [(entry.job, entry.title)]
    dirty = []
    doc.dirtyChanged.connect(dirty.append)
    doc.mark_exported(entry.job, entry.timeline)
    assert doc.unsaved() == [] and dirty == [False]


def finished_dog_session(ready, scene):
    """A Document (on 0.5, off 0.2) with one finished, unrecorded live session of 8 windows: Dog 0.6-0.7 in 1-3."""
    doc = Document(EventConfig(on_threshold=0.5, off_threshold=0.2))
    doc.set_model(ready)
    session = LiveSession(ready.loaded, "cpu", FilePlayback(scene), 1.0, doc.rule_for(ready.loaded.labels))
    doc.begin_live(session)
    for k, score in enumerate([0.1, 0.6, 0.7, 0.6, 0.1, 0.1, 0.1, 0.1]):
        session.results.put(frame(k, ready.loaded.labels, Dog=score))
    session.results.put(TaggerEnd(8 * 16000 + 65920, 12.12, None, False))
    return doc, doc.end_live(session.finish(doc.poll_live()))


def test_a_finished_sessions_events_follow_the_documents_rule_like_a_files(qtbot, ready, scene):
    doc, entry = finished_dog_session(ready, scene)
    labels = ready.loaded.labels
    assert [labels[e.label_index].name for e in entry.events] == ["Dog"]
    doc.set_thresholds(0.8, 0.2)                           # the session used 0.5; its result now uses 0.8
    assert entry.events == [] and entry.unsaved


def test_marks_follow_a_changed_rule_and_the_playhead_goes_with_its_result(qtbot, ready):
    doc = Document(EventConfig(on_threshold=0.5, off_threshold=0.2))
    doc.set_model(ready)
    labels = ready.loaded.labels
    timeline = file_timeline(labels)
    timeline.scores[[2, 5], labels.find("Dog").index] = 0.6          # Dog rises and falls: 0.6 0.9 0.9 0.6
    doc.add_job(1, "/sounds/a.wav")
    doc.set_done(1, timeline, np.zeros((128, 10), np.uint8), 0.01)
    result, changed = doc.files[1], []
    doc.reviewChanged.connect(changed.append)
    dog, bell = result.events
    mark = doc.mark_event(1, 0, "wrong")
    assert (mark.label_id, mark.start_s, mark.end_s) == (labels.find("Dog").id, dog.start_s, dog.end_s)
    doc.mark_event(1, 1, "relabel", relabel_to="Dog")
    assert changed == [1, 1] and result.reviews() == {dog: mark, bell: result.marks[1]}
    doc.set_thresholds(0.7, 0.7)                     # a stricter rule: the bell is gone, the dog's event shrank
    (moved,) = result.events
    assert moved != dog and result.reviews() == {moved: mark}          # matched by overlap, not dropped
    assert doc.unmark_event(1, 0) == mark and result.marks[0].label_id == labels.find("Church bell").id
    assert doc.unmark_event(1, 0) is None and changed == [1, 1, 1]
    doc.set_thresholds(0.5, 0.2)                     # the old rule: the bell's mark is back on its event
    assert [m.verdict.value for m in result.reviews().values()] == ["relabel"]

    moves = []
    doc.playheadChanged.connect(lambda: moves.append(doc.playhead))
    doc.set_playhead(1, 3.5)
    doc.set_playhead(1, 3.5)                         # no change, no signal
    doc.remove(1)
    assert moves == [(1, 3.5), None] and doc.playhead is None


def test_review_marks_of_an_unrecorded_session_are_unsaved_until_an_export_holds_them(qtbot, ready, scene):
    """A session that was not recorded has no recording to key its marks by in the review store: an export
    is their only copy, so marks made or changed since the last export are unsaved like unexported windows."""
    doc, entry = finished_dog_session(ready, scene)
    assert entry.audio is None and len(entry.events) == 1
    doc.mark_event(entry.job, 0, "correct")
    assert doc.unsaved() == [(entry.job, f"{entry.title}: what it found and its review marks")]
    doc.mark_exported(entry.job, entry.timeline)              # the export wrote the windows and the mark
    assert doc.unsaved() == []
    dirty = []
    doc.dirtyChanged.connect(dirty.append)
    doc.mark_event(entry.job, 0, "wrong")                     # changed since the export
    assert doc.unsaved() == [(entry.job, f"{entry.title}: the review marks made since its last export")]
    assert dirty == [True]
    doc.unmark_event(entry.job, 0)                            # taken away: the export still has one
    assert doc.unsaved() and dirty == [True]
    doc.mark_event(entry.job, 0, "correct")                   # as exported again: nothing to lose
    assert doc.unsaved() == [] and dirty == [True, False]

    recorded = FileResult(-99, str(scene), 21.0, entry.timeline, status="done", kind="live", recorded=True,
                          events=list(entry.events))
    doc.files[recorded.job] = recorded                        # its marks are the review store's (by content)
    doc.mark_event(recorded.job, 0, "wrong")
    assert not recorded.unsaved and doc.unsaved() == []
