"""`analyze --cluster ray`: the same analysis as core.analyze, spread over a Ray cluster with Ray Data.

Threads and processes: `run_cluster` runs on the command line's main thread (the Ray driver); the stages run
in Ray worker processes and share nothing with it but the rows below. Ray is imported only here and in
core.cluster_stages, and only when --cluster is asked for (`pip install '.[cluster]'`).

Pipeline (one Ray Data dataset, streamed, so memory stays bounded for any archive):
1. one row per file (its index and path bytes);
2. decode + fbank in CPU tasks over blocks of files (core.cluster_stages.decode_chunks; short files share a
   task, see decode_blocks): each file is decoded block by block (core.audio_io.iter_blocks) into
   core.features.FbankStreamer, exactly as Analyzer.analyze does, and every
   `chunk_windows` complete windows leave as one row holding the frames they cover (frames, not windows:
   windows overlap, frames do not); the last row of a file carries its length and decode report;
3. scoring in an actor pool (core.cluster_stages.WindowScorer): each actor gets the model once (from the
   object store) and scores the windows of several rows, of several files, per model call: GPU actors in bf16
   where the cluster has GPUs, CPU actors otherwise (core.scorer.Scorer decides the precision, as locally);
4. the driver gathers each file's scores into a Timeline and writes events and exports with the code of
   local analyze (core.events, core.export, core.atomic), then appends the file to the run manifest.

A file that fails (cannot be decoded, non-finite scores) becomes a row with its reason and never stops the run;
an actor or task that dies is restarted and its rows retried by Ray (max_restarts / max_task_retries /
max_retries), and a row seen twice after a retry is counted once.
"""
from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.cluster_stages import CRASH_ONCE_ENV, PipelineSpec, stream_batches
from core.config import InferenceOptions
from core.errors import ConfigError, TaggerError

if TYPE_CHECKING:   # for the type hints only
    import argparse

    from core.config import EventConfig
    from core.inputs import Planned
    from core.modelfile import LoadedModel

__all__ = ["require_ray", "run_cluster", "connect", "ClusterOptions", "cluster_address"]


def require_ray():
    """The ray module, or TaggerError with the install command (the command line turns it into exit 2)."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise TaggerError(f"--cluster needs Ray, which is not installed ({e.name or e}): "
                          "pip install '.[cluster]'") from None
    return ray


@dataclass(frozen=True)
class ClusterOptions:
    """How the pipeline is cut; every default has one reason."""

    address: str | None = None        # None: RAY_ADDRESS if set, else a local Ray in this process
    chunk_windows: int = 32           # windows per row from decode to scoring: ~2 MB of frames at a 1 s hop
    rows_per_call: int = 16           # rows per actor call: windows of several short files share a model call
    batch_size: int | None = None     # windows per model call (default: 64 on a GPU, 8 on the CPU, as locally)
    block_s: float = 8.0              # decode block, as Analyzer
    max_actors: int | None = None     # default: one per GPU, else the CPUs less one (kept for decoding)
    crash_marker: str | None = field(default_factory=lambda: os.environ.get(CRASH_ONCE_ENV))


# ---- stage 4 and the run: the driver (the command line's main thread) -----------------------------

def cluster_address(value: str) -> str | None:
    """--cluster's value -> a Ray address (None: RAY_ADDRESS or a local Ray); UsageError text on a bad one."""
    if value == "ray":
        return None
    if value.startswith("ray://") and len(value) > len("ray://"):
        return value
    raise ValueError(f"--cluster takes 'ray' (a local Ray, or the cluster in RAY_ADDRESS) or ray://HOST:PORT, "
                     f"got {value!r}")


def connect(address: str | None = None, num_cpus: int | None = None, debug: bool = False) -> bool:
    """Join the Ray cluster at address (else RAY_ADDRESS), or start a local Ray with num_cpus (default: the
    machine's); nothing when Ray is already initialised. Workers get core/ through the runtime env, whether or
    not the package is installed on them. True when this call started Ray (the caller shuts it down)."""
    import logging

    import core
    ray = require_ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not debug:   # Ray Data's INFO lines and notes would bury the per-file lines
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    kwargs = {"logging_level": logging.DEBUG if debug else logging.ERROR, "log_to_driver": debug,
              "runtime_env": {"py_modules": [str(Path(core.__file__).resolve().parent)]}}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            # "local": a new Ray in this process, never one that `ray start` left running on this machine
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, **kwargs)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise ConfigError(f"cannot start or reach {where}: {' '.join(str(e).split())}; check the address "
                          "(`ray status` on the head node) and that the same Ray version is installed here") from e
    if threading.current_thread() is threading.main_thread():
        # ray.init puts its own SIGTERM handler in place (it aborts the driver with a C++ stack dump); SIGTERM
        # stays Ctrl-C here, so a stopped run finishes the file it is writing and says so in one line
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    return True


