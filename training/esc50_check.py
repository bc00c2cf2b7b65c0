"""ESC-50 excerpt detection and exact-duplicate detection for added audio (main thread, one core).

Several public repositories hide ESC-50 clips (cut, resampled, re-encoded, at another gain) among their own audio;
training on them leaks the ESC-50 test folds, evaluating on them measures ESC-50 again. `Esc50Index` answers
"does this waveform contain a piece of an ESC-50 clip?" in two stages:

1. Candidates by fingerprint (Haitsma & Kalker, "A highly robust audio fingerprinting system", ISMIR 2002):
   frames of 128 ms every 10 ms, energies in 33 log-spaced bands from 200 Hz to 3.5 kHz (inside the band of 8 kHz sources), and 32 bits per frame,
   bit m = sign of (E[n, m] - E[n, m+1]) - (E[n-1, m] - E[n-1, m+1]). The bits are invariant to gain and survive
   resampling and lossy codecs well enough that some frames of an excerpt keep all 32 bits. Every (clip, frame) of
   the 2000 clips goes into a sorted table by sub-fingerprint (quiet frames and very common values left out); a
   query's frames look up exact matches and vote for (clip, frame offset).
2. Verification: for the best-voted candidates, the normalised cross-correlation of the two waveforms over their
   overlap (inside the clip's non-silent span), maximised over lags of +-2 frames around the voted offset. As in
   ../shared/docs/DATA-SOURCES.md, a correlation above 0.5 is an excerpt.

`sample_hash` / `find_duplicates`: exact duplicates by the SHA-1 of the decoded samples (any container).
"""
from __future__ import annotations

import csv
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

log = logging.getLogger(__name__)

RATE_HZ = 16000


@dataclass(frozen=True)
class FingerprintConfig:
    frame_samples: int = 2048      # 128 ms: long frames make the bits stable against small time shifts
    hop_samples: int = 160         # 10 ms: a query is at most 5 ms off the index grid
    num_bands: int = 33            # 33 bands -> 32 bits
    low_hz: float = 200.0
    high_hz: float = 3500.0       # below the 4 kHz edge of 8 kHz sources (their upper bands hold no signal)
    quiet_db: float = -55.0        # frames this far below the clip's loudest frame carry no fingerprint
    max_bucket: int = 300          # sub-fingerprints shared by more (clip, frame)s are too common to vote
    min_votes: int = 2             # a candidate offset needs this many exact frame matches
    candidates: int = 5            # verify at most this many (clip, offset) candidates per query
    threshold: float = 0.5         # correlation above this = excerpt (DATA-SOURCES.md)
    min_overlap_s: float = 0.3     # shorter overlaps are not verified (chance correlations of hum)

    def key(self) -> str:
        return hashlib.sha1(repr(self).encode()).hexdigest()[:12]


def _band_matrix(cfg: FingerprintConfig) -> np.ndarray:
    """(F, num_bands) 0/1 matrix summing rFFT power bins into log-spaced bands."""
    freqs = np.fft.rfftfreq(cfg.frame_samples, 1.0 / RATE_HZ)
    edges = np.geomspace(cfg.low_hz, cfg.high_hz, cfg.num_bands + 1)
    m = np.zeros((freqs.size, cfg.num_bands), np.float32)
    for b in range(cfg.num_bands):
        m[(freqs >= edges[b]) & (freqs < edges[b + 1]), b] = 1.0
    return m


_BITS = (1 << np.arange(31, -1, -1, dtype=np.uint64)).astype(np.uint64)


def fingerprint(wave: np.ndarray, cfg: FingerprintConfig = FingerprintConfig()) -> tuple[np.ndarray, np.ndarray]:
    """16 kHz mono (N,) -> (sub-fingerprints (T,) uint32, loud (T,) bool: frames worth using), T = 1 + (N-frame)/hop.

    Frame n covers samples [n*hop, n*hop + frame); the first frame has no predecessor and is marked not loud.
    """
    x = np.asarray(wave, np.float32)
    if x.size < cfg.frame_samples + cfg.hop_samples:
        return np.zeros(0, np.uint32), np.zeros(0, bool)
    frames = np.lib.stride_tricks.sliding_window_view(x, cfg.frame_samples)[::cfg.hop_samples]  # (T, frame)
    spec = np.abs(np.fft.rfft(frames * np.hanning(cfg.frame_samples).astype(np.float32), axis=1)) ** 2
    energy = spec.astype(np.float32) @ _band_matrix(cfg)                     # (T, 33)
    d = energy[:, :-1] - energy[:, 1:]                                        # (T, 32)
    bits = (d[1:] - d[:-1]) > 0                                               # (T-1, 32)
    fp = np.zeros(len(energy), np.uint32)
    fp[1:] = (bits.astype(np.uint64) @ _BITS).astype(np.uint32)
    level_db = 10 * np.log10(energy.sum(1) + 1e-20)
    loud = level_db > max(level_db.max() + cfg.quiet_db, -100.0)              # -100 dB: digital silence
    loud[0] = False
    loud &= (fp != 0) & (fp != 0xFFFFFFFF)
    return fp, loud


