"""Audio file decoding: probe, block-wise decode, downmix to mono, streaming resampling.

Used by the file-analysis thread (`probe`, `iter_blocks`, `read_audio`) and by the live capture path
(`StreamingResampler`, one instance per stream, owned by the thread that feeds it). Nothing here is
shared between threads; arrays are handed over as new arrays.

Decoding uses soundfile (libsndfile 1.2.2: WAV, FLAC, OGG/Vorbis, Opus, MP3; not M4A/AAC) and never
reads a whole file at once. Every decode problem becomes an `AudioError` whose text is meant for the user.
"""
from __future__ import annotations

import logging
import math
import numbers
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from core.errors import AudioError

logger = logging.getLogger(__name__)

SUPPORTED_FORMATS = "WAV, FLAC, OGG/Vorbis, Opus and MP3"
# Containers libsndfile cannot open; named so the error can say "convert it" instead of "corrupt".
_UNSUPPORTED_SUFFIXES = {".m4a", ".m4b", ".mp4", ".aac", ".alac", ".wma", ".3gp", ".amr", ".webm",
                         ".mka", ".mkv", ".ac3", ".ape", ".wv"}
# File name suffixes taken as audio when folders are searched (CLI, window, training data): the one list.
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".w64",
                            ".caf"})


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says about an audio file."""

    path: str
    sample_rate_hz: int
    num_channels: int
    num_samples: int      # frames per channel
    duration_s: float     # num_samples / sample_rate_hz
    format: str           # libsndfile major format, e.g. "WAV", "FLAC", "OGG", "MPEG"
    subtype: str          # e.g. "PCM_16", "FLOAT", "VORBIS", "OPUS", "MPEG_LAYER_III"


def _check_rate(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer number of samples per second "
                         f"(e.g. 16000), got {value!r}")
    return int(value)


def _libsndfile_text(exc: BaseException) -> str:
    text = str(getattr(exc, "error_string", "") or exc).strip()
    return text or f"unspecified decoder error {getattr(exc, 'code', '')}".strip()


def _os_path(path: str) -> str | bytes:
    """The name as the OS has it: bytes on POSIX, so that names that are not UTF-8 open (soundfile would
    encode a str strictly and refuse them)."""
    return os.fsencode(path) if os.name == "posix" else path


def probe(path: str | os.PathLike) -> AudioInfo:
    """Open `path` with soundfile and return its header information; AudioError if it cannot be decoded."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise AudioError(f"Audio file not found: '{path}'. Check the folder and the file name.")
    if os.path.isdir(path):
        raise AudioError(f"'{path}' is a folder, not an audio file. "
                         f"Choose an audio file ({SUPPORTED_FORMATS}) inside it.")
    if not os.path.isfile(path):
        raise AudioError(f"'{path}' is not a regular file (a device or a pipe?). Choose an audio file.")
    if not os.access(path, os.R_OK):
        raise AudioError(f"'{path}' cannot be read: permission denied. Change its permissions or copy it.")
    if os.path.getsize(path) == 0:
        raise AudioError(f"'{path}' is empty (0 bytes), so it contains no audio. It may not have been "
                         "completely copied, downloaded or exported; get or export it again.")
    try:
        with sf.SoundFile(_os_path(path)) as f:
            sample_rate_hz, num_channels, num_samples = int(f.samplerate), int(f.channels), int(f.frames)
            fmt, subtype = str(f.format), str(f.subtype)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError, ...
        suffix = os.path.splitext(path)[1].lower()
        if suffix in _UNSUPPORTED_SUFFIXES:
            stem = os.path.splitext(os.path.basename(path))[0]
            raise AudioError(
                f"'{path}' is a {suffix} file, which soundfile (libsndfile) cannot read. Convert it to "
                f"WAV or FLAC first, e.g. ffmpeg -i \"{os.path.basename(path)}\" \"{stem}.wav\"."
            ) from exc
        raise AudioError(
            f"'{path}' is not an audio file that can be decoded (libsndfile: {_libsndfile_text(exc)}). "
            f"Supported formats are {SUPPORTED_FORMATS}; if the file is damaged, export it again, and "
            "if it is audio in another format, convert it to WAV or FLAC."
        ) from exc
    if sample_rate_hz <= 0 or num_channels <= 0:
        raise AudioError(f"'{path}' has an invalid header ({sample_rate_hz} Hz, {num_channels} channels). "
                         "Export the audio again.")
    if num_samples <= 0:
        raise AudioError(f"'{path}' contains no audio samples (a {fmt} header with 0 frames). "
                         "Record or export the audio again.")
    return AudioInfo(path=path, sample_rate_hz=sample_rate_hz, num_channels=num_channels,
                     num_samples=num_samples, duration_s=num_samples / sample_rate_hz,
                     format=fmt, subtype=subtype)


