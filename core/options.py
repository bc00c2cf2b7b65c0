"""What the command-line subcommands share: exit codes, UsageError, the event-rule and format arguments.

Imported by core.cli (`analyze`, the entry point) and core.listen (`listen`, `devices`), which import each
other no more. Main thread; nothing here prints.
Exit codes: 0 every file succeeded, 1 some failed (the others are still analysed and written), 2 usage.
"""
from __future__ import annotations

import argparse

from core.config import EventConfig
from core.export import FORMATS

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "UsageError", "add_event_arguments", "event_config_from",
           "parse_formats"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments: printed as one line, exit code 2."""


def add_event_arguments(p: argparse.ArgumentParser) -> None:
    d = EventConfig()
    g = p.add_argument_group("event rule")
    g.add_argument("--threshold", type=float, default=d.on_threshold, metavar="P",
                   help=f"score that opens an event (default {d.on_threshold})")
    g.add_argument("--off-threshold", type=float, default=None, metavar="P",
                   help=f"score below which an open event closes (default: threshold x {d.off_threshold / d.on_threshold:.2f})")
    g.add_argument("--label-threshold", action="append", default=[], metavar="LABEL=P",
                   help="on threshold for one label (id or display name); repeatable")
    g.add_argument("--median", type=float, default=d.median_s, metavar="S",
                   help=f"median filter length in seconds; smooths when an event closes (default {d.median_s:g})")
    g.add_argument("--min-duration", type=float, default=d.min_duration_s, metavar="S",
                   help=f"drop events shorter than S seconds (default {d.min_duration_s})")
    g.add_argument("--merge-gap", type=float, default=d.merge_gap_s, metavar="S",
                   help=f"merge events of one label closer than S seconds (default {d.merge_gap_s})")


def event_config_from(args: argparse.Namespace) -> EventConfig:
    d = EventConfig()
    off = args.off_threshold if args.off_threshold is not None else args.threshold * d.off_threshold / d.on_threshold
    per_label = []
    for item in args.label_threshold:
        name, sep, value = item.rpartition("=")
        if not sep or not name:
            raise UsageError(f"--label-threshold expects LABEL=P, got {item!r}")
        try:
            per_label.append((name, float(value)))
        except ValueError:
            raise UsageError(f"--label-threshold {item!r}: {value!r} is not a number") from None
    return EventConfig(on_threshold=args.threshold, off_threshold=off, median_s=args.median,
                       min_duration_s=args.min_duration, merge_gap_s=args.merge_gap,
                       label_thresholds=tuple(per_label))


def parse_formats(text: str) -> list[str]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in FORMATS]
    if unknown or not keys:
        raise UsageError(f"unknown format(s) {unknown or text!r}; choose from {','.join(FORMATS)}")
    return keys