def _active_span(wave: np.ndarray, cfg: FingerprintConfig) -> tuple[int, int]:
    """[first, last) sample of the clip's non-silent part (ESC-50 clips are often padded with zeros)."""
    nz = np.flatnonzero(np.abs(wave) > 10 ** (cfg.quiet_db / 20) * max(float(np.abs(wave).max()), 1e-9))
    return (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)


@dataclass(frozen=True)
class Match:
    filename: str        # ESC-50 file, relative to the ESC-50 folder (e.g. "audio/1-100032-A-0.flac")
    score: float         # normalised cross-correlation over the overlap
    offset_s: float      # where the query's start lies in the clip (negative: the clip starts inside the query)
    votes: int


class Esc50Index:
    """The 2000 ESC-50 clips' fingerprints in a table sorted by sub-fingerprint. Build with `Esc50Index.build`."""

    def __init__(self, root: Path, filenames: list[str], spans: np.ndarray, keys: np.ndarray, values: np.ndarray,
                 cfg: FingerprintConfig) -> None:
        self.root, self.filenames, self.spans, self.cfg = root, filenames, spans, cfg
        self.keys, self.values = keys, values          # keys (E,) uint32 sorted; values (E,) = clip << 16 | frame

    @classmethod
    def build(cls, esc50_dir: str | Path, cache: str | Path | None = None,
              cfg: FingerprintConfig = FingerprintConfig()) -> "Esc50Index":
        """Index every clip of `esc50_dir`/manifest.csv (or audio/*.flac); reuse `cache` (.npz) when it matches."""
        root = Path(esc50_dir)
        manifest = root / "manifest.csv"
        if manifest.exists():
            with open(manifest, newline="") as f:
                filenames = [row["filename"] for row in csv.DictReader(f)]
        else:
            filenames = sorted(str(p.relative_to(root)) for p in (root / "audio").glob("*.flac"))
        if not filenames:
            raise FileNotFoundError(f"no ESC-50 clips in {root} (expected manifest.csv or audio/*.flac)")
        tag = hashlib.sha1(("\n".join(filenames) + cfg.key()).encode()).hexdigest()[:16]
        if cache is not None and Path(cache).exists():
            z = np.load(cache, allow_pickle=False)
            if str(z["tag"]) == tag:
                return cls(root, filenames, z["spans"], z["keys"], z["values"], cfg)
            log.info("ESC-50 index cache %s is for other clips or settings: rebuilding", cache)
        keys, values, spans = [], [], np.zeros((len(filenames), 2), np.int64)
        for i, name in enumerate(filenames):
            wave = _load_clip(str(root / name))
            spans[i] = _active_span(wave, cfg)
            fp, loud = fingerprint(wave, cfg)
            frames = np.flatnonzero(loud)
            keys.append(fp[frames])
            values.append((np.int64(i) << 16) | frames)
        k, v = np.concatenate(keys), np.concatenate(values)
        order = np.argsort(k, kind="stable")
        k, v = k[order], v[order]
        if cache is not None:
            Path(cache).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(str(cache) + ".tmp.npz")
            np.savez(tmp, tag=np.array(tag), spans=spans, keys=k, values=v)
            tmp.replace(cache)
        log.info("indexed %d ESC-50 clips: %d sub-fingerprints", len(filenames), k.size)
        return cls(root, filenames, spans, k, v, cfg)

    def candidates(self, wave_16k: np.ndarray) -> list[tuple[int, int, int]]:
        """[(clip, frame offset = clip frame - query frame, votes)], best first, at most cfg.candidates."""
        cfg = self.cfg
        fp, loud = fingerprint(wave_16k, cfg)
        q = np.flatnonzero(loud)
        if q.size == 0:
            return []
        lo = np.searchsorted(self.keys, fp[q], "left")
        hi = np.searchsorted(self.keys, fp[q], "right")
        n = hi - lo
        keep = (n > 0) & (n <= cfg.max_bucket)
        q, lo, n = q[keep], lo[keep], n[keep]
        if q.size == 0:
            return []
        # Every (query frame, table entry) pair: entry index = lo + 0..n-1.
        starts = np.repeat(lo - np.cumsum(n) + n, n) + np.arange(n.sum())
        hits = self.values[starts]
        clip = hits >> 16
        offset = (hits & 0xFFFF) - np.repeat(q, n)
        pair = clip * 100000 + (offset + 50000)
        uniq, votes = np.unique(pair, return_counts=True)
        best = np.argsort(-votes, kind="stable")[:cfg.candidates]
        return [(int(uniq[b] // 100000), int(uniq[b] % 100000 - 50000), int(votes[b]))
                for b in best if votes[b] >= cfg.min_votes]

    def verify(self, wave_16k: np.ndarray, clip: int, frame_offset: int) -> tuple[float, int]:
        """(best normalised correlation, sample offset of the query's start in the clip) near the voted offset."""
        cfg = self.cfg
        ref = _load_clip(str(self.root / self.filenames[clip]))
        a, b = (int(s) for s in self.spans[clip])
        x = np.asarray(wave_16k, np.float64)
        best, best_lag = 0.0, frame_offset * cfg.hop_samples
        centre = frame_offset * cfg.hop_samples
        for lag in range(centre - 2 * cfg.hop_samples, centre + 2 * cfg.hop_samples + 1):
            # query sample i sits at clip sample i + lag; overlap within the clip's active span
            c0, c1 = max(a, lag), min(b, lag + x.size)
            if c1 - c0 < cfg.min_overlap_s * RATE_HZ:
                continue
            seg_c = ref[c0:c1]
            seg_q = x[c0 - lag:c1 - lag]
            den = np.sqrt(np.dot(seg_c, seg_c) * np.dot(seg_q, seg_q))
            if den > 0:
                r = float(np.dot(seg_c, seg_q) / den)
                if r > best:
                    best, best_lag = r, lag
        return best, best_lag

    def match_detail(self, wave_16k: np.ndarray) -> Match | None:
        """The best verified ESC-50 excerpt in `wave_16k` (16 kHz mono float), or None."""
        best: Match | None = None
        for clip, offset, votes in self.candidates(wave_16k):
            score, lag = self.verify(wave_16k, clip, offset)
            if score > self.cfg.threshold and (best is None or score > best.score):
                best = Match(self.filenames[clip], score, lag / RATE_HZ, votes)
        return best

    def match(self, wave_16k: np.ndarray) -> tuple[str, float] | None:
        """(ESC-50 filename, correlation) if `wave_16k` contains an excerpt of an ESC-50 clip, else None."""
        m = self.match_detail(wave_16k)
        return None if m is None else (m.filename, m.score)


@lru_cache(maxsize=64)
def _load_clip(path: str) -> np.ndarray:
    wave, rate = sf.read(path, dtype="float64", always_2d=True)
    if rate != RATE_HZ:
        raise ValueError(f"{path}: ESC-50 clips are expected at {RATE_HZ} Hz (shared/data/esc50), got {rate} Hz")
    return wave.mean(axis=1)


def sample_hash(path: str | Path) -> str:
    """SHA-1 of the decoded samples (int16 where the file is integer PCM, else float32) and the rate/channels:
    two files with the same audio in different containers hash the same."""
    with sf.SoundFile(str(path)) as f:
        dtype = "int16" if f.subtype.startswith(("PCM_16", "PCM_S8", "PCM_U8", "ULAW", "ALAW")) else "float32"
        data = f.read(dtype=dtype, always_2d=True)
        head = f"{f.samplerate}:{f.channels}:{dtype}:".encode()
    return hashlib.sha1(head + np.ascontiguousarray(data).tobytes()).hexdigest()


def find_duplicates(paths: Iterable[str | Path]) -> dict[str, str]:
    """{path: the first earlier path with the same decoded samples} for every exact duplicate, in input order.
    Files that cannot be decoded are skipped (and logged)."""
    seen: dict[str, str] = {}
    dupes: dict[str, str] = {}
    for p in paths:
        try:
            h = sample_hash(p)
        except (sf.LibsndfileError, RuntimeError) as e:
            log.warning("cannot decode %s for the duplicate check: %s", p, e)
            continue
        if h in seen:
            dupes[str(p)] = seen[h]
        else:
            seen[h] = str(p)
    return dupes


def main(argv: list[str] | None = None) -> int:
    """`python -m training.esc50_check [--esc50 DIR] [--cache F] PATH...`: print one line per excerpt found
    (file, ESC-50 clip, correlation, offset) and per exact duplicate; folders are searched for audio files."""
    import argparse

    from core.audio_io import read_audio
    from core.errors import AudioError

    p = argparse.ArgumentParser(prog="python -m training.esc50_check", description=main.__doc__)
    p.add_argument("paths", nargs="+")
    p.add_argument("--esc50", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "esc50"))
    p.add_argument("--cache", default=None, help="index cache (.npz), rebuilt when stale")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    index = Esc50Index.build(args.esc50, cache=args.cache)
    suffixes = {".wav", ".flac", ".mp3", ".ogg", ".opus"}
    files = sorted(f for a in map(Path, args.paths)
                   for f in ([a] if a.is_file() else a.rglob("*")) if f.suffix.lower() in suffixes)
    found = 0
    for f in files:
        try:
            m = index.match_detail(read_audio(str(f)))
        except AudioError as e:
            print(f"undecodable\t{f}\t{e}")
            continue
        if m is not None:
            found += 1
            print(f"excerpt\t{f}\t{m.filename}\t{m.score:.3f}\t{m.offset_s:.2f}")
    dupes = find_duplicates(files)
    for f, first in dupes.items():
        print(f"duplicate\t{f}\t{first}")
    print(f"{len(files)} files: {found} ESC-50 excerpts, {len(dupes)} exact duplicates")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