def _sinc_resample_kernel(orig: int, new: int, lowpass_filter_width: int = 6,
                          rolloff: float = 0.99) -> tuple[np.ndarray, int]:
    """Hann-windowed sinc kernels `(new, 2 * width + orig)` float32 for gcd-reduced rates.

    The same float32 operations, in the same order, as torchaudio's `_get_sinc_resample_kernel`
    (resampling_method='sinc_interp_hann'), so the output matches `torchaudio.functional.resample`.
    Row j holds the weights of output phase j over padded input positions [b * orig, b * orig + K).
    """
    base_freq = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base_freq)
    f32 = np.float32
    idx = np.arange(-width, width + orig, dtype=f32)[None, :] / f32(orig)         # (1, K)
    t = np.arange(0, -new, -1, dtype=f32)[:, None] / f32(new) + idx                # (new, K)
    t *= f32(base_freq)
    np.clip(t, -lowpass_filter_width, lowpass_filter_width, out=t)
    window = np.cos(t * f32(math.pi) / f32(lowpass_filter_width) / f32(2)) ** 2
    t *= f32(math.pi)
    with np.errstate(invalid="ignore", divide="ignore"):
        kernels = np.where(t == 0, f32(1.0), np.sin(t) / t).astype(f32)
    kernels *= window * f32(base_freq / orig)
    return kernels, width