def decode_blocks(num_files: int, audio_s: float, cpus: int, block_audio_s: float = 120.0) -> int:
    """Decode tasks for a run: short files share a task (a Ray task costs tens of ms to schedule, as much as
    decoding a few seconds of audio), about block_audio_s of audio each, but never fewer than 4 per CPU, so
    that every CPU has work while the files of a slow task are still decoding."""
    return max(1, min(num_files, max(4 * cpus, math.ceil(audio_s / block_audio_s))))


def _actor_memory_bytes(loaded) -> int:
    """What a scoring actor holds: the model (twice while it is unpickled) and a few batches of windows. Its
    being set also keeps Ray from fusing decoding into the actors: decode tasks stay free to use every CPU."""
    weights = sum(t.numel() * t.element_size() for t in loaded.model.state_dict().values())
    return int(2 * weights + 256 * 2**20)


@dataclass
class _Gathered:
    """The rows of one file received so far (k0 -> (n, L) scores), until its final row and every window."""

    scores: dict[int, np.ndarray] = field(default_factory=dict)
    num_windows: int = -1
    meta: dict | None = None
    device: str = "cpu"
    inference: str = ""      # the actor's Scorer.describe()

    def complete(self) -> bool:
        return self.meta is not None and sum(len(s) for s in self.scores.values()) == self.num_windows


@dataclass
class RunCounts:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    audio_s: float = 0.0
    failures: list[str] = field(default_factory=list)


def run_cluster(args: argparse.Namespace, plans: list[Planned], formats: list[str], event_config: EventConfig,
                loaded: LoadedModel, prior_failures: int, options: ClusterOptions | None = None) -> int:
    """`analyze --cluster`: plans (core.inputs.Planned) -> exports, skipping what the manifest says is done.
    Prints like the local command line (one line per file, a summary); returns the exit code."""
    import sys

    from tqdm import tqdm

    from core.audio_io import probe_duration
    from core.inputs import one_line
    from core.manifest import FileKey, Manifest, model_hash, run_params
    from core.options import EXIT_FAILED, EXIT_OK
    from core.tables import export_targets, model_tag
    from core.windows import WindowPlan

    ray = require_ray()
    options = options or ClusterOptions(address=cluster_address(args.cluster), batch_size=args.batch_size)
    plan = WindowPlan.for_model(loaded.features, args.hop)
    manifest = Manifest(Path(args.out).expanduser())
    digest, params = model_hash(loaded), run_params(plan.hop_s, event_config, formats)
    out_root, tag = Path(args.out).expanduser(), model_tag(loaded.name, digest)
    done_records = manifest.done()
    counts = RunCounts(failed=prior_failures)
    todo = []          # (plan, key)
    for p in plans:
        key = FileKey.of(p.path, digest, params)
        if not args.force and key is not None and manifest.is_done(key, done_records):
            counts.skipped += 1
            continue
        targets = export_targets(p.out_dir, p.stem, formats, out_root, tag)
        if not args.force and (existing := [t for t in targets if t.exists()]):
            counts.failed += 1
            print(one_line(f"error: {p.path}: {existing[0]} already exists; pass --force to overwrite"),
                  file=sys.stderr)
            continue
        todo.append((p, key))

    started = time.monotonic()
    if todo:
        started_here = connect(options.address, debug=args.debug)   # ConfigError (exit 2) if unreachable
        durations = [probe_duration(p.path) for p, _ in todo]
        known = None not in durations
        # files and hours of audio done, throughput in audio hours per second, ETA from tqdm's rate
        bar = tqdm(total=sum(durations) / 3600 if known else None, unit="h", file=sys.stderr, dynamic_ncols=True,
                   disable=args.quiet, bar_format="{l_bar}{bar}| {n:.3f}/{total:.3f} h audio "
                   "[{elapsed}<{remaining}]{postfix}" if known else "{n:.3f} h audio [{elapsed}]{postfix}")
        bar.set_postfix_str(f"0/{len(todo)} files")
        try:
            _run_pipeline(ray, todo, durations, plan, loaded, event_config, formats, args, options, manifest,
                          counts, bar, tag)
        except (KeyboardInterrupt, ConfigError):   # ConfigError: exit 2, as locally
            raise
        except Exception as e:  # noqa: BLE001 - Ray gave up (e.g. the cluster went away): keep what is done
            counts.failed += 1
            print(one_line(f"error: the cluster run stopped: {type(e).__name__}: {e}; the {counts.done} files "
                           f"finished of {len(todo)} are in the manifest: run the same command again to analyse "
                           "the rest"), file=sys.stderr)
        finally:
            bar.close()
            if started_here:
                ray.shutdown()
    wall_s = time.monotonic() - started
    hours = counts.audio_s / 3600
    rate = (f" ({counts.done / wall_s:.2f} files/s, {hours / wall_s * 3600:.3g} h of audio per hour)"
            if counts.done and wall_s > 0 else "")
    print(one_line(f"done {counts.done}, skipped {counts.skipped}, failed {counts.failed}; {hours:.3f} h of audio "
                   f"in {wall_s:.1f} s{rate}; manifest {manifest.path}"), file=sys.stderr)
    return EXIT_FAILED if counts.failed else EXIT_OK


