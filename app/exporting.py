"""What the Export action can write and how: the current result (a file or a finished live session), every
result as combined tables, or the live session. GUI thread (the files are small; core.export writes them
atomically).

Events are computed with the window's current event rule at export time, for files and the live
session alike, so the params file always names the rule that produced the rows next to it.
"""
from __future__ import annotations

import time
from pathlib import Path

from core.config import EventConfig
from core.errors import ExportError
from core.events import detect_events, rule_for
from core.export import export_combined, export_timeline
from core.timeline import Timeline
from app.controls import ExportRequest
from app.document import FileResult

__all__ = ["export_scopes", "write_export"]


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
    if "live" in live:
        scopes["live"] = ("The live session", _live_stem(live["live"]))
    if "last" in live:
        scopes["last"] = ("The previous live session", _live_stem(live["last"]))
    return scopes


def _live_stem(timeline: Timeline) -> str:
    start = timeline.clock_start.strftime("%Y%m%d-%H%M%S") if timeline.clock_start else time.strftime("%Y%m%d-%H%M%S")
    return f"live-{start}"


def write_export(request: ExportRequest, config: EventConfig, current: FileResult | None,
                 done: list[FileResult], live: Timeline | None, overwrite: bool = False) -> list[Path]:
    """Write the request; ExportExistsError (nothing written) unless overwrite, ExportError, ConfigError.

    live: the session timeline of the request's scope ("live" or "last"), if any.
    """
    if not request.formats:
        raise ExportError("choose at least one format to export")
    stem = request.stem or None
    if request.scope == "file":
        if current is None or current.timeline is None:
            raise ExportError("no analysed file is chosen")
        timeline = current.timeline
    elif request.scope == "batch":
        if not done:
            raise ExportError("no file has been analysed yet")
        common = config                   # per-label thresholds that every file's labels have
        for r in done:
            common = rule_for(common, r.timeline.labels)
        items = [(r.timeline, detect_events(r.timeline, common)) for r in done]
        return export_combined(items, common, request.out_dir, request.formats, stem=stem or "combined",
                               overwrite=overwrite)
    elif live is not None:
        timeline = live
    else:
        raise ExportError("no live session to export: start listening first")
    config = rule_for(config, timeline.labels)
    return export_timeline(timeline, detect_events(timeline, config), config, request.out_dir, request.formats,
                           stem=stem, overwrite=overwrite)