class StreamingResampler:
    """Resample a stream chunk by chunk; the output equals a one-shot `torchaudio.functional.resample`.

    `process(x)` returns the output samples that no later input can change; `flush()` returns the rest
    at the end of the stream. For any chunking the concatenated output has the length
    ceil(new * N / orig) (gcd-reduced rates, exact integer arithmetic) and matches torchaudio's default
    resampler (lowpass_filter_width=6, rolloff=0.99, sinc_interp_hann) to float32 rounding.
    Memory is bounded: fewer than 2 * width + orig input samples are kept between calls.
    orig_hz == new_hz passes samples through unchanged.
    """

    def __init__(self, orig_hz: int, new_hz: int) -> None:
        self.orig_hz = _check_rate("orig_hz", orig_hz)
        self.new_hz = _check_rate("new_hz", new_hz)
        gcd = math.gcd(self.orig_hz, self.new_hz)
        self._orig, self._new = self.orig_hz // gcd, self.new_hz // gcd
        self._identity = self.orig_hz == self.new_hz
        if self._identity:
            self._kernel_t = np.zeros((0, 0), dtype=np.float32)
            self._width = 0
        else:
            kernel, self._width = _sinc_resample_kernel(self._orig, self._new)   # (new, K)
            self._kernel_t = np.ascontiguousarray(kernel.T)                         # (K, new)
        self.reset()

    def reset(self) -> None:
        """Start a new stream (forget the history, as if just constructed)."""
        # Padded input from position next_block * orig on; torchaudio pads `width` zeros on the left.
        self._buffer = np.zeros(self._width, dtype=np.float32)
        self._num_in = 0
        self._num_out = 0
        self._flushed = False

    @property
    def buffered_samples(self) -> int:
        """Input samples held back for the kernel between calls (always < 2 * width + orig)."""
        return len(self._buffer)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Feed `x` (N,) float32 at orig_hz; return the output samples (M,) float32 that are final."""
        if self._flushed:
            raise RuntimeError("StreamingResampler.process() called after flush(); call reset() first")
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"StreamingResampler.process expects a 1-D mono array, got shape {x.shape}")
        self._num_in += len(x)
        if self._identity:
            self._num_out += len(x)
            return x.copy()
        if len(x):
            self._buffer = np.concatenate([self._buffer, x])
        return self._complete_blocks()

    def flush(self) -> np.ndarray:
        """End of stream: return the remaining output samples (M,) float32."""
        if self._flushed:
            return np.zeros(0, dtype=np.float32)
        self._flushed = True
        if self._identity:
            return np.zeros(0, dtype=np.float32)
        # torchaudio pads width + orig zeros on the right.
        self._buffer = np.concatenate([self._buffer, np.zeros(self._width + self._orig, dtype=np.float32)])
        out = self._complete_blocks()
        target_len = -(-self._new * self._num_in // self._orig)
        keep = target_len - (self._num_out - len(out))
        assert 0 <= keep <= len(out), (keep, len(out))
        self._num_out = target_len
        return out[:keep]

    def _complete_blocks(self) -> np.ndarray:
        """Convolve every block whose K inputs are all buffered; drop the inputs no longer needed.

        Block b, output phase j: sum_k buffer[b * orig + k] * kernel[j, k], i.e. torchaudio's conv1d with
        stride orig. The K taps are split into pieces of at most orig taps, so each piece is one BLAS
        matmul on a strided (B, <=orig) view of the buffer, without copying overlapping frames
        (4x faster than one (B, K) matmul when orig is small, e.g. 48 kHz -> 16 kHz).
        """
        kernel_len, orig = self._kernel_t.shape[0], self._orig
        if len(self._buffer) < kernel_len:
            return np.zeros(0, dtype=np.float32)
        num_blocks = (len(self._buffer) - kernel_len) // orig + 1
        step = self._buffer.strides[0]
        if orig == 1:  # pure upsampling: one matmul on overlapping (B, K) frames is faster
            pieces = [(0, self._kernel_t)]
        else:
            pieces = [(start, self._kernel_t[start:start + orig]) for start in range(0, kernel_len, orig)]
        out = np.zeros((num_blocks, self._new), dtype=np.float32)                  # (B, new)
        for start, kernel_piece in pieces:                                          # (k, new)
            frames = np.lib.stride_tricks.as_strided(                               # (B, k) view
                self._buffer[start:], shape=(num_blocks, kernel_piece.shape[0]),
                strides=(step * orig, step), writeable=False)
            out += frames @ kernel_piece
        self._buffer = self._buffer[num_blocks * orig:].copy()
        self._num_out += out.size
        return out.reshape(-1)                                                      # (B * new,)


def _open_at(path: str, frame: int, reason: BaseException | None = None) -> sf.SoundFile:
    try:
        f = sf.SoundFile(_os_path(path))
        if frame:
            f.seek(frame)
        return f
    except Exception as exc:
        raise AudioError(f"'{path}' could not be opened for decoding (libsndfile: "
                         f"{_libsndfile_text(reason or exc)}). Check that it still exists and is not "
                         "damaged; export, copy or download it again.") from exc


def _read_pieces(info: AudioInfo, read_frames: int) -> Iterator[np.ndarray]:
    """Yield the decoded file as float32 pieces (n, C), n <= read_frames.

    On a decode error libsndfile drops the whole failed read and keeps its error state, so the file is
    reopened at the last good frame and that stretch is read again in 10 ms steps: the decodable part
    is delivered, and the AudioError names the failure position to 10 ms.
    """
    path, rate_hz = info.path, info.sample_rate_hz
    step_frames = max(1, rate_hz // 100)
    position = 0            # frames delivered so far
    retry_until = -1        # frames before this are being re-read in small steps after an error
    first_error: BaseException | None = None
    f = _open_at(path, 0)
    try:
        while True:
            retrying = position < retry_until
            try:
                data = f.read(step_frames if retrying else read_frames, dtype="float32", always_2d=True)
            except Exception as exc:
                if not retrying:
                    first_error, retry_until = exc, position + read_frames
                    f.close()
                    f = _open_at(path, position, reason=exc)
                    continue
                raise AudioError(
                    f"Decoding '{path}' failed at {position / rate_hz:.2f} s of {info.duration_s:.2f} s "
                    f"(libsndfile: {_libsndfile_text(first_error or exc)}). The file is damaged or "
                    "truncated; the audio before that point was decoded. Export, copy or download it again."
                ) from exc
            if len(data) == 0:
                return
            position += len(data)
            yield data
    finally:
        f.close()


def iter_blocks(path: str | os.PathLike, target_rate_hz: int = 16000,
                block_s: float = 4.0) -> Iterator[np.ndarray]:
    """Decode `path` block by block; yield float32 mono blocks (round(block_s * target_rate_hz),) at
    target_rate_hz, the last one shorter. Channels are averaged; NaN -> 0, +-inf -> +-1 (one warning).

    Only one block of the file is in memory at a time. Raises AudioError if the file cannot be opened
    or holds no samples; if it fails to decode midway, the decodable part is yielded first.
    """
    target_rate_hz = _check_rate("target_rate_hz", target_rate_hz)
    if not (isinstance(block_s, numbers.Real) and math.isfinite(block_s) and block_s > 0):
        raise ValueError(f"block_s must be a positive number of seconds (e.g. 4.0), got {block_s!r}")
    info = probe(path)
    block_len = max(1, round(block_s * target_rate_hz))
    resampler = StreamingResampler(info.sample_rate_hz, target_rate_hz)
    pending: list[np.ndarray] = []      # resampled output not yet yielded, in order
    num_pending = 0
    num_read = 0
    num_nonfinite = 0
    decode_error: AudioError | None = None
    try:
        try:
            for data in _read_pieces(info, read_frames=max(1, round(block_s * info.sample_rate_hz))):
                num_read += len(data)
                finite = np.isfinite(data)
                if not finite.all():
                    num_nonfinite += data.size - int(np.count_nonzero(finite))
                    np.nan_to_num(data, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
                mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]  # (n,)
                out = resampler.process(mono)
                pending.append(out)
                num_pending += len(out)
                if num_pending >= block_len:
                    merged = np.concatenate(pending)
                    num_full = len(merged) // block_len * block_len
                    yield from np.split(merged[:num_full], num_full // block_len)
                    pending, num_pending = [merged[num_full:]], len(merged) - num_full
        except AudioError as exc:       # failed midway: deliver what was decoded, then raise
            if num_read == 0:
                raise
            decode_error = exc
        if num_read == 0:
            raise AudioError(f"'{info.path}' contains no audio samples that can be decoded. "
                             "Record or export the audio again.")
        if decode_error is None and num_read < info.num_samples:
            logger.warning("'%s' ended after %.2f s although its header says %.2f s; it may be truncated",
                           info.path, num_read / info.sample_rate_hz, info.duration_s)
        rest = np.concatenate(pending + [resampler.flush()])
        yield from (rest[i:i + block_len] for i in range(0, len(rest), block_len))
        if decode_error is not None:
            raise decode_error
    finally:
        if num_nonfinite:
            logger.warning("'%s' contains %d non-finite samples (NaN or inf); replaced NaN by 0 and "
                           "+-inf by +-1", info.path, num_nonfinite)


def read_audio(path: str | os.PathLike, target_rate_hz: int = 16000) -> np.ndarray:
    """Decode the whole file to float32 mono (N,) at target_rate_hz (for short clips and tests).

    Raises AudioError like iter_blocks; a file that fails midway gives no partial result here.
    """
    return np.concatenate(list(iter_blocks(path, target_rate_hz)))
