"""The desktop app (PySide6 + pyqtgraph): the only package that imports Qt.

`run_app` is what `python main.py` calls; see app.main_window for the window and app.workers for the
threads behind it.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

__all__ = ["run_app", "make_application"]

log = logging.getLogger(__name__)


def make_application(argv: list[str] | None = None):
    """The QApplication (created once), with pyqtgraph set up for fixed-level row-major images."""
    import pyqtgraph as pg
    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(argv or sys.argv[:1])
    app.setApplicationName("AST Tagger")
    app.setOrganizationName("ast-tagger")
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background="k", foreground="w")
    return app


def run_app(args: argparse.Namespace) -> int:
    """Open the window (on the model and device of `args`, or the ones used last) and run until it closes."""
    if (sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM")
            and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")):
        print("error: no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set); run it "
              "on a desktop, or use the headless commands: `python main.py analyze FILE`, "
              "`python main.py listen` (see --help)", file=sys.stderr)
        return 2
    app = make_application()
    from PySide6 import QtCore
    from app.main_window import MainWindow
    from app.workers import set_cpu_threads

    threads = set_cpu_threads()
    log.info("torch uses %d CPU thread(s)", threads)
    window = MainWindow(model_spec=args.model, compute=args.device)
    window.show()
    if getattr(args, "files", None):
        window.open_paths(args.files)
    elif window.first_start and args.model is None:    # once: offer the 527-label model (the shipped one loads)
        QtCore.QTimer.singleShot(0, window.offer_audioset)
    return app.exec()
