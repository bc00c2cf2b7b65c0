"""What the command-line subcommands share: exit codes, UsageError, the event-rule and format arguments, and
loading the model with a download bar.

Imported by core.cli (`analyze`, the entry point), core.listen (`listen`, `devices`) and core.clips (`clips`),
which import each other no more. Main thread; nothing here prints but that bar (stderr).
Exit codes: 0 every file succeeded, 1 some failed (the others are still analysed and written), 2 usage.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import threading
from typing import TYPE_CHECKING

from core.config import BACKENDS, PRECISIONS, EventConfig, InferenceOptions
from core.export import FORMATS
from core.inputs import one_line

if TYPE_CHECKING:
    from core.modelfile import LoadedModel   # imports torch: only where a model is loaded

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "UsageError", "Parser", "add_event_arguments",
           "event_config_from", "parse_formats", "seconds_above_zero", "seconds_from_zero", "probability",
           "count_above_zero", "folder_name", "add_inference_arguments", "inference_options_from",
           "load_model_showing_download", "sigterm_as_interrupt"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line: `main.py analyze: error: argument --hop: ...`, exit 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def seconds_above_zero(text: str) -> float:
    if (value := _number(text)) <= 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def seconds_from_zero(text: str) -> float:
    if (value := _number(text)) < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def probability(text: str) -> float:
    if not 0.0 <= (value := _number(text)) <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a score between 0 and 1, got {text!r}")
    return value


def count_above_zero(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def folder_name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder, got an empty name (leave --out out to write "
                                         "next to each file)")
    return text


def add_event_arguments(p: argparse.ArgumentParser) -> None:
    d = EventConfig()
    g = p.add_argument_group("event rule")
    g.add_argument("--threshold", type=probability, default=d.on_threshold, metavar="P",
                   help=f"score that opens an event (default {d.on_threshold})")
    g.add_argument("--off-threshold", type=probability, default=None, metavar="P",
                   help=f"score below which an open event closes (default: threshold x {d.off_threshold / d.on_threshold:.2f})")
    g.add_argument("--label-threshold", action="append", default=[], metavar="LABEL=P",
                   help="on threshold for one label (id or display name); repeatable")
    g.add_argument("--median", type=seconds_from_zero, default=d.median_s, metavar="S",
                   help=f"median filter length in seconds; smooths when an event closes (default {d.median_s:g})")
    g.add_argument("--min-duration", type=seconds_from_zero, default=d.min_duration_s, metavar="S",
                   help=f"drop events shorter than S seconds (default {d.min_duration_s})")
    g.add_argument("--merge-gap", type=seconds_from_zero, default=d.merge_gap_s, metavar="S",
                   help=f"merge events of one label closer than S seconds (default {d.merge_gap_s})")


def add_inference_arguments(p: argparse.ArgumentParser) -> None:
    """--device, --backend, --precision, --threads (core.backends says what auto picks)."""
    g = p.add_argument_group("inference")
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where the model runs")
    g.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="engine of the model: auto = openvino on the CPU when installed (pip install "
                        "'ast-tagger[fast]'), else torch")
    g.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto = bf16 where the CPU (AVX512-BF16, AMX) or GPU computes it natively and the "
                        "model's scores stay within 0.02 of fp32, else fp32 (exact)")
    g.add_argument("--threads", type=count_above_zero, default=None, metavar="N",
                   help="CPU threads for the model (default: 1 for small models such as the shipped one, "
                        "else every core up to 4)")


def inference_options_from(args: argparse.Namespace) -> InferenceOptions:
    return InferenceOptions(args.device, args.backend, args.precision, args.threads)


def event_config_from(args: argparse.Namespace) -> EventConfig:
    d = EventConfig()
    off = args.off_threshold if args.off_threshold is not None else args.threshold * d.off_threshold / d.on_threshold
    per_label = []
    for item in args.label_threshold:
        name, sep, value = item.rpartition("=")
        if not sep or not name:
            raise UsageError(f"--label-threshold expects LABEL=P, got {item!r}")
        try:
            per_label.append((name, probability(value)))
        except argparse.ArgumentTypeError as e:
            raise UsageError(f"--label-threshold {item!r}: {e}") from None
    return EventConfig(on_threshold=args.threshold, off_threshold=off, median_s=args.median,
                       min_duration_s=args.min_duration, merge_gap_s=args.merge_gap,
                       label_thresholds=tuple(per_label))


def parse_formats(text: str, datasets: tuple[str, ...] = ()) -> list[str]:
    """--formats -> format keys of core.export.FORMATS, plus `datasets` (analyze: core.tables' `parquet`)."""
    keys = [k.strip() for k in text.split(",") if k.strip()]
    valid = [*FORMATS, *datasets]
    unknown = [k for k in keys if k not in valid]
    if unknown or not keys:
        raise UsageError(f"unknown format(s) {unknown or text!r}; choose from {','.join(valid)}")
    return keys


def load_model_showing_download(spec: str | None, quiet: bool = False) -> LoadedModel:
    """core.modelfile.load_model(spec), with a tqdm byte bar on stderr (the analysis bar's style) while a Hub id
    downloads: none for other models or a cached one, which makes no request. Ctrl-C raises KeyboardInterrupt
    out of the transfer and huggingface_hub deletes the file it was writing, so the cache keeps complete files
    only. quiet: no bar."""
    from tqdm import tqdm

    from core.modelfile import load_model

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:          # the first call, (0, total), comes once the sizes are known
            bar = tqdm(total=total, desc=spec, unit="B", unit_scale=True, file=sys.stderr, dynamic_ncols=True)
        bar.update(done - bar.n)

    try:
        return load_model(spec, progress=None if quiet else progress)
    finally:
        if bar is not None:
            bar.close()          # ends the bar's line, also before the one-line error or "interrupted"


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt like Ctrl-C (main thread only), so that an export in progress is
    rolled back instead of leaving a partial set; the previous handler is restored on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
