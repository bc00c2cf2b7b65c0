"""The corpus builder: sources in their public layouts -> clips with labels, groups, splits and provenance;
signal helpers; determinism. Fake repositories hold real audio cut from the CC0 test clips and speech-like tones."""
from __future__ import annotations

import random

import numpy as np
import pytest
import soundfile as sf

from training import corpus
from training.sources import REPOS

RATE = corpus.RATE


def word(seed: int, seconds: float = 1.0) -> np.ndarray:
    """A 'keyword': 0.4 s of voiced harmonics inside quiet room tone, like a Speech Commands clip."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    x = rng.standard_normal(n).astype(np.float32) * 1e-3
    t = np.arange(int(0.4 * RATE)) / RATE
    voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8)) * np.hanning(len(t)) * 0.2
    at = int(0.3 * RATE)
    x[at:at + len(t)] += voiced.astype(np.float32)
    return x


@pytest.fixture()
def fake_repos(tmp_path):
    """Each speech repository in its public layout, a few files each."""
    roots = {}
    ar = tmp_path / REPOS["abdulkaderghandoura+arabic-speech-commands-dataset"].folder
    for s in range(4):          # four speakers, the last two are held out
        for k in range(7):
            p = ar / "dataset" / f"kw{k % 3}" / f"{s:08d}_NO_{k:02d}.wav"
            p.parent.mkdir(parents=True, exist_ok=True)
            sf.write(p, word(100 * s + k), RATE)
    roots[ar.name] = ar
    pv = tmp_path / REPOS["Picovoice+wake-word-benchmark"].folder
    for k in range(12):
        p = pv / "audio" / ("alexa" if k % 2 else "smart mirror") / f"{k}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, word(1000 + k, 1.6), RATE)
    roots[pv.name] = pv
    rv = tmp_path / REPOS["ZenvilleErasmus+RAVDESS-emotions-speech-audio-only"].folder
    for actor in (1, 23):
        p = rv / "Audio_Speech_Actors_01-24" / f"Actor_{actor:02d}" / f"03-01-01-01-01-01-{actor:02d}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, np.concatenate([word(2000 + actor, 1.5), word(3000 + actor, 1.5)]), 48000 // 3)
    roots[rv.name] = rv
    sc = tmp_path / REPOS["vinsis+speech-commands-recognition"].folder
    for w, spk in (("dog", "aaaa"), ("four", "aaaa"), ("left", "aaaa"), ("wow", "bbbb")):
        p = sc / "speech_commands_v0.01" / w / f"{spk}_nohash_0.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, word(hash(w) % 1000), RATE)
    roots[sc.name] = sc
    return roots


def test_speech_sources_in_their_public_layouts(fake_repos):
    room: list[np.ndarray] = []
    items = corpus.speech_sources(fake_repos, random.Random(0), room)
    assert items and all(it.labels == ("speech",) for it in items)
    by_source = {}
    for it in items:
        by_source.setdefault(it.source, []).append(it)
    assert set(by_source) == {"speech_ar", "speech_pv", "speech_ravdess", "speech_sc"}
    # Arabic: continuous clips of one speaker's words; the last two speakers are held out
    ar = by_source["speech_ar"]
    cont = [it for it in ar if "_cont" in it.name]
    assert cont and all(len(it.wave) >= 4 * RATE and len(set(o.split("/")[-1][:8] for o in it.origin)) == 1
                        for it in cont)
    assert {it.group for it in ar if it.split == "test"} == {"ar:00000002", "ar:00000003"}
    # Picovoice: keywords trimmed of their silence (kept as room tone) and joined with room-tone gaps
    pv = by_source["speech_pv"]
    assert any(len(it.origin) >= 3 for it in pv) and len(room) > 0
    assert all(np.abs(t).max() < 0.01 for t in room)   # room tone is the quiet part, not the word
    # RAVDESS kept whole, actor 23 held out; Speech Commands words of one speaker joined
    assert {it.split for it in by_source["speech_ravdess"]} == {"", "test"}
    assert any(it.name.endswith("aaaa_cont") and len(it.origin) == 3 for it in by_source["speech_sc"])
    # provenance: every clip names its repository, commit and original paths
    assert all(it.repo is not None and len(it.repo.commit) == 40 and it.origin for it in items)


def test_negatives_cover_every_length_and_have_no_label():
    rng = np.random.default_rng(0)
    room = [rng.standard_normal(RATE).astype(np.float32) * 1e-3 for _ in range(3)]
    items = corpus.negatives(room, [("noise", rng.standard_normal(6 * RATE).astype(np.float32) * 0.1, None, "x")],
                             random.Random(0), count=40)
    assert all(it.labels == () for it in items)
    lengths = sorted({round(len(it.wave) / RATE, 2) for it in items})
    assert lengths == list(corpus.NEGATIVE_LENGTHS_S)
    levels = [corpus.rms_db(it.wave) for it in items if "thump" not in it.name]
    assert min(levels) < -60 and max(levels) > -40   # quiet and louder
    assert any("thump" in it.name for it in items)


def test_signal_helpers():
    x = word(1, 2.0)
    a, b = corpus.active_span(x)
    assert 0.2 * RATE <= a <= 0.3 * RATE and 0.7 * RATE <= b <= 0.8 * RATE
    assert corpus.rms_db(corpus.set_level(x, -30.0)) == pytest.approx(-30.0, abs=0.01)
    # telephone band: a 100 Hz and a 6 kHz tone vanish, 1 kHz passes
    t = np.arange(RATE) / RATE
    for f, passes in ((100, False), (1000, True), (6000, False)):
        y = corpus.telephone(np.sin(2 * np.pi * f * t).astype(np.float32))
        assert (corpus.rms_db(y) > -4) == passes, f
    # codec round trips keep the length and roughly the signal
    for kind in ("opus", "mp3"):
        y = corpus.codec(x, kind, 0.8)
        assert y.shape == x.shape and corpus.rms_db(y - x) < corpus.rms_db(x) - 3
    # reverb keeps length and level, and spreads energy later in time
    rir = corpus.simulated_rir(np.random.default_rng(0))
    y = corpus.reverb(x, rir)
    assert y.shape == x.shape and corpus.rms_db(y) == pytest.approx(corpus.rms_db(x), abs=0.1)
    assert np.abs(y[int(0.75 * RATE):int(0.95 * RATE)]).max() > 10 * np.abs(x[int(0.75 * RATE):int(0.95 * RATE)]).max()


def test_domain_variants_are_deterministic_and_keep_the_length():
    x = word(5, 3.0)
    rirs = [corpus.simulated_rir(np.random.default_rng(1))]
    a = [corpus.domain_variant(x, np.random.default_rng(7), rirs) for _ in range(2)]
    assert np.array_equal(a[0][0], a[1][0]) and a[0][1] == a[1][1]
    descriptions = {corpus.domain_variant(x, np.random.default_rng(s), rirs)[1] for s in range(30)}
    assert any("rir" in d for d in descriptions) and any("phone" in d for d in descriptions)
    assert any("opus" in d or "mp3" in d for d in descriptions)
    for s in range(10):
        y, how = corpus.domain_variant(x, np.random.default_rng(s), rirs)
        level = float(how.split("+")[-1].rstrip("dB"))
        assert y.shape == x.shape and -51 <= level <= -9
        assert np.abs(y).max() <= 0.99 + 1e-6            # never clipped: a peaky clip stays below its level
        assert corpus.rms_db(y) <= level + 0.5
        if level < -35:
            assert corpus.rms_db(y) == pytest.approx(level, abs=0.5)


def test_write_gives_a_manifest_the_training_reads_and_the_same_bytes_twice(tmp_path, fake_repos):
    from training.data import load_clips
    outs = []
    for run in range(2):
        items = corpus.speech_sources(fake_repos, random.Random(0), [])
        outs.append(corpus._write(items, tmp_path / f"out{run}"))
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert (tmp_path / "out0" / "manifest.sha256").read_text() == (tmp_path / "out1" / "manifest.sha256").read_text()
    clips = load_clips((f"csv:{outs[0]}",))
    assert clips and {c.source for c in clips} == {"speech_ar", "speech_pv", "speech_ravdess", "speech_sc"}
    assert all(c.labels == ("speech",) and (tmp_path / "out0").as_posix() in c.path for c in clips)
    assert {c.split for c in clips} == {"", "test"}
    header = outs[0].read_text().splitlines()[0].split(",")
    assert header == corpus.COLUMNS


def test_opus_pack_keeps_the_manifest_and_leaves_out_the_variants(tmp_path, fake_repos):
    from training.data import FeatureCache, load_clips
    from core.config import FeatureConfig
    items = corpus.speech_sources(fake_repos, random.Random(0), [])
    items[0].source = "esc50_aug"                                   # stands for the ESC-50 variants
    manifest = corpus._write(items, tmp_path / "flac")
    packed = corpus.pack_opus(manifest, tmp_path / "opus")
    clips = load_clips((f"csv:{packed}",))
    assert len(clips) == len(items) - 1 and all(c.path.endswith(".opus") for c in clips)
    flac = {c.group: c for c in load_clips((f"csv:{manifest}",))}
    assert all(c.labels == flac[c.group].labels and c.split == flac[c.group].split for c in clips)
    frames = FeatureCache(tmp_path / "cache", FeatureConfig()).get(clips[0])
    assert frames.shape[0] > 50 and frames.shape[1] == 128            # the Opus copy decodes to features
    size = sum(p.stat().st_size for p in (tmp_path / "opus").rglob("*.opus"))
    assert size < 0.25 * sum(p.stat().st_size for p in (tmp_path / "flac").rglob("*.flac"))
