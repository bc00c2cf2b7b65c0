"""Label sets for trained models: ESC-50 categories (and speech) get AudioSet MIDs from assets/labels/esc50.csv.

Pure functions; any thread.
"""
from __future__ import annotations

from core.labels import ASSETS, Label, LabelSet

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
