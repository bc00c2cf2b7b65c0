"""Reviewed exports: a `review` column where the format has room for it, relabelled events under their new
label, wrong events left out of the formats that cannot say so; without reviews, the bytes of before."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core.export import FORMATS, export_combined, export_timeline
from tests.core.test_export import CONFIG, EVENTS, make_timeline

PER_FILE = [k for k in FORMATS]
COMBINABLE = [k for k in FORMATS if k not in ("audacity", "sv")]


def fixed_timeline(source: str = "clips/dog walk.wav", **kwargs):
    """make_timeline with a fixed code version (params.csv would name this checkout's commit)."""
    return make_timeline(source, extra={"weights": "ast-test.safetensors", "code_version": "fixed"}, **kwargs)


def digests(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in paths}


# sha256 (16 hex) of every file, written by core/export.py before reviews existed (commit 5aaabfd)
BEFORE_REVIEWS = {
    "dog walk.tags.csv": "eaaa26035d1cfd70",
    "dog walk.labels.txt": "c56b5b6fd352db2c",
    "dog walk.selections.txt": "59eebfe752439c2d",
    "dog walk.sv.csv": "0e4e5b5177eadd4c",
    "dog walk.BirdNET.csv": "d1f0197f612179d4",
    "dog walk.events.tsv": "4e678a09707c32f1",
    "dog walk.scores.csv": "3374b189706c206d",
    "dog walk.params.csv": "e19574ae44c3e108",
    "combined/combined.tags.csv": "04c9a451df5cb1bf",
    "combined/combined.selections.txt": "5891c403f723e85c",
    "combined/combined.BirdNET.csv": "d970fe1894f03380",
    "combined/combined.events.tsv": "c4638930a4fa8345",
    "combined/combined.scores.csv": "45552adc4e3c7417",
    "combined/combined.params.csv": "60385e791a554ad0",
}


def test_without_reviews_every_file_is_byte_identical_to_before(tmp_path):
    single = export_timeline(fixed_timeline(), EVENTS, CONFIG, tmp_path / "one", formats=PER_FILE)
    items = [(fixed_timeline(), EVENTS), (fixed_timeline("clips/=cat.flac", duration_s=5.0), EVENTS[:1])]
    combined = export_combined(items, CONFIG, tmp_path / "all", formats=COMBINABLE)
    assert {**digests(single), **{"combined/" + k: v for k, v in digests(combined).items()}} == BEFORE_REVIEWS
