"""Entry point: `python main.py` opens the desktop app; `python main.py COMMAND ...` runs a headless command
(`analyze`, `listen`, `devices`; see `python main.py --help`)."""
import sys

from core.cli import main


def open_app(args) -> int:
    from app import run_app   # Qt is imported only when the window is wanted
    return run_app(args)


if __name__ == "__main__":
    sys.exit(main(open_app=open_app))