def _run_pipeline(ray, todo, durations, plan, loaded, event_config, formats, args, options: ClusterOptions,
                  manifest, counts: RunCounts, bar, tag: str) -> None:
    """Build the dataset, stream its rows, finish each file as its last window arrives."""
    from tqdm import tqdm

    from core.inputs import one_line

    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    if args.device == "cpu":                 # --device as locally: cpu forces CPU actors, cuda needs a GPU
        gpus = 0
    elif args.device.startswith("cuda") and not gpus:
        raise ConfigError("--device cuda was asked for, but the Ray cluster has no GPU; use --device cpu (or auto)")
    spec = PipelineSpec(
        items=[{"file": i, "path": os.fsencode(p.path)} for i, (p, _) in enumerate(todo)],
        decode_tasks=decode_blocks(len(todo), sum(d or 0.0 for d in durations), cpus),
        features=loaded.features, hop_s=plan.hop_s, chunk_windows=options.chunk_windows, block_s=options.block_s,
        rows_per_call=options.rows_per_call, actors=options.max_actors or (gpus if gpus else max(1, cpus - 1)),
        gpus=gpus, actor_memory_bytes=_actor_memory_bytes(loaded), model_ref=[ray.put(loaded)],
        batch_size=options.batch_size, crash_marker=options.crash_marker,
        inference=InferenceOptions("cuda" if gpus else "cpu", args.backend, args.precision, args.threads))
    gathered: dict[int, _Gathered] = {}
    finished: set[int] = set()
    L = len(loaded.labels)

    def fail(i: int, reason: str) -> None:
        p, key = todo[i]
        finished.add(i)
        gathered.pop(i, None)
        counts.failed += 1
        counts.failures.append(f"{p.path}: {reason}")
        manifest.append(key, p.path, "failed", reason=reason)
        tqdm.write(one_line(f"error: {p.path}: {reason}"), file=sys.stderr)
        _advance(bar, (durations[i] or 0.0) / 3600, counts, len(todo))

    for batch in stream_batches(ray, spec):
        for r in range(len(batch["file"])):
            i = int(batch["file"][r])
            if i in finished:
                continue            # a row retried after its file was finished or failed
            if batch["error"][r]:
                fail(i, str(batch["error"][r]))
                continue
            g = gathered.setdefault(i, _Gathered())
            k0, k1 = int(batch["k0"][r]), int(batch["k1"][r])
            if k1 > k0:
                g.scores[k0] = np.frombuffer(batch["scores"][r], np.float32).reshape(k1 - k0, L)
                g.device, g.inference = str(batch["device"][r]), str(batch["inference"][r])
            if batch["final"][r]:
                g.num_windows, g.meta = int(batch["num_windows"][r]), json.loads(str(batch["meta"][r]))
            if g.complete():
                finished.add(i)
                gathered.pop(i)
                try:
                    _finish_file(todo[i], g, plan, loaded, event_config, formats, args, manifest, counts, tag)
                except (TaggerError, OSError) as e:
                    fail(i, one_line(str(e)))
                    continue
                except Exception as e:  # noqa: BLE001 - a bug in one file's export must not stop the others
                    fail(i, one_line(f"unexpected {type(e).__name__}: {e} (a bug: rerun with --debug and report it)"))
                    continue
                _advance(bar, (durations[i] if durations[i] is not None else g.meta["duration_s"]) / 3600, counts,
                         len(todo))
    for i in sorted(set(range(len(todo))) - finished):   # cannot happen unless rows were lost
        fail(i, "the cluster returned no result for this file; run the same command again")


