"""The run manifest of `analyze --cluster`: one JSON line per file finished (or failed) in an output folder.

Used by the driver (the command line's main thread) only; workers never write it. A rerun reads it and skips
every file whose record says `done` with the same key: the file's real path, size and modification time,
the model's content hash and the parameters that shape the exports (hop, event rule, formats). Anything else
(a changed file, another model or rule, a file that failed) is analysed again.

Appends are atomic per line: each record is one `write()` on a file opened with O_APPEND, then fsynced, so
a crash leaves at most a last line cut short, which the reader ignores (and the file is redone). The key is
compared, never trusted: a record whose export files have since been removed is redone as well.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from core.config import EventConfig
from core.modelfile import LoadedModel

log = logging.getLogger(__name__)

MANIFEST_NAME = "ast-tagger-manifest.jsonl"


def model_hash(loaded: LoadedModel) -> str:
    """16 hex of a SHA-256 over the model's weights (names, shapes, dtypes, bytes), labels and features: the
    same for one model whatever file format it came from."""
    h = hashlib.sha256()
    for name, tensor in sorted(loaded.model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    h.update(json.dumps(list(loaded.labels.ids)).encode())
    h.update(repr(loaded.features).encode())
    return h.hexdigest()[:16]


def run_params(hop_s: float, event_config: EventConfig, formats: list[str]) -> dict:
    """The parameters that change a file's exports, JSON-normalised (so a record read back compares equal)."""
    return json.loads(json.dumps({"hop_s": round(hop_s, 6), "event": asdict(event_config),
                                  "formats": sorted(formats)}))


@dataclass(frozen=True)
class FileKey:
    """What a `done` record must match: the file as it is on disk, the model and the parameters."""

    path: str        # real path
    size: int
    mtime_ns: int
    model: str       # model_hash
    params: dict

    @classmethod
    def of(cls, path: Path, model: str, params: dict) -> "FileKey | None":
        """The key of the file now; None when it cannot be read (it is then analysed, and fails there)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        return cls(os.path.realpath(path), st.st_size, st.st_mtime_ns, model, params)

    def as_record(self) -> dict:
        return {"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns, "model": self.model,
                "params": self.params}


class Manifest:
    """The manifest file of one output folder."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / MANIFEST_NAME

    def read(self) -> list[dict]:
        """Every complete record in order; a line cut short by a crash is skipped."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            return []
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            try:
                record = json.loads(line)
            except ValueError:
                log.warning("%s line %d is not a complete record (a crash while writing?); ignored", self.path,
                            number)
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def done(self) -> dict[tuple, dict]:
        """(path, size, mtime_ns, model, params as JSON) -> the last `done` record of that key."""
        return {_key_of(r): r for r in self.read() if r.get("status") == "done"}

    def is_done(self, key: FileKey, done: dict[tuple, dict]) -> bool:
        """A `done` record of this exact key exists and every file it wrote is still there."""
        record = done.get(_key_of(key.as_record()))
        return record is not None and all(os.path.exists(p) for p in record.get("outputs", []))

    def append(self, key: FileKey | None, path: Path, status: str, **fields) -> None:
        """Append one record (status `done` or `failed`) as one atomic line."""
        record = {**(key.as_record() if key else {"path": os.path.realpath(path)}), "status": status, **fields,
                  "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        line = (json.dumps(record, default=str) + "\n").encode("utf-8")   # ASCII: undecodable bytes as \udcxx
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, line)
            if written != len(line):   # a full disk: the reader drops the cut line and the file is redone
                raise OSError(f"only {written} of {len(line)} bytes of a manifest record were written to {self.path}")
            os.fsync(fd)
        finally:
            os.close(fd)


def _key_of(record: dict) -> tuple:
    return (record.get("path"), record.get("size"), record.get("mtime_ns"), record.get("model"),
            json.dumps(record.get("params"), sort_keys=True))
