"""Measure a model file as the app sees it: Analyzer (1 s hop) + the event rule of core/config.py.

Runs on the main thread of `python -m training report`. Numbers it gives:
  * ESC-50 accuracy on one fold: top-scoring label of each clip (its one padded 5.12 s window);
  * the same clips in a stream, as the live tagger meets them: one after another at random offsets
    (2-4 s of quiet pink noise between, so they do not sit on the 1 s window grid); a clip counts as
    tagged when an event of its label overlaps it, and as found when its label is the top score of the
    windows overlapping it;
  * FSDD test-split speech detection: a `speech` event on each test file as it is (clip + AST padding),
    and on the same digits placed 3 s apart in quiet pink noise (a stream, as the live tagger sees it);
  * false tags per minute on digital silence and on white / pink noise at several levels.
Event counts are given at the default rule and at other on-thresholds, to choose the app's default.
With `ood_root`, also the out-of-domain evaluation of training/ood.py (key "out_of_domain", without its manifest).
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from core.analyze import Analyzer
from core.config import EventConfig
from core.events import detect_events
from core.modelfile import load_model
from core.scorer import Scorer
from training.config import SHARED_DATA
from training.data import synth_audio
from training.labels import known_labels

log = logging.getLogger(__name__)

THRESHOLDS = (0.3, 0.5, 0.7, 0.8)
NOISES = (("silence", -120.0), ("white", -60.0), ("white", -40.0), ("white", -25.0),
          ("pink", -60.0), ("pink", -40.0), ("pink", -25.0))


def _events(timeline, on: float) -> list:
    base = EventConfig()
    cfg = dataclasses.replace(base, on_threshold=on, off_threshold=min(base.off_threshold, on))
    return detect_events(timeline, cfg)


def _esc50_stream(analyzer: Analyzer, esc_dir: Path, rows: list[dict], ids: list[str], known: dict,
                  tmp: Path) -> dict:
    """ESC-50 clips one after another in quiet pink noise at off-grid offsets (see the module docstring)."""
    rate, rng = 16000, np.random.default_rng(2024)
    parts, spans, t = [], [], 0
    for r in rows:
        gap = synth_audio(f"synth:pink:-60:{len(spans)}", seconds=float(rng.uniform(2.0, 4.0)))
        clip = sf.read(esc_dir / r["filename"], dtype="float32")[0]
        parts += [gap, clip]
        spans.append(((t + len(gap)) / rate, (t + len(gap) + len(clip)) / rate,
                      known[r["category"]].id if r["category"] in known else r["category"]))
        t += len(gap) + len(clip)
    sf.write(tmp / "esc50_stream.wav", np.concatenate(parts), rate, subtype="FLOAT")
    tl = analyzer.analyze(str(tmp / "esc50_stream.wav"))
    centres = tl.starts_s + tl.window_s / 2
    n = max(1, len(spans))
    found = sum(bool(inside.any()) and ids[int(tl.scores[inside].max(0).argmax())] == want
                for a, b, want in spans for inside in [(centres >= a) & (centres <= b)])
    result = {"clips": len(spans), "minutes": round(t / rate / 60, 2), "found_top1": found / n}
    for on in sorted({EventConfig().on_threshold, *THRESHOLDS}):
        events = _events(tl, on)
        tagged = wrong = 0
        for a, b, want in spans:
            over = [e for e in events if e.start_s < b and e.end_s > a]
            tagged += any(ids[e.label_index] == want for e in over)
            wrong += sum(ids[e.label_index] != want for e in over)
        entry = {"tagged": tagged / n, "other_label_events_per_clip": wrong / n}
        if on == EventConfig().on_threshold:
            result.update(entry)
        result[f"@{on}"] = entry
    return result


def report(model: str | None = None, out: str | None = None, esc50: str | None = None,
           fsdd: str | None = None, fold: int = 5, minutes: float = 3.0, hop_s: float = 1.0,
           threads: int = 1, ood_root: str | None = None, ood_peer: str | None = None) -> dict:
    torch.set_num_threads(threads)  # 2 threads on a busy 2-core CPU spin and run many times slower
    loaded = load_model(model)
    analyzer = Analyzer(Scorer(loaded, "cpu"), hop_s=hop_s)
    names = [label.name for label in loaded.labels]
    ids = [label.id for label in loaded.labels]
    default_on = EventConfig().on_threshold
    result: dict = {"model": str(model or "default"), "hop_s": hop_s, "event_rule": dataclasses.asdict(EventConfig())}
    tmp = Path(tempfile.mkdtemp(prefix="report-"))

    # ---- ESC-50 accuracy on one fold (the app's view: Analyzer on the file)
    esc_dir = Path(esc50) if esc50 else SHARED_DATA / "esc50"
    known = known_labels()
    if fold and (esc_dir / "manifest.csv").exists():  # fold 0: skip (a model trained on every fold)
        rows = [r for r in csv.DictReader(open(esc_dir / "manifest.csv")) if int(r["fold"]) == fold]
        correct, speech_false = 0, 0
        for r in rows:
            tl = analyzer.analyze(str(esc_dir / r["filename"]))
            want = known[r["category"]].id if r["category"] in known else r["category"]
            correct += ids[int(tl.scores.max(0).argmax())] == want
            speech_false += any(names[e.label_index] == "Speech" for e in _events(tl, default_on))
        result["esc50_fold_accuracy"] = {"fold": fold, "clips": len(rows), "accuracy": correct / max(1, len(rows)),
                                         "speech_events_on_esc50_clips": speech_false}
        result["esc50_fold_in_stream"] = _esc50_stream(analyzer, esc_dir, rows, ids, known, tmp)

    # ---- FSDD test split: speech detection
    fsdd_dir = Path(fsdd) if fsdd else SHARED_DATA / "fsdd"
    if (fsdd_dir / "manifest.csv").exists() and "Speech" in names:
        speech = names.index("Speech")
        rows = [r for r in csv.DictReader(open(fsdd_dir / "manifest.csv")) if r["split"] == "test"]
        hits = {on: 0 for on in THRESHOLDS}
        waves = []
        for r in rows:
            tl = analyzer.analyze(str(fsdd_dir / r["filename"]))
            for on in THRESHOLDS:
                hits[on] += any(e.label_index == speech for e in _events(tl, on))
            waves.append(sf.read(fsdd_dir / r["filename"], dtype="float32")[0])
        result["fsdd_test_speech_detection"] = {
            "files": len(rows), "detected": hits[default_on] / len(rows),
            "detected_by_on_threshold": {str(on): hits[on] / len(rows) for on in THRESHOLDS}}
        # the same digits in a stream: 3 s of -60 dBFS pink noise between digits
        rate = 16000
        gap = synth_audio("synth:pink:-60:777", seconds=3.0)
        parts, spans, t = [], [], 0
        for w in waves:
            parts += [gap, w]
            spans.append(((t + len(gap)) / rate, (t + len(gap) + len(w)) / rate))
            t += len(gap) + len(w)
        parts.append(gap)
        stream = np.concatenate(parts)
        sf.write(tmp / "fsdd_stream.wav", stream, rate, subtype="FLOAT")
        tl = analyzer.analyze(str(tmp / "fsdd_stream.wav"))
        minutes_stream = len(stream) / rate / 60
        stream_result = {"digits": len(spans), "minutes": round(minutes_stream, 2)}
        for on in THRESHOLDS:
            ev = [e for e in _events(tl, on) if e.label_index == speech]
            found = sum(any(e.start_s < b and e.end_s > a for e in ev) for a, b in spans)
            others = [e for e in _events(tl, on) if e.label_index != speech]
            stream_result[str(on)] = {"digits_detected": found / len(spans), "speech_events": len(ev),
                                      "other_label_events_per_min": len(others) / minutes_stream}
        result["fsdd_test_speech_in_noise_stream"] = stream_result

    # ---- false tags per minute on silence and noise
    false_tags = {}
    for kind, level in NOISES:
        wave = synth_audio(f"synth:{kind}:{level}:4242", seconds=minutes * 60)
        path = tmp / f"{kind}{level:.0f}.wav"
        sf.write(path, wave, 16000, subtype="FLOAT")
        tl = analyzer.analyze(str(path))
        entry = {"minutes": minutes, "max_score": float(tl.scores.max()),
                 "top_label": names[int(tl.scores.max(0).argmax())]}
        for on in THRESHOLDS:
            ev = _events(tl, on)
            entry[f"tags_per_min@{on}"] = len(ev) / minutes
            if on == default_on:
                entry["labels_tagged"] = sorted({names[e.label_index] for e in ev})
        false_tags[f"{kind}" if kind == "silence" else f"{kind} {level:.0f} dBFS"] = entry
    result["false_tags_per_minute"] = false_tags
    if ood_root:
        from training.ood import evaluate
        ood = evaluate(model, ood_root, peer=ood_peer, esc50=esc50, threads=threads)
        manifest = json.dumps(ood.pop("manifest"), sort_keys=True).encode()
        ood["manifest_sha1"] = hashlib.sha1(manifest).hexdigest()
        result["out_of_domain"] = ood
    if out:
        Path(out).write_text(json.dumps(result, indent=1))
    return result
