"""Review marks on detected events (correct / wrong / relabelled, with a note), kept per audio file and model.

A mark names its event as it was detected: (label id, start_s, end_s), times in ms as in the exports. When
the event rule changes (a threshold, the median, the hop), events move, split or merge, so marks are matched
to the events of now by `match_marks`:

1. an event with the same label id and the same start and end (to 1 ms) takes that mark;
2. otherwise the mark of the same label whose span overlaps the event's by at least half of the shorter of
   the two spans, the one with the largest overlap (the later mark on a tie). An event that grew or shrank
   keeps its mark; both halves of an event that split keep it (the reviewer judged the sound in that stretch);
   an event merged from several takes the mark that covers most of it; a mark of another label never applies.

Marks are never changed or dropped by a rule change: moving the threshold back brings back the exact match.

Storage (`ReviewStore`): one JSON file per audio content under the user data folder (platformdirs:
~/.local/share/ast-tagger/reviews on Linux), named by the SHA-256 of the whole file and holding the marks per
model name. Keyed by content, not path, a moved or renamed file is found again; an edited file is another
recording and starts without marks. Hashing runs once per file version: the digests are remembered by real
path, size and modification time (digests.json). Every write is read-modify-write under core.atomic's lock
and an atomic rename, so two windows never lose each other's marks. A store file that cannot be read is
renamed `<name>.corrupt-<time>` and reported (`Reviews.warning`); other files' reviews are separate files.

Threads: a ReviewStore does file I/O (a hash of a long recording takes seconds once); call it from a worker
thread or accept a short wait on the GUI thread. Marks and Reviews are frozen values.
"""
from __future__ import annotations

import enum
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from core.atomic import atomic_write, exclusive_lock
from core.errors import TaggerError
from core.labels import LabelSet
from core.timeline import Event

__all__ = ["Verdict", "Mark", "Reviews", "ReviewStore", "ReviewError", "match_marks", "default_root"]

log = logging.getLogger(__name__)

FORMAT = "ast-tagger-reviews"
VERSION = 1
MAX_DIGESTS = 10_000      # remembered file digests; the oldest are forgotten (they are only a cache)
_HASH_CHUNK = 1 << 20


class ReviewError(TaggerError):
    """A mark is not valid (an unknown verdict, a relabel without a label) or the store cannot be written."""


class Verdict(str, enum.Enum):
    CORRECT = "correct"
    WRONG = "wrong"
    RELABEL = "relabel"


@dataclass(frozen=True)
class Mark:
    """One reviewer's verdict on one detected event, named by the event as detected."""

    label_id: str            # the label the model gave it
    start_s: float           # the event as detected, rounded to 1 ms
    end_s: float
    verdict: Verdict          # a Verdict or its value ("correct", ...)
    relabel_to: str = ""     # the label id it really is (RELABEL only)
    note: str = ""

    def __post_init__(self) -> None:
        try:
            verdict = Verdict(self.verdict)
        except ValueError:
            raise ReviewError(f"a review verdict is one of {', '.join(v.value for v in Verdict)}, "
                              f"got {self.verdict!r}") from None
        if not (isinstance(self.start_s, (int, float)) and isinstance(self.end_s, (int, float))
                and math.isfinite(self.start_s) and math.isfinite(self.end_s) and self.start_s <= self.end_s):
            raise ReviewError(f"a reviewed event needs finite times with start <= end, got {self.start_s!r}, "
                              f"{self.end_s!r}")
        if not all(isinstance(text, str) for text in (self.label_id, self.relabel_to, self.note)):
            raise ReviewError("a mark's label id, relabel_to and note are text")
        if (verdict is Verdict.RELABEL) != bool(self.relabel_to):
            raise ReviewError("a relabel names the label the event really is (relabel_to), and only a relabel does; "
                              f"got verdict {verdict.value!r} with relabel_to {self.relabel_to!r}")
        object.__setattr__(self, "verdict", verdict)
        object.__setattr__(self, "start_s", round(float(self.start_s), 3))
        object.__setattr__(self, "end_s", round(float(self.end_s), 3))

    @classmethod
    def of(cls, event: Event, labels: LabelSet, verdict: Verdict | str, relabel_to: str = "",
           note: str = "") -> "Mark":
        """The mark of a detected event; relabel_to is a label id of `labels` (or a name it finds)."""
        if relabel_to:
            target = labels.find(relabel_to)
            if target is None:
                raise ReviewError(f"cannot relabel to {relabel_to!r}: not a label of this model; "
                                  f"e.g. {', '.join(repr(n) for n in labels.suggest(relabel_to) or labels.names[:3])}")
            relabel_to = target.id
        return cls(labels[event.label_index].id, event.start_s, event.end_s, verdict, relabel_to, note)

    @property
    def key(self) -> tuple[str, float, float]:
        return self.label_id, self.start_s, self.end_s

    def text(self, labels: LabelSet) -> str:
        """The export cell: `correct`, `wrong` or `relabel:<display name>` (the id if the model lacks it)."""
        if self.verdict is not Verdict.RELABEL:
            return self.verdict.value
        target = labels.find(self.relabel_to)
        return f"relabel:{target.name if target is not None else self.relabel_to}"


