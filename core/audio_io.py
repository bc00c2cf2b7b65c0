"""Audio file decoding: probe, block-wise decode, downmix to mono, streaming resampling.

Used by the file-analysis thread (`probe`, `iter_blocks`, `read_audio`), the live capture path
(`StreamingResampler`, one instance per stream, owned by the thread that feeds it), and the player's and
the clip writer's threads (`region_frames`, `iter_region`: a stretch of a file as it is there). Nothing
here is shared between threads; arrays are handed over as new arrays.

Decoding uses soundfile (libsndfile 1.2.2: WAV, FLAC, OGG/Vorbis, Opus, MP3; not M4A/AAC) and never
reads a whole file at once. Every decode problem becomes an `AudioError` whose text is meant for the user.
"""
from __future__ import annotations

import functools
import logging
import math
import numbers
import os
import re
from collections.abc import Generator, Iterator
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
    num_samples: int | None   # frames per channel; None: the header does not say (a FLAC stream from a pipe)
    duration_s: float | None  # num_samples / sample_rate_hz; None when num_samples is
    format: str           # libsndfile major format, e.g. "WAV", "FLAC", "OGG", "MPEG"
    subtype: str          # e.g. "PCM_16", "FLOAT", "VORBIS", "OPUS", "MPEG_LAYER_III"
    header_damage: str = ""   # why the header shows the file is cut short ("" when it does not)


@dataclass(frozen=True)
class DecodeReport:
    """How decoding one file went: what `iter_blocks` returns (StopIteration.value) after its last block.

    A truncated or damaged file still yields the audio that decodes; truncated_at_s and warning say so.
    """

    num_samples: int                      # frames per channel decoded, at the file's own rate
    sample_rate_hz: int                   # the file's own rate
    truncated_at_s: float | None = None   # the decodable audio ends here, before the file's real end
    warning: str = ""                     # one line for the user (no file name) when truncated_at_s is set
    nonfinite_samples: int = 0            # NaN/inf samples replaced (NaN -> 0, +-inf -> +-1)
    clipped_samples: int = 0              # float samples beyond [-1, 1], clipped


