"""Datasets as manifests of clips, a feature cache on disk, and batches in memory.

Used on the training (main) thread. A source is a string `kind:path[@key=value...]`:
  esc50:DIR        ESC-50: DIR/manifest.csv (ours) or DIR/meta/esc50.csv + DIR/audio/ (public layout,
                   .wav or .flac); label = `category`, official `fold`, group = `src_file`.
  fsdd:DIR         Free Spoken Digit Dataset: official split (takes 0-4 test, 5-49 train). @label=NAME
                   gives every clip one label (e.g. speech) instead of its digit; @limit=N keeps N
                   training clips (seeded).
  folders:DIR      one sub-folder per class; folds assigned per file (its group) by a stable hash.
  speechcommands:DIR  Speech Commands (v0.01/v0.02 public layout): DIR/<word>/<speaker>_nohash_<n>.wav, speakers
                   in testing_list.txt held out (split test); @label=NAME gives every word that label (e.g.
                   speech); DIR/_background_noise_/*.wav become unlabelled clips, cut into 5 s pieces.
  csv:FILE         columns `path,labels` (labels separated by ';', empty = no label), optional `fold`,
                   `group`, `split` (train/test), `source` (default: the file's stem); paths relative to the
                   CSV's folder. `python -m training corpus` writes one (training/corpus.py).
  negatives:N      N synthetic 5.2 s clips of digital silence, low white/pink/brown noise and hum, all
                   labels zero (plus N // 4 held-out ones with another seed); needs loss=bce.
Any source takes @limit=N. Every clip's log-mel fbank is computed once and cached as float16 under
`<cache>/<feature key>/<content hash>.npy`, so epochs never decode audio again.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import random
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from core.atomic import atomic_write
from core.audio_io import AUDIO_SUFFIXES, read_audio
from core.config import FeatureConfig
from core.features import Fbank
from training.labels import ESC50_CATEGORIES

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = tuple(sorted(AUDIO_SUFFIXES))   # the one list, core/audio_io.py
CACHE_VERSION = "1"  # bump when the fbank code changes


@dataclass(frozen=True)
class Clip:
    path: str                  # audio file, or "synth:<kind>:<level dBFS>:<seed>"
    labels: tuple[str, ...]    # label names; () = nothing known is heard
    source: str                # which source it came from ("esc50", "fsdd", "negatives", ...)
    group: str                 # source recording: clips of one group never straddle folds
    fold: int = 0              # 1..K, or 0 when the clip's `split` decides
    split: str = ""            # "train" / "test" for sources with an official split, else ""


# ----------------------------------------------------------------------------- sources

def parse_source(spec: str) -> tuple[str, str, dict[str, str]]:
    """'fsdd:/data/fsdd@label=speech@limit=600' -> ('fsdd', '/data/fsdd', {'label': 'speech', ...})."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in SOURCES:
        raise ValueError(f"data source {spec!r} is not 'kind:path' with kind one of {sorted(SOURCES)}")
    path, *opts = rest.split("@")
    options = {}
    for opt in opts:
        key, eq, value = opt.partition("=")
        if not eq:
            raise ValueError(f"option {opt!r} of data source {spec!r} is not key=value")
        options[key] = value
    return kind, path, options


def _esc50(root: Path, opts: dict[str, str]) -> list[Clip]:
    manifest = root / "manifest.csv"
    rows = list(csv.DictReader(open(manifest if manifest.exists() else root / "meta" / "esc50.csv",
                                    newline="", encoding="utf-8")))
    clips = []
    for r in rows:
        name = r["filename"]
        path = root / name if "/" in name else root / "audio" / name
        if not path.exists():  # the public layout names .wav files; accept a .flac copy too
            alt = [path.with_suffix(ext) for ext in AUDIO_EXTENSIONS if path.with_suffix(ext).exists()]
            if not alt:
                raise FileNotFoundError(f"ESC-50 clip {path} is missing (nor any of {AUDIO_EXTENSIONS})")
            path = alt[0]
        if opts.get("esc10") in ("1", "true", "True") and r["esc10"] != "True":
            continue
        clips.append(Clip(str(path), (r["category"],), "esc50", f"esc50:{r['src_file']}", int(r["fold"])))
    return clips


def _fsdd(root: Path, opts: dict[str, str]) -> list[Clip]:
    rows = list(csv.DictReader(open(root / "manifest.csv", newline="", encoding="utf-8")))
    return [Clip(str(root / r["filename"]), (opts.get("label") or r["label"],), "fsdd",
                 f"fsdd:{r['speaker']}:{r['take']}", split=r["split"]) for r in rows]


