"""Label sets: index (model output column), stable id (AudioSet MID or the model's own id), display name."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
AUDIOSET_CSV = ASSETS / "labels" / "audioset_527.csv"


@dataclass(frozen=True)
class Label:
    index: int
    id: str
    name: str


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
        """Look a label up by id or display name (case-insensitive for names)."""
        for label in self.labels:
            if label.id == key or label.name.lower() == key.lower():
                return label
        return None

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
