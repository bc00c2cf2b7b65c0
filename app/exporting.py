"""What the Export action can write and how: the current result (a file or a finished live session), every
result as combined tables, every result as a set of its own, or the live session. GUI thread (the files are
small; core.export writes them atomically).

Events are computed with the window's current event rule at export time, for files and the live
session alike, so the params file always names the rule that produced the rows next to it. Review marks
(FileResult.marks) are matched to those events (core.review.match_marks), so reviewed exports carry the
review column (core.export's `reviews=`).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Sequence

from core.config import EventConfig
from core.errors import ExportError, ExportExistsError, TaggerError
from core.events import detect_events, rule_for
from core.export import export_combined, export_timeline, target_paths
from core.inputs import NameClashError, plan_outputs
from core.review import Mark, match_marks
from core.timeline import Timeline
from app.controls import ExportRequest
from app.document import FileResult

__all__ = ["export_scopes", "write_export", "write_each", "each_plan", "EACH_TITLE"]

EACH_TITLE = "Each analysed file (one set per file)"


def export_scopes(current: FileResult | None, done: list[FileResult],
                  live: dict[str, Timeline]) -> dict[str, tuple[str, str]]:
    """scope -> (title, default file name stem), for what there is to export now.

    live: "live" -> the running (or last) session, "last" -> the finished one before it, when both exist.
    """
    scopes = {}
    if current is not None and current.status == "done" and current.kind == "live":
        scopes["file"] = (f"This session: {current.title}", _live_stem(current.timeline))
    elif current is not None and current.status == "done":
        scopes["file"] = (f"This file: {Path(current.path).name}", Path(current.path).stem)
    if len(done) > 1 or (done and "file" not in scopes):
        scopes["batch"] = (f"All {len(done)} results in the list (combined tables)", "combined")
    if len(done) > 1:
        scopes["each"] = (f"{EACH_TITLE}: {len(done)} sets", "")
    if "live" in live:
        scopes["live"] = ("The live session", _live_stem(live["live"]))
    if "last" in live:
        scopes["last"] = ("The previous live session", _live_stem(live["last"]))
    return scopes


def _live_stem(timeline: Timeline) -> str:
    start = timeline.clock_start.strftime("%Y%m%d-%H%M%S") if timeline.clock_start else time.strftime("%Y%m%d-%H%M%S")
    return f"live-{start}"


def write_export(request: ExportRequest, config: EventConfig, current: FileResult | None,
                 done: list[FileResult], live: Timeline | None, overwrite: bool = False,
                 live_marks: Sequence[Mark] = ()) -> list[Path]:
    """Write the request (not "each": write_each); ExportExistsError (nothing written) unless overwrite,
    ExportError, ConfigError.

    live: the session timeline of the request's scope ("live" or "last"), if any; live_marks: its review marks
    (a finished session's).
    """
    if not request.formats:
        raise ExportError("choose at least one format to export")
    stem = request.stem or None
    if request.scope == "file":
        if current is None or current.timeline is None:
            raise ExportError("no analysed file is chosen")
        timeline, marks = current.timeline, current.marks
    elif request.scope == "batch":
        if not done:
            raise ExportError("no file has been analysed yet")
        common = config                   # per-label thresholds that every file's labels have
        for r in done:
            common = rule_for(common, r.timeline.labels)
        items = [(r.timeline, detect_events(r.timeline, common)) for r in done]
        reviews = [match_marks(events, tl.labels, r.marks) for (tl, events), r in zip(items, done)]
        return export_combined(items, common, request.out_dir, request.formats, stem=stem or "combined",
                               overwrite=overwrite, reviews=reviews)
    elif live is not None:
        timeline, marks = live, live_marks
    else:
        raise ExportError("no live session to export: start listening first")
    config = rule_for(config, timeline.labels)
    events = detect_events(timeline, config)
    return export_timeline(timeline, events, config, request.out_dir, request.formats, stem=stem,
                           overwrite=overwrite, reviews=match_marks(events, timeline.labels, marks))


def each_plan(done: list[FileResult], out_dir: Path) -> list[tuple[FileResult, Path, str]]:
    """(result, folder, stem) of each result's own set, as `analyze --out` names them (core.inputs.plan_outputs):
    files keep their folders below the folder all of them share, mirrored under out_dir, and files whose
    stems collide are named by their full file names; a session that was not recorded is live-<start>. A
    recording listed twice is exported once. ExportError when two names still collide."""
    audio, seen = [], set()
    for r in done:
        if r.audio is not None and os.path.realpath(r.audio) not in seen:
            seen.add(os.path.realpath(r.audio))
            audio.append(r)
    root = Path(os.path.commonpath([os.path.dirname(os.path.abspath(r.audio)) for r in audio])) if audio else None
    try:
        plans, _ = plan_outputs([(Path(os.path.abspath(r.audio)), root) for r in audio], out_dir)
    except NameClashError as e:
        raise ExportError(str(e)) from None
    return ([(r, plan.out_dir, plan.stem) for r, plan in zip(audio, plans)]
            + [(r, out_dir, _live_stem(r.timeline)) for r in done if r.audio is None])


def write_each(request: ExportRequest, config: EventConfig, done: list[FileResult], overwrite: bool = False,
               wrote: Callable[[FileResult], None] = lambda result: None) -> list[Path]:
    """Write one set per result (each_plan's names), each set whole or not at all; wrote(result) after each.

    Every target is checked first: ExportExistsError naming all that exist (nothing written) unless overwrite,
    so the user is asked once. A set that fails (a full disk) does not stop the others: ExportError at the end
    says which failed and how many were written."""
    if not request.formats:
        raise ExportError("choose at least one format to export")
    plans = each_plan(done, request.out_dir)
    if not overwrite:
        existing = [p for _, folder, stem in plans for p in target_paths(folder, stem, request.formats) if p.exists()]
        if existing:
            raise ExportExistsError(f"{len(existing)} export files already exist; nothing was written", existing)
    written, failed = [], []
    for result, folder, stem in plans:
        timeline = result.timeline
        rule = rule_for(config, timeline.labels)
        events = detect_events(timeline, rule)
        try:
            written += export_timeline(timeline, events, rule, folder, request.formats, stem=stem,
                                       overwrite=overwrite, reviews=match_marks(events, timeline.labels, result.marks))
        except TaggerError as e:
            failed.append(f"{stem}: {e}")
            continue
        wrote(result)
    if failed:
        raise ExportError(f"{len(failed)} of {len(plans)} files could not be exported ({'; '.join(failed[:3])}); "
                          f"the sets of the other {len(plans) - len(failed)} were written, each whole")
    return written
