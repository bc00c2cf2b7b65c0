"""Label sets: index (model output column), stable id (AudioSet MID or the model's own id), display name."""
from __future__ import annotations

import csv
import difflib
import functools
import json
from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
AUDIOSET_CSV = ASSETS / "labels" / "audioset_527.csv"
ESC50_CSV = ASSETS / "labels" / "esc50.csv"

# The 50 ESC-50 categories in `target` order (official meta/esc50.csv); row i of esc50.csv is target i,
# row 50 is `speech`.
ESC50_CATEGORIES = (
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow",
    "rain", "sea_waves", "crackling_fire", "crickets", "chirping_birds", "water_drops", "wind",
    "pouring_water", "toilet_flush", "thunderstorm", "crying_baby", "sneezing", "clapping", "breathing",
    "coughing", "footsteps", "laughing", "brushing_teeth", "snoring", "drinking_sipping",
    "door_wood_knock", "mouse_click", "keyboard_typing", "door_wood_creaks", "can_opening",
    "washing_machine", "vacuum_cleaner", "clock_alarm", "clock_tick", "glass_breaking",
    "helicopter", "chainsaw", "siren", "car_horn", "engine", "train", "church_bells", "airplane",
    "fireworks", "hand_saw",
)


@functools.cache
def _dataset_names_by_id() -> dict[str, tuple[str, ...]]:
    """label id (AudioSet MID, or the category itself) -> the training sets' own names for it."""
    with open(ESC50_CSV, newline="", encoding="utf-8") as f:
        ids = [row["mid"] for row in sorted(csv.DictReader(f), key=lambda r: int(r["index"]))]
    return {mid: (name.replace("_", " "),) for mid, name in zip(ids, ESC50_CATEGORIES)}


def _norm(text: str) -> str:
    return " ".join(text.replace("_", " ").lower().split())


@dataclass(frozen=True)
class Label:
    index: int
    id: str
    name: str

    @property
    def dataset_names(self) -> tuple[str, ...]:
        """What the datasets we train on call this label (ESC-50: 'rooster' for 'Crowing,
        cock-a-doodle-doo', 'hen' for 'Chicken, rooster'), found by its id; () if none."""
        return _dataset_names_by_id().get(self.id, ())

    @property
    def title(self) -> str:
        """The display name, with the dataset's name where it says something else: 'Chicken, rooster (hen)'."""
        other = [n for n in self.dataset_names if _norm(n) not in _norm(self.name)]
        return f"{self.name} ({', '.join(other)})" if other else self.name

    def matches(self, words: list[str]) -> bool:
        """Every word is in the display name, the id or a dataset name (case-insensitive): the app's filter."""
        text = _norm(" ".join((self.name, self.id, *self.dataset_names)))
        return all(_norm(w) in text for w in words)


@dataclass(frozen=True)
class LabelSet:
    labels: tuple[Label, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Label:
        return self.labels[index]

    def __iter__(self):
        return iter(self.labels)

    @property
    def names(self) -> list[str]:
        return [label.name for label in self.labels]

    @property
    def ids(self) -> list[str]:
        return [label.id for label in self.labels]

    def find(self, key: str) -> Label | None:
        """Look a label up by id, display name or dataset name (case-insensitive for names), in that order."""
        key_norm = _norm(key)
        for match in (lambda l: l.id == key, lambda l: _norm(l.name) == key_norm,
                      lambda l: key_norm in (_norm(n) for n in l.dataset_names)):
            for label in self.labels:
                if match(label):
                    return label
        return None

    def suggest(self, key: str, n: int = 3) -> list[str]:
        """Up to n labels whose display or dataset name is close to `key` (for 'did you mean'), as titles."""
        names = {_norm(name): label for label in self.labels for name in (label.name, *label.dataset_names)}
        close = difflib.get_close_matches(_norm(key), list(names), n=n, cutoff=0.5)
        return list(dict.fromkeys(names[c].title for c in close))

    def to_json(self) -> str:
        return json.dumps([[l.index, l.id, l.name] for l in self.labels])

    @classmethod
    def from_json(cls, text: str) -> "LabelSet":
        """Read `to_json`'s rows; anything else raises ValueError naming the first bad row."""
        rows = json.loads(text)
        if not isinstance(rows, list):
            raise ValueError(f"labels must be a list of [index, id, name] rows, got a {type(rows).__name__}")
        labels = []
        for row in rows:
            if not (isinstance(row, list) and len(row) == 3 and type(row[0]) is int
                    and isinstance(row[1], str) and isinstance(row[2], str)):
                raise ValueError(f"labels must be a list of [index, id, name] rows (int, text, text), got {row!r:.80}")
            labels.append(Label(*row))
        return cls(tuple(labels))

    @classmethod
    def from_names(cls, names: list[str], ids: list[str] | None = None) -> "LabelSet":
        ids = ids or names
        return cls(tuple(Label(i, ids[i], names[i]) for i in range(len(names))))

    @classmethod
    def generic(cls, num_classes: int) -> "LabelSet":
        return cls.from_names([f"class_{i}" for i in range(num_classes)])

    @classmethod
    def from_csv(cls, path: str | Path) -> "LabelSet":
        """Read `index,mid,display_name` (the AudioSet class_labels_indices.csv layout)."""
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        rows.sort(key=lambda r: int(r["index"]))
        return cls(tuple(Label(int(r["index"]), r["mid"], r["display_name"]) for r in rows))


def audioset_labels() -> LabelSet:
    """The 527 AudioSet labels in the output order of the released AST checkpoints."""
    return LabelSet.from_csv(AUDIOSET_CSV)
