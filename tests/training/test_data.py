"""Sources, folds that never split a source recording, and the feature cache."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from core.config import LOG_EPS, FeatureConfig
from training.data import ClipSet, FeatureCache, load_clips, parse_source, split_clips
from training.labels import ESC50_CATEGORIES

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "esc50" / "manifest.csv").exists(), reason="../shared/data absent")


def test_parse_source_options():
    assert parse_source("fsdd:/d/fsdd@label=speech@limit=5") == ("fsdd", "/d/fsdd", {"label": "speech", "limit": "5"})
    with pytest.raises(ValueError, match="kind"):
        parse_source("nope:/x")


@needs_shared
def test_esc50_folds_never_share_a_source_recording():
    clips = load_clips((f"esc50:{SHARED / 'esc50'}",))
    assert len(clips) == 2000 and sorted({c.labels[0] for c in clips}) == sorted(ESC50_CATEGORIES)
    folds_of_group: dict[str, set[int]] = {}
    for c in clips:
        folds_of_group.setdefault(c.group, set()).add(c.fold)
    # the official folds themselves put 4 Freesound recordings into two folds (under other classes)
    shared = sorted(g for g, f in folds_of_group.items() if len(f) > 1)
    assert shared == ["esc50:131943", "esc50:134049", "esc50:209698", "esc50:234879"]
    for k in range(1, 6):
        train, held = split_clips(clips, k)
        assert len(held) == 400 and 1590 <= len(train) <= 1600  # official held-out fold kept whole
        assert not {c.group for c in train} & {c.group for c in held}


@needs_shared
def test_esc50_public_layout_with_meta_csv_and_wav_names(tmp_path):
    """meta/esc50.csv names .wav files; a copy holding .flac files (or .wav) loads the same."""
    root = tmp_path / "ESC-50"
    (root / "meta").mkdir(parents=True)
    (root / "audio").mkdir()
    rows = list(csv.DictReader(open(SHARED / "esc50" / "meta" / "esc50.csv")))[:3]
    with open(root / "meta" / "esc50.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        shutil.copy(SHARED / "esc50" / "audio" / r["filename"].replace(".wav", ".flac"),
                    root / "audio" / r["filename"].replace(".wav", ".flac"))
    clips = load_clips((f"esc50:{root}",))
    assert [Path(c.path).suffix for c in clips] == [".flac"] * 3 and clips[0].fold == int(rows[0]["fold"])


@needs_shared
def test_fsdd_official_split_and_single_label():
    clips = load_clips((f"fsdd:{SHARED / 'fsdd'}@label=speech@limit=100",))
    train, held = split_clips(clips, 5)
    assert len(train) == 100 and len(held) == 300
    assert {c.labels for c in clips} == {("speech",)}
    assert all(c.split == "test" for c in held)


def test_folder_and_csv_sources_assign_folds_by_group(tmp_path, tiny_folders):
    clips = load_clips((f"folders:{tiny_folders}",), num_folds=2)
    assert {c.labels for c in clips} == {("dog",), ("hum",)} and {c.fold for c in clips} <= {1, 2}
    table = tmp_path / "list.csv"
    files = sorted(tiny_folders.rglob("*.flac"))
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "labels", "group"])
        for i, p in enumerate(files):
            w.writerow([str(p), "dog;loud" if i % 2 else "", f"rec{i // 2}"])  # two takes per recording
    clips = load_clips((f"csv:{table}",), num_folds=2)
    assert clips[1].labels == ("dog", "loud") and clips[0].labels == ()
    for k in (1, 2):
        train, held = split_clips(clips, k)
        assert not {c.group for c in train} & {c.group for c in held}


def test_negatives_have_no_labels_and_a_held_out_split():
    clips = load_clips(("negatives:8",))
    assert all(c.labels == () for c in clips)
    assert sum(c.split == "train" for c in clips) == 8 and sum(c.split == "test" for c in clips) == 2
    assert len({c.path for c in clips}) == 10


def test_cache_hits_and_is_invalidated_by_feature_config_and_content(tmp_path, tiny_folders):
    clips = load_clips((f"folders:{tiny_folders}",))[:2]
    first = FeatureCache(tmp_path, FeatureConfig())
    a = first.load(clips)
    assert first.computed == 2 and a[0].shape[1] == 128 and a[0].dtype == torch.float16
    again = FeatureCache(tmp_path, FeatureConfig(num_frames=512, mean=0.0))  # window / statistics: same fbank
    assert torch.equal(again.load(clips)[0], a[0]) and again.computed == 0
    other = FeatureCache(tmp_path, FeatureConfig(num_mel_bins=64))
    b = other.load(clips)
    assert other.computed == 2 and b[0].shape[1] == 64
    changed = tmp_path / "changed.flac"
    wave, rate = sf.read(clips[0].path, dtype="float32")
    sf.write(changed, wave * 0.5, rate)
    edited = type(clips[0])(str(changed), clips[0].labels, "x", "g")
    third = FeatureCache(tmp_path, FeatureConfig())
    c = third.get(edited)
    assert third.computed == 1 and not torch.equal(c, a[0])


def test_batches_cut_long_and_pad_short_clips(tmp_path, tiny_folders):
    clips = load_clips((f"folders:{tiny_folders}",))
    data = ClipSet.build(clips, ["dog", "hum"], FeatureCache(tmp_path, FeatureConfig()))
    n = int(data.lengths[0])  # 1.5 s -> 148 frames
    x, valid, y = data.batch([0, 5], n + 20, random_place=False)
    assert x.shape == (2, n + 20, 128) and valid[:, :n].all() and not valid[:, n:].any()
    assert torch.equal(x[0, :n], data.clip(0)) and (x[:, n:] == 0).all()
    x, _, _ = data.batch([0, 5], n + 20, random_place=False, pad_value=FeatureConfig(padding="silence").pad_log_mel)
    assert torch.equal(x[0, :n], data.clip(0)) and (x[:, n:] == LOG_EPS).all()   # silence, as at inference
    x, valid, _ = data.batch([0], 100, random_place=False)
    assert torch.equal(x[0], data.clip(0)[:100]) and valid.all()
    assert y.tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_random_placement_keeps_each_clip_contiguous(tmp_path, tiny_folders):
    clips = load_clips((f"folders:{tiny_folders}",))
    data = ClipSet.build(clips, ["dog", "hum"], FeatureCache(tmp_path, FeatureConfig()), workers=2)
    n = int(data.lengths[0])
    g = torch.Generator().manual_seed(0)
    for T in (n // 2, n + 40):  # long clips are cut at a random start, short ones placed at a random offset
        starts = set()
        for _ in range(8):
            x, valid, _ = data.batch([0], T, random_place=True, generator=g)
            assert valid.sum() == min(n, T)
            inside = x[0][valid[0]]
            clip = data.clip(0)
            start = [s for s in range(n - len(inside) + 1) if torch.equal(clip[s:s + len(inside)], inside)]
            assert start and (x[0][~valid[0]] == 0).all()   # a contiguous piece of the clip, zeros around it
            starts.add(int(valid[0].float().argmax()) if T > n else start[0])
        assert len(starts) > 1  # the position really is random


def test_speech_commands_public_layout(tmp_path, esc50_clip):
    """<word>/<speaker>_nohash_<n>.wav, testing_list.txt speakers held out, background noise cut in 5 s pieces."""
    root = tmp_path / "speech_commands_v0.02"
    wave = sf.read(esc50_clip, dtype="float32")[0]
    for word, spk in (("yes", "aa11"), ("yes", "bb22"), ("no", "aa11"), ("no", "cc33")):
        (root / word).mkdir(parents=True, exist_ok=True)
        sf.write(root / word / f"{spk}_nohash_0.wav", wave[:16000], 16000)
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "running_tap.wav", np.tile(wave, 3)[:12 * 16000], 16000)
    (root / "testing_list.txt").write_text("no/cc33_nohash_0.wav\n")
    clips = load_clips((f"speechcommands:{root}@label=speech",))
    words = [c for c in clips if c.labels]
    assert [c.labels for c in words] == [("speech",)] * 4
    assert {c.group for c in words} == {"sc:aa11", "sc:bb22", "sc:cc33"}
    assert [c.split for c in words if c.group == "sc:cc33"] == ["test"]
    noise = [c for c in clips if not c.labels]
    assert [c.path.rsplit("#", 1)[1] for c in noise] == ["0:5", "5:10"]   # 12 s -> two whole 5 s pieces
    data = ClipSet.build(clips, ["speech"], FeatureCache(tmp_path / "cache", FeatureConfig()))
    assert int(data.lengths[-1]) == 1 + (5 * 16000 - 400) // 160          # a segment, not the whole file
    assert load_clips((f"speechcommands:{root}",))[0].labels == ("no",)    # default label: the word


def test_an_empty_class_folder_is_named_in_a_warning(tmp_path, tiny_folders, caplog):
    root = tmp_path / "sounds"
    shutil.copytree(tiny_folders, root)
    (root / "cat").mkdir()                         # created, never filled
    (root / "bird").mkdir()
    (root / "bird" / "notes.txt").write_text("recordings to come")
    with caplog.at_level("WARNING", logger="training.data"):
        clips = load_clips((f"folders:{root}",))
    assert {c.labels for c in clips} == {("dog",), ("hum",)}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(str(root / "cat") in w for w in warnings), warnings
    assert any(str(root / "bird") in w for w in warnings), warnings