def _speechcommands(root: Path, opts: dict[str, str], num_folds: int = 5) -> list[Clip]:
    testing = root / "testing_list.txt"
    test = set(testing.read_text().split()) if testing.exists() else set()
    clips = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for f in sorted(folder.glob("*.wav")):
            rel = f"{folder.name}/{f.name}"
            group = f"sc:{f.name.split('_nohash_')[0]}"
            split = "test" if rel in test else ""
            clips.append(Clip(str(f), (opts.get("label") or folder.name,), "speechcommands", group,
                              0 if split else _stable_fold(group, num_folds), split))
    for f in sorted((root / "_background_noise_").glob("*.wav")):
        seconds = sf.info(str(f)).duration
        for k in range(int(seconds // 5)):
            clips.append(Clip(f"{f}#{k * 5}:{k * 5 + 5}", (), "speechcommands_noise", f"scnoise:{f.stem}",
                              _stable_fold(f"scnoise:{f.stem}", num_folds)))
    if not clips:
        raise ValueError(f"{root} is not a Speech Commands folder (<word>/<speaker>_nohash_<n>.wav)")
    return clips


def _stable_fold(group: str, num_folds: int) -> int:
    return zlib.crc32(group.encode()) % num_folds + 1


def _folders(root: Path, opts: dict[str, str], num_folds: int = 5) -> list[Clip]:
    clips = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = [f for f in sorted(folder.rglob("*")) if f.suffix.lower() in AUDIO_EXTENSIONS]
        if not files:
            log.warning("class folder %s has no audio files (%s); its label '%s' is left out of training",
                        folder, ", ".join(AUDIO_EXTENSIONS), folder.name)
        for f in files:
            group = f"{folder.name}/{f.stem}"
            clips.append(Clip(str(f), (folder.name,), root.name, group, _stable_fold(group, num_folds)))
    if not clips:
        raise ValueError(f"{root} has no class folders with audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return clips


def _csv(path: Path, opts: dict[str, str], num_folds: int = 5) -> list[Clip]:
    clips = []
    for r in csv.DictReader(open(path, newline="", encoding="utf-8")):
        if "path" not in r or "labels" not in r:
            raise ValueError(f"{path} needs the columns path,labels (has {list(r)})")
        labels = tuple(s.strip() for s in (r["labels"] or "").split(";") if s.strip())
        group = r.get("group") or r["path"]
        fold = int(r["fold"]) if r.get("fold") else (0 if r.get("split") else _stable_fold(group, num_folds))
        clips.append(Clip(str(path.parent / r["path"]), labels, r.get("source") or path.stem, group, fold,
                          r.get("split") or ""))
    return clips


NOISE_KINDS = ("silence", "white", "pink", "brown", "hum")


def synthetic_negatives(count: str, opts: dict[str, str]) -> list[Clip]:
    n = int(count)
    clips = []
    for split, number, seed0 in (("train", n, 0), ("test", n // 4, 10_000_000)):
        rng = random.Random(1234 + seed0)
        for i in range(number):
            kind = NOISE_KINDS[i % len(NOISE_KINDS)]
            level = -120.0 if kind == "silence" else round(rng.uniform(-90.0, -30.0), 1)
            path = f"synth:{kind}:{level}:{seed0 + i}"
            clips.append(Clip(path, (), "negatives", path, split=split))
    return clips


def synth_audio(spec: str, seconds: float = 5.2, rate_hz: int = 16000) -> np.ndarray:
    """Waveform of a synthetic negative 'synth:<kind>:<level dBFS RMS>:<seed>' (float32, [-1, 1])."""
    _, kind, level, seed = spec.split(":")
    rng = np.random.default_rng(int(seed))
    n = int(seconds * rate_hz)
    if kind == "silence":
        return np.zeros(n, np.float32)
    if kind == "hum":
        t = np.arange(n) / rate_hz
        f0 = rng.choice([50.0, 60.0])
        x = sum(rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) for k in (1, 2, 3, 5))
        x = x + 0.05 * rng.standard_normal(n)
    else:
        white = rng.standard_normal(n)
        if kind == "white":
            x = white
        else:  # pink (1/f power) or brown (1/f^2) by shaping the spectrum
            spectrum = np.fft.rfft(white)
            f = np.maximum(np.fft.rfftfreq(n, 1 / rate_hz), 1.0)
            x = np.fft.irfft(spectrum / (np.sqrt(f) if kind == "pink" else f), n)
    x = x / (np.sqrt(np.mean(x ** 2)) + 1e-12) * 10 ** (float(level) / 20)
    return np.clip(x, -1, 1).astype(np.float32)


SOURCES = {"esc50", "fsdd", "folders", "csv", "negatives", "speechcommands"}


def load_clips(specs: tuple[str, ...] | list[str], num_folds: int = 5, seed: int = 0) -> list[Clip]:
    """All clips of all sources, in source order (limits applied to training clips, seeded)."""
    clips: list[Clip] = []
    for spec in specs:
        kind, path, opts = parse_source(spec)
        if kind == "negatives":
            part = synthetic_negatives(path, opts)
        elif kind == "esc50":
            part = _esc50(Path(path), opts)
        elif kind == "fsdd":
            part = _fsdd(Path(path), opts)
        elif kind == "speechcommands":
            part = _speechcommands(Path(path), opts, num_folds)
        elif kind == "folders":
            part = _folders(Path(path), opts, num_folds)
        else:
            part = _csv(Path(path), opts, num_folds)
        if "limit" in opts:
            train = [c for c in part if c.split != "test"]
            keep = set(random.Random(seed).sample(range(len(train)), min(int(opts["limit"]), len(train))))
            part = [c for i, c in enumerate(train) if i in keep] + [c for c in part if c.split == "test"]
        clips += part
    return clips


def label_names(clips: list[Clip]) -> list[str]:
    """Label vocabulary in first-seen order, except that ESC-50 categories keep their official order."""
    seen = dict.fromkeys(label for c in clips for label in c.labels)
    esc = [c for c in ESC50_CATEGORIES if c in seen]
    return esc + [n for n in seen if n not in esc]


def split_clips(clips: list[Clip], eval_fold: int) -> tuple[list[Clip], list[Clip]]:
    """(train, eval): fold `eval_fold` plus official test splits are held out; 0 = train on all folds.

    No source recording is on both sides: a training clip whose group also has a held-out clip is left
    out of training. (ESC-50's official folds put 4 Freesound recordings into two folds each, under
    different classes: 131943, 134049, 209698, 234879; this drops 0 to 3 training clips per fold.)
    """
    train = [c for c in clips if c.split == "train" or (not c.split and c.fold != eval_fold)]
    held = [c for c in clips if c.split == "test" or (not c.split and eval_fold and c.fold == eval_fold)]
    held_groups = {c.group for c in held}
    leaking = [c for c in train if c.group in held_groups]
    if leaking:
        log.info("left %d training clips out: their source recordings are also held out (%s)", len(leaking),
                 ", ".join(sorted({c.group for c in leaking})[:5]))
    return [c for c in train if c.group not in held_groups], held


# ----------------------------------------------------------------------------- feature cache

def feature_key(features: FeatureConfig) -> str:
    """What the cached fbank depends on (not the window or the normalisation, applied later)."""
    fields = dict(sample_rate_hz=features.sample_rate_hz, num_mel_bins=features.num_mel_bins,
                  frame_length_samples=features.frame_length_samples,
                  frame_shift_samples=features.frame_shift_samples, version=CACHE_VERSION)
    return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def split_segment(path: str) -> tuple[str, float, float | None]:
    """'file.wav#5:10' -> ('file.wav', 5.0, 10.0): a clip that is a segment (seconds) of a longer file."""
    file, sep, span = path.rpartition("#")
    if not sep or ":" not in span:
        return path, 0.0, None
    start, _, end = span.partition(":")
    return file, float(start), float(end)


def content_key(path: str) -> str:
    if path.startswith("synth:"):
        return hashlib.sha1(path.encode()).hexdigest()
    file, start, end = split_segment(path)
    digest = hashlib.sha1(Path(file).read_bytes())
    if end is not None:
        digest.update(f"#{start}:{end}".encode())
    return digest.hexdigest()


class FeatureCache:
    """Log-mel fbank (T, F) float16 per clip, on disk under cache_dir/<feature key>/<content key>.npy."""

    def __init__(self, cache_dir: str | Path, features: FeatureConfig):
        self.features = features
        self.dir = Path(cache_dir) / feature_key(features)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fbank = Fbank(features)
        self.computed = 0  # clips decoded by this instance (tests check that a warm cache decodes none)
        self._lock = threading.Lock()

    def get(self, clip: Clip) -> torch.Tensor:
        file = self.dir / f"{content_key(clip.path)}.npy"
        if file.exists():
            return torch.from_numpy(np.load(file))
        if clip.path.startswith("synth:"):
            wave = synth_audio(clip.path, rate_hz=self.features.sample_rate_hz)
        else:
            path, start, end = split_segment(clip.path)
            rate = self.features.sample_rate_hz
            wave = read_audio(path, rate)
            if end is not None:
                wave = wave[round(start * rate):round(end * rate)]
        with torch.no_grad():
            frames = self.fbank(torch.from_numpy(wave)).to(torch.float16)  # (T, F)
        with atomic_write(file, "wb") as f:   # each writer its own temp file; readers see whole files
            np.save(f, frames.numpy())
        with self._lock:
            self.computed += 1
        return frames

    def load(self, clips: list[Clip], progress: bool = False, workers: int = 1) -> list[torch.Tensor]:
        """Features of every clip, in order. workers > 1 decodes missing ones on that many threads
        (soundfile and the fbank release the GIL); a warm cache only reads .npy files."""
        with ThreadPoolExecutor(max(1, workers)) as pool:
            return list(tqdm(pool.map(self.get, clips), total=len(clips), desc="features",
                             disable=not progress, leave=False))


@dataclass
class ClipSet:
    """Cached features of a list of clips plus their multi-hot targets, ready to batch.

    All clips' frames sit end to end in one (sum T_i, F) float16 tensor (as cached), so a batch is one
    gather, on whichever device the set lives (`to(device)`: on a GPU the whole set stays in its memory
    and no batch crosses the bus).
    """

    clips: list[Clip]
    data: torch.Tensor           # (sum T_i, F) float16 log-mel of every clip, end to end
    starts: torch.Tensor         # (N,) int64 first row of each clip in `data`
    lengths: torch.Tensor        # (N,) int64 frames per clip
    targets: torch.Tensor        # (N, L) float32 multi-hot

    def __post_init__(self) -> None:
        self.host_lengths = self.lengths.cpu()  # batch() places clips on the host: no device sync per batch

    @classmethod
    def build(cls, clips: list[Clip], labels: list[str], cache: FeatureCache, progress: bool = False,
              workers: int = 1) -> "ClipSet":
        index = {name: i for i, name in enumerate(labels)}
        targets = torch.zeros(len(clips), len(labels))
        for i, c in enumerate(clips):
            for name in c.labels:
                targets[i, index[name]] = 1.0
        frames = cache.load(clips, progress, workers)
        lengths = torch.tensor([f.shape[0] for f in frames], dtype=torch.long)
        starts = torch.cumsum(lengths, 0) - lengths
        data = torch.cat([f.to(torch.float16) for f in frames]) if frames else torch.zeros(0, cache.features.num_mel_bins, dtype=torch.float16)
        return cls(clips, data, starts, lengths, targets)

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def device(self) -> torch.device:
        return self.data.device

    def to(self, device: torch.device | str) -> "ClipSet":
        return ClipSet(self.clips, self.data.to(device), self.starts.to(device), self.lengths.to(device),
                       self.targets.to(device))

    def clip(self, i: int) -> torch.Tensor:
        """Frames (T_i, F) float32 of clip i."""
        start = int(self.starts[i])
        return self.data[start:start + int(self.lengths[i])].float()

    def batch(self, idx: list[int] | torch.Tensor, num_frames: int, random_place: bool,
              generator: torch.Generator | None = None,
              pad_value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw log-mel windows (B, T, F) float32, valid-frame mask (B, T) bool, targets (B, L), on the
        set's device.

        Long clips are cut (at a random start when random_place, else at 0, as AST cuts); short clips are
        placed (at a random offset when random_place, else at 0) and padded in the log-mel domain with
        `pad_value` (FeatureConfig.pad_log_mel: 0 as AST pads, or the fbank of digital silence).
        Random positions come from `generator` (a CPU one), so a run's data order does not depend on
        the device.
        """
        idx = torch.as_tensor(idx, dtype=torch.long).reshape(-1)
        length = self.host_lengths[idx]                                      # (B,)
        spare = (length - num_frames).abs()
        if random_place:
            offset = (torch.rand(len(idx), generator=generator) * (spare + 1)).long().clamp_max(spare)
        else:
            offset = torch.zeros_like(spare)
        shift = torch.where(length >= num_frames, offset, -offset)           # source frame of window frame 0
        dev = self.data.device
        if dev.type == "cuda":  # one pinned, asynchronous copy: the host never waits for the GPU here
            idx, shift = torch.stack([idx, shift]).pin_memory().to(dev, non_blocking=True)
        length = self.lengths[idx]
        source = torch.arange(num_frames, device=dev)[None] + shift[:, None]  # (B, T) frame within the clip
        valid = (source >= 0) & (source < length[:, None])
        rows = (self.starts[idx][:, None] + source.clamp(min=0).minimum(length[:, None] - 1)).clamp(min=0)
        x = torch.where(valid[..., None], self.data[rows].float(), pad_value)  # (B, T, F), padded
        return x, valid, self.targets[idx]