def _overlap(mark: Mark, event: Event) -> float:
    return min(mark.end_s, event.end_s) - max(mark.start_s, event.start_s)


def match_marks(events: Iterable[Event], labels: LabelSet, marks: Iterable[Mark]) -> dict[Event, Mark]:
    """The mark of each event that has one, by the rule in the module docstring."""
    by_label: dict[str, list[Mark]] = {}
    for mark in marks:
        by_label.setdefault(mark.label_id, []).append(mark)
    matched: dict[Event, Mark] = {}
    for event in events:
        candidates = by_label.get(labels[event.label_index].id, [])
        key = (labels[event.label_index].id, round(event.start_s, 3), round(event.end_s, 3))
        exact = [m for m in candidates if m.key == key]
        if exact:
            matched[event] = exact[-1]
            continue
        best, best_overlap = None, 0.0
        for mark in candidates:
            overlap = _overlap(mark, event)
            shorter = min(mark.end_s - mark.start_s, event.end_s - event.start_s)
            if overlap > 0 and overlap >= shorter / 2 and overlap >= best_overlap:
                best, best_overlap = mark, overlap
        if best is not None:
            matched[event] = best
    return matched


@dataclass(frozen=True)
class Reviews:
    """The marks of one audio file under one model, and why they may be incomplete."""

    marks: tuple[Mark, ...] = ()
    warning: str = ""        # one line for the user when the store file was unreadable and set aside


def default_root() -> Path:
    """The user data folder the reviews live in (platformdirs: ~/.local/share/ast-tagger on Linux)."""
    import platformdirs
    return Path(platformdirs.user_data_dir("ast-tagger", appauthor=False))


