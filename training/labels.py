"""Label sets for trained models: ESC-50 categories (and speech) get AudioSet MIDs from assets/labels/esc50.csv.

Pure functions; any thread.
"""
from __future__ import annotations

from core.labels import ESC50_CATEGORIES, ESC50_CSV, Label, LabelSet

KNOWN_NAMES = ESC50_CATEGORIES + ("speech",)


def known_labels() -> dict[str, Label]:
    """ESC-50 category (or 'speech') -> its row of assets/labels/esc50.csv (MID where there is one)."""
    table = LabelSet.from_csv(ESC50_CSV)
    return {name: table[i] for i, name in enumerate(KNOWN_NAMES)}


def label_set(names: list[str]) -> LabelSet:
    """Labels for a model's outputs: known names get the stable id and display name, others keep theirs."""
    known = known_labels()
    return LabelSet(tuple(Label(i, known[n].id, known[n].name) if n in known else Label(i, n, n)
                          for i, n in enumerate(names)))