_UNKNOWN_LENGTH = 2**63 - 1   # libsndfile's SF_COUNT_MAX: frames of a FLAC whose STREAMINFO says 0 (unknown)
# libsndfile's log when a WAV/AIFF data chunk claims more bytes than the file holds: "data : 128000 (should
# be 64000)". It then reads what is there, silently: a cut copy. Streaming writers that cannot seek back
# put placeholders (0xFFFFFFFF, 0x7FFFF000) there: unknown length, not damage.
_CHUNK_CLAIM = re.compile(r"^\s*(data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_PLACEHOLDER_SIZE = 0x7FFFF000


def _header_damage(log: str) -> str:
    for chunk, claimed, present in _CHUNK_CLAIM.findall(log):
        if int(present) < int(claimed) < _PLACEHOLDER_SIZE:
            return (f"its header declares {int(claimed)} bytes of audio data ('{chunk}' chunk) but the file "
                    f"holds {int(present)}")
    return ""


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
            fmt, subtype, log = str(f.format), str(f.subtype), str(f.extra_info)
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
    known = num_samples != _UNKNOWN_LENGTH
    return AudioInfo(path=path, sample_rate_hz=sample_rate_hz, num_channels=num_channels,
                     num_samples=num_samples if known else None,
                     duration_s=num_samples / sample_rate_hz if known else None,
                     format=fmt, subtype=subtype, header_damage=_header_damage(log))


def probe_duration(path: str | os.PathLike) -> float | None:
    """Seconds in the file's header for planning and progress: None when the header does not say (a stream),
    0 when the file cannot be read (it then fails on its own when it is analysed)."""
    try:
        return probe(path).duration_s
    except (AudioError, OSError):
        return 0.0


# The filter: a Kaiser-windowed sinc (torchaudio's sinc_interp_kaiser, beta 14.77 as in its "kaiser_best"),
# 128 zero crossings, rolloff 0.975: at 16 kHz flat (+-0.01 dB) to 7.5 kHz, about -6 dB at 7.8 kHz and no
# aliasing from 8 kHz on, like the sox `rate -v` that converted the model's training audio (ESC-50: flat to
# 7.6 kHz, stopband from 8 kHz). The model reacts strongly to its top mel bands (7-8 kHz): torchaudio's
# default (Hann, 6 zero crossings, rolloff 0.99; -1.8 dB at 7 kHz, -3.7 dB at 7.5 kHz) moved the scores of a
# 44.1 kHz copy of a 16 kHz scene by up to 0.11 and changed its events; "kaiser_best" (64 zero crossings,
# rolloff 0.9476: -3 dB at 7.5 kHz, -14 dB at 7.7 kHz) by up to 0.47 (issue 10, defect 13;
# bench/bench_resample.py).
_LOWPASS_WIDTH, _ROLLOFF, _BETA = 128, 0.975, 14.769656459379492
# Largest polyphase table (output phases x taps, float32) built for a rate pair: 4 MB. Every common rate
# fits (11025 Hz, the largest, needs 640 x 705); above it, e.g. 44101 Hz (16000 x 44825 = 2.9 GB), the
# same kernel is evaluated per output sample, so memory never depends on the rates' common factors.
_MAX_TABLE_ENTRIES = 1 << 20
_DIRECT_CHUNK_ENTRIES = 1 << 18     # (outputs x taps) evaluated at once on the per-sample path


def _kernel_width(orig: int, new: int) -> tuple[float, int]:
    """(cutoff in reduced-rate units, kernel half-width in input samples), as torchaudio computes them."""
    base_freq = min(orig, new) * _ROLLOFF
    return base_freq, math.ceil(_LOWPASS_WIDTH * orig / base_freq)


_WINDOW_STEPS = 1 << 16             # Kaiser window tabulated on [0, 1] in this many steps (0.5 MB, float64)


@functools.lru_cache(maxsize=1)
def _kaiser_window_table() -> np.ndarray:
    """I0(beta * sqrt(1 - u^2)) / I0(beta) at u = i / _WINDOW_STEPS, float64, one guard entry at the end.

    np.i0 runs in Python-level passes (~80 ns a value); read from this table with linear interpolation the
    window is off by < 1e-9 (its second derivative is below beta), far under float32 rounding."""
    u = np.linspace(0.0, 1.0, _WINDOW_STEPS + 1)
    table = np.i0(_BETA * np.sqrt(np.maximum(0.0, 1.0 - u * u))) / np.i0(_BETA)
    return np.append(table, table[-1])


def _windowed_sinc(t: np.ndarray, base_freq: float, orig: int) -> np.ndarray:
    """torchaudio's Kaiser-windowed sinc at `t` (input time minus output time, scaled by the cutoff), float32.

    torchaudio's formula (`_get_sinc_resample_kernel`, sinc_interp_kaiser) in float32, but the window read
    from _kaiser_window_table (numpy has no float32 I0): the same kernel to float32 rounding. `t` is
    overwritten.
    """
    f32 = np.float32
    np.clip(t, -_LOWPASS_WIDTH, _LOWPASS_WIDTH, out=t)
    table = _kaiser_window_table()
    pos = np.abs(t).astype(np.float64)
    pos *= _WINDOW_STEPS / _LOWPASS_WIDTH
    index = pos.astype(np.intp)
    pos -= index                                                    # fraction of a step
    window = table[index]
    window += pos * (table[index + 1] - window)
    t *= f32(math.pi)
    with np.errstate(invalid="ignore", divide="ignore"):
        kernels = np.where(t == 0, f32(1.0), np.sin(t) / t).astype(f32)
    kernels *= window.astype(f32) * f32(base_freq / orig)
    return kernels


def _sinc_resample_kernel(orig: int, new: int) -> tuple[np.ndarray, int]:
    """Kaiser-windowed sinc kernels `(new, 2 * width + orig)` float32 for gcd-reduced rates.

    The same float32 operations, in the same order, as torchaudio's `_get_sinc_resample_kernel`
    (see _LOWPASS_WIDTH), so the output matches `torchaudio.functional.resample` with the same parameters.
    Row j holds the weights of output phase j over padded input positions [b * orig, b * orig + K).
    """
    base_freq, width = _kernel_width(orig, new)
    f32 = np.float32
    idx = np.arange(-width, width + orig, dtype=f32)[None, :] / f32(orig)         # (1, K)
    t = np.arange(0, -new, -1, dtype=f32)[:, None] / f32(new) + idx                # (new, K)
    t *= f32(base_freq)
    return _windowed_sinc(t, base_freq, orig), width


class StreamingResampler:
    """Resample a stream chunk by chunk; the output equals a one-shot `torchaudio.functional.resample`.

    `process(x)` returns the output samples that no later input can change; `flush()` returns the rest
    at the end of the stream. For any chunking the concatenated output has the length
    ceil(new * N / orig) (gcd-reduced rates, exact integer arithmetic) and matches torchaudio's resampler
    with the same filter (resampling_method='sinc_interp_kaiser', lowpass_filter_width=128, rolloff=0.975,
    beta=14.769656459379492) to float32 rounding.
    orig_hz == new_hz passes samples through unchanged.

    Two ways to apply the same kernel: for rates whose reduced factors are small (every common rate) a
    polyphase table of new x (2 * width + orig) weights, built once; for odd rates (16001, 44101 Hz:
    a table of gigabytes) the weights of each output sample are evaluated from their exact position
    (integer arithmetic, no approximation of the ratio, no drift). Memory is bounded either way: the
    table is at most _MAX_TABLE_ENTRIES, and fewer than 2 * width + orig + 1 input samples are kept
    between calls.
    """

    def __init__(self, orig_hz: int, new_hz: int) -> None:
        self.orig_hz = _check_rate("orig_hz", orig_hz)
        self.new_hz = _check_rate("new_hz", new_hz)
        gcd = math.gcd(self.orig_hz, self.new_hz)
        self._orig, self._new = self.orig_hz // gcd, self.new_hz // gcd
        self._identity = self.orig_hz == self.new_hz
        self._base_freq, self._width = _kernel_width(self._orig, self._new)
        self._direct = self._new * (2 * self._width + self._orig) > _MAX_TABLE_ENTRIES
        if self._identity:
            self._width = 0
            self._kernel_t = np.zeros((0, 0), dtype=np.float32)
        elif self._direct:
            self._kernel_t = np.zeros((2 * self._width + 1, 0), dtype=np.float32)  # K taps, no table
        else:
            kernel, self._width = _sinc_resample_kernel(self._orig, self._new)   # (new, K)
            self._kernel_t = np.ascontiguousarray(kernel.T)                         # (K, new)
        self.reset()

    def reset(self) -> None:
        """Start a new stream (forget the history, as if just constructed)."""
        # Padded input from position next_block * orig on; torchaudio pads `width` zeros on the left.
        self._buffer = np.zeros(self._width, dtype=np.float32)
        self._buffer_start = -self._width   # input index of _buffer[0] (per-sample path)
        self._num_in = 0
        self._num_out = 0
        self._flushed = False

    @property
    def buffered_samples(self) -> int:
        """Input samples held back for the kernel between calls (always < 2 * width + orig + 1)."""
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
        return self._direct_outputs(None) if self._direct else self._complete_blocks()

    def flush(self) -> np.ndarray:
        """End of stream: return the remaining output samples (M,) float32."""
        if self._flushed:
            return np.zeros(0, dtype=np.float32)
        self._flushed = True
        if self._identity:
            return np.zeros(0, dtype=np.float32)
        target_len = -(-self._new * self._num_in // self._orig)
        if self._direct:
            self._buffer = np.concatenate([self._buffer, np.zeros(self._width + 1, dtype=np.float32)])
            return self._direct_outputs(target_len)
        # torchaudio pads width + orig zeros on the right.
        self._buffer = np.concatenate([self._buffer, np.zeros(self._width + self._orig, dtype=np.float32)])
        out = self._complete_blocks()
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

    def _direct_outputs(self, target_len: int | None) -> np.ndarray:
        """Per-sample path: outputs m from num_out on whose taps are all buffered (up to target_len at flush).

        Output m sits at input position m * orig / new; its taps are the inputs n in [c - width, c + width],
        c = floor(m * orig / new) (torchaudio's other taps fall outside the window, where it is zero), with
        weight kernel((n * new - m * orig) / (orig * new) * base_freq): the exact offset in integers, then
        the same float32 window and sinc as the table.
        """
        orig, new, width = self._orig, self._new, self._width
        end_in = self._buffer_start + len(self._buffer)           # input index after the last buffered one
        if target_len is None:   # last m with c(m) + width < end_in, i.e. m * orig < (end_in - width) * new
            stop = max(self._num_out, -(-(end_in - width) * new // orig))
        else:
            stop = target_len
        taps = np.arange(-width, width + 1, dtype=np.int64)                       # (K,)
        chunk = max(1, _DIRECT_CHUNK_ENTRIES // len(taps))
        scale = self._base_freq / (orig * new)
        pieces = []
        for first in range(self._num_out, stop, chunk):
            m = np.arange(first, min(first + chunk, stop), dtype=np.int64)           # (M,)
            n = (m * orig // new)[:, None] + taps                                     # (M, K) input indices
            t = ((n * new - m[:, None] * orig) * scale).astype(np.float32)            # (M, K)
            weights = _windowed_sinc(t, self._base_freq, orig)
            samples = self._buffer[n - self._buffer_start]                            # (M, K)
            pieces.append(np.einsum("mk,mk->m", samples, weights))
        out = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        self._num_out = stop
        keep_from = stop * orig // new - width                   # first input the next output needs
        drop = min(max(0, keep_from - self._buffer_start), len(self._buffer))
        self._buffer, self._buffer_start = self._buffer[drop:].copy(), self._buffer_start + drop
        return out.astype(np.float32, copy=False)


class _DecodeFailed(AudioError):
    """Decoding stopped at `position` frames (the audio before it was delivered)."""

    def __init__(self, message: str, position: int, reason: str):
        super().__init__(message)
        self.position, self.reason = position, reason


def _open_at(path: str, frame: int, reason: BaseException | None = None) -> sf.SoundFile:
    """Open for sequential reading at `frame`.

    SoundFile.read seeks to its own position after every read; at the end of a FLAC stream whose
    length is unknown that seek fails ('Internal psf_fseek() failed', libsndfile issues 806/835) and
    the frames just decoded are lost. A sequential reader needs no seek, so the handle is marked
    unseekable for soundfile's bookkeeping (libsndfile keeps its own position).
    """
    try:
        f = sf.SoundFile(_os_path(path))
        if frame:
            f.seek(frame)
        f._info.seekable = 0  # noqa: SLF001 - see the docstring
        return f
    except Exception as exc:
        raise AudioError(f"'{path}' could not be opened for decoding (libsndfile: "
                         f"{_libsndfile_text(reason or exc)}). Check that it still exists and is not "
                         "damaged; export, copy or download it again.") from exc


def _read_pieces(info: AudioInfo, read_frames: int, first_frame: int = 0, stop_frame: int | None = None,
                 dtype: str = "float32") -> Iterator[np.ndarray]:
    """Yield frames [first_frame, stop_frame) of the file (to its end when stop_frame is None) as `dtype`
    pieces (n, C), n <= read_frames.

    On a decode error libsndfile drops the whole failed read and keeps its error state, so the file is
    reopened at the last good frame and that stretch is read again in 10 ms steps: the decodable part
    is delivered, and the AudioError names the failure position to 10 ms.
    """
    path, rate_hz = info.path, info.sample_rate_hz
    step_frames = max(1, rate_hz // 100)
    position = first_frame  # frames delivered so far, counted from the start of the file
    retry_until = -1        # frames before this are being re-read in small steps after an error
    first_error: BaseException | None = None
    f = _open_at(path, first_frame)
    try:
        while stop_frame is None or position < stop_frame:
            retrying = position < retry_until
            wanted = step_frames if retrying else read_frames
            if stop_frame is not None:
                wanted = min(wanted, stop_frame - position)
            try:
                data = f.read(wanted, dtype=dtype, always_2d=True)
            except Exception as exc:
                if not retrying:
                    first_error, retry_until = exc, position + read_frames
                    f.close()
                    f = _open_at(path, position, reason=exc)
                    continue
                reason = _libsndfile_text(first_error or exc)
                of_total = f" of {info.duration_s:.2f} s" if info.duration_s is not None else ""
                raise _DecodeFailed(
                    f"Decoding '{path}' failed at {position / rate_hz:.2f} s{of_total} (libsndfile: {reason}). "
                    "The file is damaged or truncated; export, copy or download it again.",
                    position, reason) from exc
            if len(data) == 0:
                return
            position += len(data)
            yield data
    finally:
        f.close()


def check_span(start_s: float, end_s: float | None) -> None:
    """ValueError unless start_s (and end_s, where given) are finite seconds with end_s >= start_s."""
    for name, value in (("start_s", start_s), ("end_s", end_s)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                                  or not math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    if end_s is not None and end_s < start_s:
        raise ValueError(f"the region ends ({end_s} s) before it starts ({start_s} s)")


def region_frames(info: AudioInfo, start_s: float, end_s: float | None = None) -> tuple[int, int | None]:
    """The frames [first, stop) of the file's seconds [start_s, end_s], clipped to the file.

    end_s None: to the end of the file (stop None when the header gives no length). Seconds become frames
    by rounding at the file's own rate; start_s below 0 and end_s past the end are clipped, so a padded
    region around an event (start - 1 s, end + 1 s) needs no checks of its own. ValueError for times that
    are not finite numbers or an end before the start.
    """
    check_span(start_s, end_s)
    rate_hz, total = info.sample_rate_hz, info.num_samples
    first = max(0, round(start_s * rate_hz))
    stop = total if end_s is None else max(0, round(end_s * rate_hz))
    if total is not None:
        first, stop = min(first, total), min(stop, total)
    return first, stop


def iter_region(info: AudioInfo, first_frame: int = 0, stop_frame: int | None = None, block_frames: int = 8192,
                dtype: str = "float32") -> Iterator[np.ndarray]:
    """Decode frames [first_frame, stop_frame) of a probed file block by block, as they are in the file:
    `dtype` (n, C) arrays at its own rate with all its channels, n <= block_frames.

    Only the region is read (the decoder seeks to first_frame), so playing or cutting a stretch of a long
    file costs the stretch, not the file. No downmix, no resampling and no clean-up of NaN or out-of-range
    float samples: callers that need them do them (core.playback for the sound card; core.clips writes
    the samples unchanged). A decode failure inside the region raises AudioError after the blocks that
    decoded; a region that ends past a truncated file's end simply ends there.
    """
    if block_frames < 1:
        raise ValueError(f"block_frames must be >= 1, got {block_frames}")
    yield from _read_pieces(info, block_frames, first_frame, stop_frame, dtype)


def iter_blocks(path: str | os.PathLike, target_rate_hz: int = 16000,
                block_s: float = 4.0) -> Generator[np.ndarray, None, DecodeReport]:
    """Decode `path` block by block; yield float32 mono blocks (round(block_s * target_rate_hz),) at
    target_rate_hz, the last one shorter. Channels are averaged; NaN -> 0, +-inf -> +-1, and float
    samples beyond full scale are clipped to [-1, 1] (one warning each), so that the model never sees
    values its 16-bit training audio could not hold (+-3e38 overflowed the fbank into NaN scores).

    Only one block of the file is in memory at a time. Raises AudioError if the file cannot be opened
    or holds no decodable samples. A file that is truncated or damaged (decoding fails midway, it ends
    before its header says, or its header declares more data than the file holds) yields the audio that
    decodes, and the DecodeReport returned at the end says where and why (see docs/policies.md).
    A file whose header gives no length (a FLAC stream) is read to its end.
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
    num_clipped, max_peak = 0, 0.0
    decode_error: AudioError | None = None
    try:
        try:
            for data in _read_pieces(info, read_frames=max(1, round(block_s * info.sample_rate_hz))):
                num_read += len(data)
                finite = np.isfinite(data)
                if not finite.all():
                    num_nonfinite += data.size - int(np.count_nonzero(finite))
                    np.nan_to_num(data, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
                peak = float(np.max(np.abs(data))) if data.size else 0.0
                if peak > 1.0:          # float files only: PCM decodes to [-1, 1)
                    num_clipped += int(np.count_nonzero(np.abs(data) > 1.0))
                    max_peak = max(max_peak, peak)
                    np.clip(data, -1.0, 1.0, out=data)
                mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]  # (n,)
                out = resampler.process(mono)
                pending.append(out)
                num_pending += len(out)
                if num_pending >= block_len:
                    merged = np.concatenate(pending)
                    num_full = len(merged) // block_len * block_len
                    yield from np.split(merged[:num_full], num_full // block_len)
                    pending, num_pending = [merged[num_full:]], len(merged) - num_full
        except _DecodeFailed as exc:    # failed midway: deliver what was decoded, then report it
            if num_read == 0:
                raise
            decode_error = exc
        if num_read == 0:
            raise AudioError(f"'{info.path}' contains no audio samples that can be decoded. "
                             "Record or export the audio again.")
        rest = np.concatenate(pending + [resampler.flush()])
        yield from (rest[i:i + block_len] for i in range(0, len(rest), block_len))
        decoded_s = num_read / info.sample_rate_hz
        if decode_error is not None:
            of_total = f" of {info.duration_s:.2f} s" if info.duration_s is not None else ""
            warning = (f"decoding failed at {decoded_s:.2f} s{of_total} (libsndfile: {decode_error.reason}): "
                       "the file is truncated or damaged; only the audio before that point was decoded")
        elif info.header_damage:
            warning = (f"{info.header_damage}: the file is truncated; only the {decoded_s:.2f} s it holds "
                       "were decoded")
        elif info.num_samples is not None and num_read < info.num_samples:
            warning = (f"the file ended after {decoded_s:.2f} s although its header says "
                       f"{info.duration_s:.2f} s: it is truncated; only those {decoded_s:.2f} s were decoded")
        else:
            warning = ""
        return DecodeReport(num_samples=num_read, sample_rate_hz=info.sample_rate_hz,
                            truncated_at_s=decoded_s if warning else None, warning=warning,
                            nonfinite_samples=num_nonfinite, clipped_samples=num_clipped)
    finally:
        if num_nonfinite:
            logger.warning("'%s' contains %d non-finite samples (NaN or inf); replaced NaN by 0 and "
                           "+-inf by +-1", info.path, num_nonfinite)
        if num_clipped:
            logger.warning("'%s' has %d samples outside [-1, 1] (peak %.3g); clipped to [-1, 1] as a "
                           "conversion to 16-bit PCM would", info.path, num_clipped, max_peak)


def read_audio(path: str | os.PathLike, target_rate_hz: int = 16000) -> np.ndarray:
    """Decode the whole file to float32 mono (N,) at target_rate_hz (for short clips and tests).

    Raises AudioError like iter_blocks; a truncated or damaged file gives no partial result here.
    """
    blocks = iter_blocks(path, target_rate_hz)
    decoded = []
    while True:
        try:
            decoded.append(next(blocks))
        except StopIteration as end:
            report: DecodeReport = end.value
            break
    if report.warning:
        raise AudioError(f"'{os.fspath(path)}': {report.warning}. Export, copy or download it again.")
    return np.concatenate(decoded)
