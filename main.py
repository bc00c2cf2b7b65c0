"""Entry point: `python main.py` opens the desktop app; `python main.py COMMAND ...` runs a headless command
(`analyze`, `listen`, `devices`; see `python main.py --help`)."""
import sys

from core.cli import main


def open_app(args) -> int:
    from app import run_app   # Qt is imported only when the window is wanted
    return run_app(args)


def entry() -> int:
    """The installed `ast-tagger` command: the same as `python main.py`."""
    return main(open_app=open_app)


if __name__ == "__main__":
    sys.exit(entry())