class ReviewStore:
    """Marks per audio content and model, as JSON files under `root`/reviews (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.folder = Path(root if root is not None else default_root()) / "reviews"

    # ---- public --------------------------------------------------------------------------------------

    def load(self, audio: str | os.PathLike, model_name: str) -> Reviews:
        """The marks of `audio` under model_name (none yet: empty). ReviewError if the audio cannot be read."""
        digest = self.digest(audio)
        with exclusive_lock(self._ensure_folder(), digest):
            document, warning = self._read(digest)
        return Reviews(tuple(_marks_of(document, model_name)), warning)

    def put(self, audio: str | os.PathLike, model_name: str, mark: Mark) -> Reviews:
        """Save `mark`, replacing the mark of the same event (same key); returns the marks now kept."""
        return self._update(audio, model_name, lambda marks: [m for m in marks if m.key != mark.key] + [mark])

    def remove(self, audio: str | os.PathLike, model_name: str, key: tuple[str, float, float]) -> Reviews:
        """Forget the mark of the event `key` (label id, start_s, end_s); returns the marks now kept."""
        key = (key[0], round(float(key[1]), 3), round(float(key[2]), 3))
        return self._update(audio, model_name, lambda marks: [m for m in marks if m.key != key])

    def digest(self, audio: str | os.PathLike) -> str:
        """SHA-256 of the file's bytes, read from digests.json while its real path, size and mtime match."""
        real = os.path.realpath(audio)
        try:
            stat = os.stat(real)
            stamp = [stat.st_size, stat.st_mtime_ns]
            cached = self._digests().get(real)
            if isinstance(cached, list) and len(cached) == 3 and cached[:2] == stamp and isinstance(cached[2], str):
                return cached[2]
            sha = hashlib.sha256()
            with open(real, "rb") as f:
                while chunk := f.read(_HASH_CHUNK):
                    sha.update(chunk)
        except OSError as e:
            raise ReviewError(f"cannot read '{os.fsdecode(audio)}' to find its reviews: {e.strerror or e}") from None
        digest = sha.hexdigest()
        self._remember(real, stamp + [digest])
        return digest

    # ---- the files ------------------------------------------------------------------------------------

    def _ensure_folder(self) -> Path:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ReviewError(f"cannot create the review folder {self.folder}: {e.strerror or e}") from None
        return self.folder

    def _update(self, audio: str | os.PathLike, model_name: str, change) -> Reviews:
        digest = self.digest(audio)
        with exclusive_lock(self._ensure_folder(), digest):
            document, warning = self._read(digest)
            marks = change(_marks_of(document, model_name))
            document.setdefault("models", {})[model_name] = [_to_json(m) for m in marks]
            document.update(format=FORMAT, version=VERSION, sha256=digest, path=os.fsdecode(os.path.abspath(audio)))
            try:
                with atomic_write(self.folder / f"{digest}.json") as f:
                    json.dump(document, f, indent=1, ensure_ascii=False)
            except OSError as e:
                raise ReviewError(f"could not save the review in {self.folder}: {e.strerror or e}; the marks "
                                  "saved before are unchanged") from None
        return Reviews(tuple(marks), warning)

    def _read(self, digest: str) -> tuple[dict, str]:
        """(the store document of `digest`, a warning); an unreadable file is set aside, never lost."""
        path = self.folder / f"{digest}.json"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}, ""
        except (OSError, UnicodeDecodeError) as e:
            return {}, self._set_aside(path, str(e))
        try:
            document = json.loads(text)
            if not (isinstance(document, dict) and document.get("format") == FORMAT
                    and isinstance(document.get("models", {}), dict)):
                raise ValueError("not an ast-tagger reviews file")
            for model_name in document.get("models", {}):
                _marks_of(document, model_name)
        except (ValueError, TypeError, KeyError, ReviewError) as e:
            return {}, self._set_aside(path, " ".join(str(e).split()))
        return document, ""

    def _set_aside(self, path: Path, reason: str) -> str:
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            os.replace(path, aside)
            where = f"it was kept as {aside.name}"
        except OSError as e:
            where = f"it could not be moved aside ({e.strerror or e})"
        message = (f"the saved reviews of this recording ({path}) could not be read ({reason}); {where} and this "
                   "recording's reviews start empty; other recordings' reviews are not affected")
        log.warning("%s", message)
        return message

    def _digests(self) -> dict:
        try:
            table = json.loads((self.folder / "digests.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}      # none yet, or damaged: it is a cache, the files are hashed again
        return table if isinstance(table, dict) else {}

    def _remember(self, real: str, entry: list) -> None:
        try:
            with exclusive_lock(self._ensure_folder(), "digests.json"):
                table = self._digests()
                table.pop(real, None)
                table[real] = entry
                for old in list(table)[:max(0, len(table) - MAX_DIGESTS)]:
                    del table[old]
                with atomic_write(self.folder / "digests.json") as f:
                    json.dump(table, f, ensure_ascii=False)
        except (OSError, ReviewError) as e:   # only a cache: the next call hashes again
            log.debug("could not remember the digest of %s: %s", real, e)


def _to_json(mark: Mark) -> dict:
    fields = asdict(mark)
    fields["verdict"] = mark.verdict.value
    return fields


def _marks_of(document: dict, model_name: str) -> list[Mark]:
    rows = document.get("models", {}).get(model_name, [])
    if not isinstance(rows, list):
        raise ValueError(f"the marks of model {model_name!r} are not a list")
    return [Mark(**row) for row in rows]
