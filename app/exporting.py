"""What the Export action can write and how: the current file, every analysed file as combined tables,
or the live session. GUI thread (the files are small; core.export writes them atomically).

Events are computed with the window's current event rule at export time, for files and the live
session alike, so the params file always names the rule that produced the rows next to it.
"""
from __future__ import annotations

import time
from pathlib import Path

from core.config import EventConfig
from core.errors import ExportError
from core.events import detect_events
from core.export import export_combined, export_timeline
from core.timeline import Timeline
from app.controls import ExportRequest
from app.files_view import FileResult

__all__ = ["export_scopes", "write_export"]


def export_scopes(current: FileResult | None, done: list[FileResult], live: bool) -> dict[str, tuple[str, str]]:
    """scope -> (title, default file name stem), for what there is to export now."""
    scopes = {}
    if current is not None and current.status == "done":
        scopes["file"] = (f"This file: {Path(current.path).name}", Path(current.path).stem)
    if len(done) > 1 or (done and "file" not in scopes):
        scopes["batch"] = (f"All {len(done)} analysed files (combined tables)", "combined")
    if live:
        scopes["live"] = ("The live session", time.strftime("live-%Y%m%d-%H%M%S"))
    return scopes


def write_export(request: ExportRequest, config: EventConfig, current: FileResult | None,
                 done: list[FileResult], live: Timeline | None, overwrite: bool = False) -> list[Path]:
    """Write the request; ExportExistsError (nothing written) unless overwrite, ExportError, ConfigError."""
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
        items = [(r.timeline, detect_events(r.timeline, config)) for r in done]
        return export_combined(items, config, request.out_dir, request.formats, stem=stem or "combined",
                               overwrite=overwrite)
    elif live is not None:
        timeline = live
    else:
        raise ExportError("nothing was heard yet: start listening first")
    return export_timeline(timeline, detect_events(timeline, config), config, request.out_dir, request.formats,
                           stem=stem, overwrite=overwrite)
