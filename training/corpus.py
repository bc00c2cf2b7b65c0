"""Build the default model's extra training audio from the pinned public repositories (training/sources.py).

`python -m training corpus --repos DIR --out DIR [--esc50 DIR]` checks every repository out at its pinned commit,
decodes what it uses to 16 kHz mono, derives the training clips below, writes them as FLAC under `<out>/audio/`,
and writes `<out>/manifest.csv` (read by the training as `csv:<out>/manifest.csv`) with each clip's labels,
group, fold or split and provenance (source, licence, repository, commit, original paths) and the SHA-1 of the
written file. Everything is seeded: two builds from the same commits give the same bytes (`<out>/manifest.sha256`).

What it derives (so that no class can be told by padding, length or level; issue 13):
  * speech as people talk: a speaker's (or a crowd's) keywords joined with natural gaps into 5-7 s of continuous
    speech, plus some isolated words; RAVDESS sentences kept whole;
  * keyboard typing and washing machine cut into 5 s pieces;
  * negatives of every length (0.05 s to 5.2 s) and level: room tone cut from the quiet ends of the speech
    recordings, recorded noise (boiler, exercise bike, dishes, white/pink noise), handling thumps in near silence;
  * domain variants of a share of every labelled clip (ESC-50 included, when --esc50 is given): real or simulated
    room reverberation, telephone band (300-3400 Hz), lossy codec round trips (Opus, MP3), a level from -50 to
    -10 dBFS. A variant keeps its original's group and fold, so cross-validation never splits them.
Clips that hold an ESC-50 excerpt (training/esc50_check.py) and exact duplicates are dropped and counted.
Runs on the main thread; about 10 minutes on one core.
"""
from __future__ import annotations

import csv
import hashlib
import io
import logging
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from core.audio_io import read_audio
from training.sources import REPOS, Repo, checkout

log = logging.getLogger(__name__)

RATE = 16000
COLUMNS = ["path", "labels", "group", "fold", "split", "source", "licence", "repo", "commit", "origin", "sha1"]
ESC50_LICENCE = "CC BY / CC BY-NC 3.0 (per clip, ESC-50 meta)"


@dataclass
class Item:
    """One clip to write: its samples and what the manifest says about it."""

    name: str                   # relative output path without suffix, e.g. "speech_ar/spk01_cont03"
    wave: np.ndarray            # (N,) float32 at 16 kHz
    labels: tuple[str, ...]
    group: str                  # source recording or speaker: never on both sides of a split
    source: str
    repo: Repo | None
    origin: list[str] = field(default_factory=list)  # paths inside the repository it came from
    split: str = ""             # "test" = held out (unseen speakers for the training's own evaluation)
    fold: int = 0               # ESC-50 variants keep their clip's official fold


# ----------------------------------------------------------------------------- signal helpers

def rms_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20)


def set_level(x: np.ndarray, db: float) -> np.ndarray:
    """Scale to an RMS level in dBFS (peaks kept within [-1, 1])."""
    y = x * 10 ** ((db - rms_db(x)) / 20)
    peak = np.abs(y).max(initial=0.0)
    return (y / peak * 0.99 if peak > 0.99 else y).astype(np.float32)