def _advance(bar, hours: float, counts: RunCounts, num_files: int) -> None:
    """Move the bar by one file's hours of audio; the postfix says files done and audio hours per wall hour."""
    if bar.total is not None:
        hours = min(hours, bar.total - bar.n)    # float sums must not push it past 100 %
    bar.update(hours)
    elapsed_h = bar.format_dict["elapsed"] / 3600
    speed = f", {counts.audio_s / 3600 / elapsed_h:.3g} h audio/h" if elapsed_h > 0 and counts.audio_s else ""
    bar.set_postfix_str(f"{counts.done}/{num_files} files, {counts.failed} failed{speed}")


def _finish_file(item, g: _Gathered, plan, loaded, event_config, formats, args, manifest, counts: RunCounts,
                 tag: str) -> None:
    """One file's rows -> Timeline -> events -> exports (as local analyze) -> a `done` manifest record."""
    from tqdm import tqdm

    from core.events import detect_events
    from core.atomic import signals_held
    from core.tables import export_file
    from core.inputs import one_line
    from core.timeline import Timeline

    p, key = item
    scores = np.concatenate([g.scores[k] for k in sorted(g.scores)]) if g.scores else np.zeros((0, len(loaded.labels)))
    if not np.isfinite(scores).all():
        bad = int(np.argwhere(~np.isfinite(scores))[0, 0])
        raise TaggerError(f"the model gave non-finite scores (NaN or inf) for '{p.path}' (window at "
                          f"{plan.starts_s(bad, bad + 1)[0]:.2f} s); the model file is probably damaged (NaN "
                          "weights); nothing was exported for this file")
    meta = dict(g.meta)
    duration_s = float(meta.pop("duration_s"))
    starts = plan.starts_s(0, g.num_windows)
    timeline = Timeline(source=str(p.path), labels=loaded.labels, starts_s=starts,
                        ends_s=plan.ends_s(starts, duration_s),
                        scores=scores.astype(np.float32), duration_s=duration_s, window_s=loaded.features.window_s,
                        hop_s=plan.hop_s, model_name=loaded.name, device=g.device,
                        sample_rate_hz=loaded.features.sample_rate_hz, kind="file",
                        extra={"inference": g.inference, **meta})
    events = detect_events(timeline, event_config)
    # the exports and their manifest line are one step for Ctrl-C / SIGTERM (held back until both are done), so
    # an interrupted run never leaves exports that its rerun would refuse as "already exists"
    with signals_held():
        written = export_file(timeline, events, event_config, p.out_dir, p.stem, formats, args.force,
                              Path(args.out).expanduser(), tag)
        manifest.append(key, p.path, "done", outputs=[str(w) for w in written], duration_s=round(duration_s, 6),
                        windows=timeline.num_windows, events=len(events), warning=meta.get("warning", ""))
    counts.done += 1
    counts.audio_s += duration_s
    if warning := meta.get("warning"):   # truncated/damaged: analysed as far as it decodes, and counted as failed
        counts.failed += 1
        tqdm.write(one_line(f"error: {p.path}: {warning}; {len(events)} events in what decoded -> "
                            f"{p.out_dir / p.stem}.*"), file=sys.stderr)
    else:
        tqdm.write(one_line(f"{p.path}: {len(events)} events in {timeline.num_windows} windows -> "
                            f"{p.out_dir / p.stem}.*"), file=sys.stderr)