def active_span(x: np.ndarray, margin_s: float = 0.08) -> tuple[int, int]:
    """(start, end) samples of the loud part: 20 ms frames within 35 dB of the loudest (and above -55 dBFS)."""
    hop = RATE // 50
    n = len(x) // hop
    if n == 0:
        return 0, len(x)
    energy = 10 * np.log10(np.mean(x[:n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(energy > max(energy.max() - 35.0, -55.0))
    if loud.size == 0:
        return 0, 0
    m = int(margin_s * RATE)
    return max(0, loud[0] * hop - m), min(len(x), (loud[-1] + 1) * hop + m)


def simulated_rir(rng: np.random.Generator) -> np.ndarray:
    """An exponentially decaying noise impulse response (RT60 0.15-1.2 s) with a direct path."""
    rt60 = rng.uniform(0.15, 1.2)
    n = int(rt60 * RATE)
    t = np.arange(n) / RATE
    h = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)     # -60 dB at rt60
    h[0] = 1.0 / rng.uniform(0.5, 3.0) * np.abs(h).max() * 4  # direct-to-reverberant ratio varies
    return (h / np.sqrt(np.sum(h ** 2))).astype(np.float32)


def reverb(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """x convolved with rir (FFT), cut to len(x), level kept."""
    n = len(x) + len(rir) - 1
    size = 1 << (n - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(rir, size), size)[:len(x)]
    return set_level(y.astype(np.float32), rms_db(x)) if rms_db(x) > -100 else x


def telephone(x: np.ndarray) -> np.ndarray:
    """Band-limit to 300-3400 Hz (a phone line), with 100 Hz raised-cosine edges."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / RATE)
    lo = np.clip((f - 200) / 100, 0, 1)
    hi = np.clip((3500 - f) / 100, 0, 1)
    gain = np.minimum(0.5 - 0.5 * np.cos(np.pi * lo), 0.5 - 0.5 * np.cos(np.pi * hi))
    return np.fft.irfft(spec * gain, len(x)).astype(np.float32)


def codec(x: np.ndarray, kind: str, quality: float) -> np.ndarray:
    """Round trip through a lossy codec in memory (libsndfile: Opus in Ogg, or MP3)."""
    fmt, subtype = {"opus": ("OGG", "OPUS"), "mp3": ("MP3", "MPEG_LAYER_III")}[kind]
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1, 1), RATE, format=fmt, subtype=subtype, compression_level=quality)
    buf.seek(0)
    y = sf.read(buf, dtype="float32")[0]
    out = np.zeros_like(x)
    out[:min(len(x), len(y))] = y[:len(x)]
    return out


def domain_variant(x: np.ndarray, rng: np.random.Generator, rirs: list[np.ndarray]) -> tuple[np.ndarray, str]:
    """One random chain of room, channel and codec effects, then a level; returns (audio, description)."""
    steps = []
    if rng.random() < 0.6:
        if rirs and rng.random() < 0.6:
            x = reverb(x, rirs[int(rng.integers(len(rirs)))])
            steps.append("rir")
        else:
            x = reverb(x, simulated_rir(rng))
            steps.append("simrir")
    if rng.random() < 0.3:
        x = telephone(x)
        steps.append("phone")
    if rng.random() < 0.4:
        kind = "opus" if rng.random() < 0.5 else "mp3"
        x = codec(x, kind, float(rng.uniform(0.6, 1.0)))
        steps.append(kind)
    level = float(rng.uniform(-50, -10))
    steps.append(f"{level:.0f}dB")
    return set_level(x, level) if rms_db(x) > -100 else x, "+".join(steps)


def pieces(x: np.ndarray, seconds: float, limit: int) -> list[np.ndarray]:
    n = int(seconds * RATE)
    return [x[i:i + n] for i in range(0, len(x) - n + 1, n)][:limit]


# ----------------------------------------------------------------------------- sources

def _files(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.glob(pattern) if p.is_file())


def _read(path: Path) -> np.ndarray | None:
    try:
        return read_audio(path, RATE)
    except Exception as exc:  # a broken file in a public repository is skipped, and said
        log.warning("skipped %s: %s", path, exc)
        return None


def _join(words: list[np.ndarray], gaps: list[np.ndarray]) -> np.ndarray:
    out = []
    for i, w in enumerate(words):
        out.append(w)
        if i < len(words) - 1:
            out.append(gaps[i])
    return np.concatenate(out).astype(np.float32)


def speech_sources(repos: dict[str, Path], rng: random.Random, room: list[np.ndarray]) -> list[Item]:
    items: list[Item] = []
    # Arabic Speech Commands (CC BY 4.0): 1 s clips, 30 speakers; speaker = first field of the file name
    repo = REPOS["abdulkaderghandoura+arabic-speech-commands-dataset"]
    root = repos[repo.folder]
    by_speaker: dict[str, list[Path]] = defaultdict(list)
    for p in _files(root, "dataset/*/*.wav"):
        by_speaker[p.name.split("_")[0]].append(p)
    speakers = sorted(by_speaker)
    held = set(speakers[-2:])  # two unseen speakers for the training's own speech check
    for spk in speakers:
        files = sorted(by_speaker[spk])
        rng.shuffle(files)
        split = "test" if spk in held else ""
        for j in range(10):  # 10 continuous clips of 6 words (the clips' own silences are the gaps)
            chosen = files[j * 6:(j + 1) * 6]
            waves = [w for w in (_read(p) for p in chosen) if w is not None]
            if len(waves) >= 4:
                items.append(Item(f"speech_ar/{spk}_cont{j:02d}", np.concatenate(waves), ("speech",),
                                  f"ar:{spk}", "speech_ar", repo, [str(p.relative_to(root)) for p in chosen], split))
        for j, p in enumerate(files[60:65]):  # and 5 isolated words
            w = _read(p)
            if w is not None:
                items.append(Item(f"speech_ar/{spk}_word{j}", w, ("speech",), f"ar:{spk}", "speech_ar", repo,
                                  [str(p.relative_to(root))], split))
    # Picovoice wake-word benchmark (Apache-2.0): many speakers and microphones; trim the silence around each
    # keyword (kept as room tone), then join 3-6 keywords with 0.15-0.8 s of room tone between them
    repo = REPOS["Picovoice+wake-word-benchmark"]
    root = repos[repo.folder]
    files = _files(root, "audio/*/*.wav") + _files(root, "audio/*/*.flac")
    rng.shuffle(files)
    words: list[tuple[Path, np.ndarray]] = []
    for p in files[:900]:
        w = _read(p)
        if w is None:
            continue
        a, b = active_span(w)
        if b - a < RATE // 5:
            continue
        words.append((p, w[a:b]))
        for tone in (w[:max(0, a - 800)], w[b + 800:]):
            if len(tone) >= RATE // 10:
                room.append(tone)
    tones = [t for t in room if len(t) >= RATE // 5] or [np.zeros(RATE, np.float32)]
    for j in range(0, min(len(words), 700), 5):
        group = words[j:j + 5]
        if len(group) < 3:
            break
        gaps = [rng.choice(tones)[:int(rng.uniform(0.15, 0.8) * RATE)] for _ in group]
        items.append(Item(f"speech_pv/cont{j // 5:03d}", _join([w for _, w in group], gaps), ("speech",),
                          f"pv:cont{j // 5}", "speech_pv", repo, [str(p.relative_to(root)) for p, _ in group]))
    for j, (p, w) in enumerate(words[700:900]):
        items.append(Item(f"speech_pv/word{j:03d}", w, ("speech",), f"pv:{p.stem}", "speech_pv", repo,
                          [str(p.relative_to(root))]))
    # RAVDESS (CC BY-NC-SA 4.0): two sentences by 24 actors, kept whole; actors 23-24 held out
    repo = REPOS["ZenvilleErasmus+RAVDESS-emotions-speech-audio-only"]
    root = repos[repo.folder]
    for actor_dir in sorted((root / "Audio_Speech_Actors_01-24").glob("Actor_*")):
        files = sorted(actor_dir.glob("*.wav"))
        rng.shuffle(files)
        actor = actor_dir.name
        for p in files[:20]:
            w = _read(p)
            if w is None:
                continue
            a, b = active_span(w)
            if a >= RATE // 10:
                room.append(w[:a])
            items.append(Item(f"speech_ravdess/{p.stem}", w, ("speech",), f"ravdess:{actor}", "speech_ravdess",
                              repo, [str(p.relative_to(root))], "test" if actor in ("Actor_23", "Actor_24") else ""))
    # Speech Commands v0.01 sample (CC BY 4.0): one speaker's words joined when there are several, else alone
    repo = REPOS["vinsis+speech-commands-recognition"]
    root = repos[repo.folder]
    by_speaker = defaultdict(list)
    for p in _files(root, "speech_commands_v0.01/*/*.wav"):
        by_speaker[p.name.split("_")[0]].append(p)
    for spk, files in sorted(by_speaker.items()):
        waves = [(p, w) for p in files for w in [_read(p)] if w is not None]
        if len(waves) >= 3:
            items.append(Item(f"speech_sc/{spk}_cont", np.concatenate([w for _, w in waves[:7]]), ("speech",),
                              f"sc:{spk}", "speech_sc", repo, [str(p.relative_to(root)) for p, _ in waves[:7]]))
        else:
            for p, w in waves:
                items.append(Item(f"speech_sc/{p.parent.name}_{p.stem}", w, ("speech",), f"sc:{spk}", "speech_sc",
                                  repo, [str(p.relative_to(root))]))
    return items


def sound_sources(repos: dict[str, Path]) -> tuple[list[Item], list[tuple[str, np.ndarray, Repo, str]]]:
    """Labelled non-speech clips, and the recorded backgrounds (name, audio, repo, origin) for negatives."""
    items: list[Item] = []
    repo = REPOS["JBFH-Dev+Keystroke-Datasets"]  # MIT: one key pressed repeatedly per file, over Zoom
    root = repos[repo.folder]
    for p in _files(root, "Zoom/*.wav"):
        w = _read(p)
        for j, piece in enumerate(pieces(w, 5.0, 6) if w is not None else []):
            items.append(Item(f"keyboard/{p.stem}_{j}", piece, ("keyboard_typing",), f"keys:{p.stem}", "keyboard",
                              repo, [str(p.relative_to(root))]))
    repo = REPOS["abdulkaderghandoura+arabic-speech-commands-dataset"]
    root = repos[repo.folder]
    backgrounds: list[tuple[str, np.ndarray, Repo, str]] = []
    w = _read(root / "background_noise/washing_machine.wav") if (root / "background_noise/washing_machine.wav").exists() else None
    for j, piece in enumerate(pieces(w, 5.0, 20) if w is not None else []):
        items.append(Item(f"washing/{j}", piece, ("washing_machine",), "ar:washing_machine", "washing_machine", repo,
                          ["background_noise/washing_machine.wav"]))
    if (root / "background_noise/boiler.wav").exists():
        backgrounds.append(("boiler", _read(root / "background_noise/boiler.wav"), repo, "background_noise/boiler.wav"))
    repo = REPOS["felixchenfy+Speech-Commands-Classification-by-LSTM-PyTorch"]
    root = repos[repo.folder]
    for name in ("white_noise", "pink_noise", "exercise_bike", "doing_the_dishes"):  # Speech Commands' own files
        p = root / "data/noises" / f"{name}.wav"
        if p.exists():
            backgrounds.append((name, _read(p), repo, str(p.relative_to(root))))
    repo = REPOS["speechbrain+speechbrain"]
    root = repos[repo.folder]
    for p in _files(root, "tests/samples/noise/*.wav"):
        backgrounds.append((f"sb_{p.stem}", _read(p), repo, str(p.relative_to(root))))
    return items, [b for b in backgrounds if b[1] is not None]


def impulse_responses(repos: dict[str, Path]) -> list[np.ndarray]:
    """Measured room impulse responses (speechbrain's test RIRs; pymixconsole's rooms, not its plate)."""
    paths = _files(repos["speechbrain+speechbrain"], "tests/samples/RIRs/*.wav")
    paths += [repos["csteinmetz1+pymixconsole"] / "pymixconsole/irs" / f"{n}.wav"
              for n in ("small_room", "medium_room", "large_room", "hall")]
    rirs = []
    for p in paths:
        h = _read(p) if p.exists() else None
        if h is not None and np.any(h):
            start = int(np.argmax(np.abs(h) > 0.1 * np.abs(h).max()))  # from the direct path on
            h = h[start:]
            rirs.append((h / np.sqrt(np.sum(h ** 2))).astype(np.float32))
    return rirs


NEGATIVE_LENGTHS_S = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 5.2)


def negatives(room: list[np.ndarray], backgrounds: list, rng: random.Random, count: int = 600) -> list[Item]:
    """Clips with no label: room tone and recorded noise cut to every length, at every level, plus thumps."""
    nprng = np.random.default_rng(rng.randrange(2 ** 32))
    pool = [("roomtone", t, None, "") for t in room if len(t) >= RATE // 20] + backgrounds
    items = []
    for i in range(count):
        name, x, repo, origin = pool[i % len(pool)] if i % 5 else ("thump", None, None, "synthetic")
        seconds = NEGATIVE_LENGTHS_S[i % len(NEGATIVE_LENGTHS_S)]
        n = int(seconds * RATE)
        if x is None:  # near silence with a handling thump (a low, short knock on the microphone)
            y = nprng.standard_normal(n).astype(np.float32) * 10 ** (nprng.uniform(-90, -60) / 20)
            at = int(nprng.integers(0, max(1, n - 800)))
            k = np.arange(min(800, n - at))
            y[at:at + len(k)] += (np.sin(2 * np.pi * nprng.uniform(30, 120) * k / RATE) * np.exp(-k / 150)
                                  * 10 ** (nprng.uniform(-40, -15) / 20)).astype(np.float32)
        else:
            if len(x) < n:
                x = np.tile(x, n // len(x) + 1)
            start = int(nprng.integers(0, len(x) - n + 1))
            y = x[start:start + n]
            if rms_db(y) > -100:
                y = set_level(y, float(nprng.uniform(-75, -25)))
        items.append(Item(f"negatives/{i:04d}_{name}_{seconds:g}s", y.astype(np.float32), (), f"neg:{name}",
                          "negatives_real", repo, [origin] if origin else []))
    return items


# ----------------------------------------------------------------------------- build

def build(repos_root: str | Path, out_dir: str | Path, esc50_dir: str | Path | None = None, seed: int = 0,
          esc50_check: bool = True, variants_share: float = 0.5) -> Path:
    """Build the corpus; returns the manifest path (see the module docstring)."""
    out = Path(out_dir)
    rng = random.Random(seed)
    repos = {r.folder: checkout(r, repos_root) for r in REPOS.values() if r.use == "train"}
    room: list[np.ndarray] = []
    items = speech_sources(repos, rng, room)
    sounds, backgrounds = sound_sources(repos)
    items += sounds
    rirs = impulse_responses(repos)
    items = _drop_duplicates_and_excerpts(items, esc50_dir if esc50_check else None)
    items += negatives(room, backgrounds, rng)
    # domain variants of a share of the labelled clips (ours, and ESC-50's when given)
    nprng = np.random.default_rng(seed + 1)
    labelled = [it for it in items if it.labels and it.split != "test"]
    for it in labelled:
        if nprng.random() < variants_share:
            wave, how = domain_variant(it.wave, nprng, rirs)
            items.append(Item(f"{it.name}__{how}", wave, it.labels, it.group, it.source + "_aug", it.repo,
                              it.origin, it.split, it.fold))
    if esc50_dir:
        items += _esc50_variants(Path(esc50_dir), nprng, rirs, variants_share)
    return _write(items, out)


def _esc50_variants(root: Path, nprng: np.random.Generator, rirs: list, share: float) -> list[Item]:
    manifest = root / "manifest.csv"
    rows = list(csv.DictReader(open(manifest if manifest.exists() else root / "meta" / "esc50.csv", encoding="utf-8")))
    items = []
    for r in rows:
        if nprng.random() >= share:
            continue
        name = r["filename"]
        path = root / name if "/" in name else root / "audio" / name
        if not path.exists():
            path = next((path.with_suffix(e) for e in (".flac", ".wav", ".opus") if path.with_suffix(e).exists()), path)
        wave, how = domain_variant(read_audio(path, RATE), nprng, rirs)
        items.append(Item(f"esc50/{Path(name).stem}__{how}", wave, (r["category"],), f"esc50:{r['src_file']}",
                          "esc50_aug", None, [name], "", int(r["fold"])))
    return items


def _drop_duplicates_and_excerpts(items: list[Item], esc50_dir) -> list[Item]:
    seen, kept, dups, excerpts = set(), [], 0, 0
    index = None
    if esc50_dir:
        from training.esc50_check import Esc50Index
        index = Esc50Index.build(esc50_dir)
    for it in items:
        digest = hashlib.sha1(np.round(it.wave * 32768).astype(np.int16).tobytes()).hexdigest()
        if digest in seen:
            dups += 1
            continue
        seen.add(digest)
        if index is not None and index.match(it.wave) is not None:
            excerpts += 1
            log.warning("dropped %s: it holds an ESC-50 excerpt", it.name)
            continue
        kept.append(it)
    log.info("dropped %d exact duplicates and %d ESC-50 excerpts of %d clips", dups, excerpts, len(items))
    return kept


def _write(items: list[Item], out: Path) -> Path:
    rows = []
    for it in items:
        rel = Path("audio") / f"{re.sub(r'[^A-Za-z0-9_./+-]', '_', it.name)}.flac"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(out / rel, np.clip(it.wave, -1, 1), RATE, subtype="PCM_16")
        rows.append({"path": rel.as_posix(), "labels": ";".join(it.labels), "group": it.group,
                     "fold": it.fold or "", "split": it.split, "source": it.source,
                     "licence": it.repo.licence if it.repo else ESC50_LICENCE,
                     "repo": it.repo.slug if it.repo else "karolpiczak/ESC-50 (../shared/data/esc50)",
                     "commit": it.repo.commit if it.repo else "", "origin": "|".join(it.origin),
                     "sha1": hashlib.sha1((out / rel).read_bytes()).hexdigest()})
    manifest = out / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    (out / "manifest.sha256").write_text(hashlib.sha256(manifest.read_bytes()).hexdigest() + "  manifest.csv\n")
    log.info("wrote %d clips (%.2f h) to %s", len(rows), sum(len(it.wave) for it in items) / RATE / 3600, out)
    return manifest


def pack_opus(manifest: str | Path, out_dir: str | Path, quality: float = 0.95,
              skip_sources: tuple[str, ...] = ("esc50_aug",)) -> Path:
    """A lossy copy of a corpus for a machine that receives little (a GPU call carries 64 MiB): every clip
    as Ogg/Opus (libsndfile compression level `quality`: 0.95 is about 18 kbit/s at 16 kHz), the same
    manifest with .opus paths and their SHA-1. Clips of `skip_sources` are left out (the ESC-50 variants:
    1.45 h that would not fit next to ESC-50's own 37 MB). Returns the new manifest."""
    manifest, out = Path(manifest), Path(out_dir)
    rows = list(csv.DictReader(open(manifest, newline="", encoding="utf-8")))
    kept = []
    for r in rows:
        if r["source"] in skip_sources:
            continue
        wave = sf.read(manifest.parent / r["path"], dtype="float32")[0]
        rel = Path(r["path"]).with_suffix(".opus")
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(out / rel, wave, RATE, format="OGG", subtype="OPUS", compression_level=quality)
        kept.append({**r, "path": rel.as_posix(), "sha1": hashlib.sha1((out / rel).read_bytes()).hexdigest()})
    packed = out / "manifest.csv"
    with open(packed, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(kept)
    log.info("packed %d of %d clips as Opus into %s (left out: %s)", len(kept), len(rows), out,
             ", ".join(skip_sources) or "nothing")
    return packed
