"""The live recording (core.session.Recorder): FLAC at 24 bits, names that never replace a file, and a disk
that fills up mid-recording (a real write failure: the file size limit of a child process)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.session import Recorder, new_recording

ROOT = Path(__file__).resolve().parents[2]


def test_a_flac_recording_is_24_bit_16_khz_mono_and_holds_every_sample(tmp_path):
    x = np.random.default_rng(0).uniform(-0.9, 0.9, 16000 * 3).astype(np.float32)
    x[100] = 1.7                                            # a sample over full scale is clipped, not wrapped
    recorder = Recorder(tmp_path / "a.flac")
    for chunk in np.array_split(x, 37):
        recorder.write(chunk)
    recorder.close()
    info = sf.info(tmp_path / "a.flac")
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_24", 16000, 1)
    assert info.frames == len(x) == recorder.num_samples
    y, _ = sf.read(tmp_path / "a.flac", dtype="float32")
    np.testing.assert_allclose(y, np.clip(x, -1, 1), atol=2 ** -22)
    assert recorder.error is None


def test_a_wav_recording_stays_float(tmp_path):
    recorder = Recorder(tmp_path / "a.wav")
    recorder.write(np.full(160, 0.25, np.float32))
    recorder.close()
    assert sf.info(tmp_path / "a.wav").subtype == "FLOAT"


def test_recordings_begun_in_the_same_second_never_replace_a_file(tmp_path):
    when = datetime(2026, 12, 1, 7, 31, 5)
    mine = tmp_path / "ast-tagger-20261201-073105.flac"
    mine.write_bytes(b"someone's recording")
    first, second = new_recording(tmp_path, when), new_recording(tmp_path, when)
    first.close()
    second.close()
    assert first.path.name == "ast-tagger-20261201-073105-2.flac"
    assert second.path.name == "ast-tagger-20261201-073105-3.flac"
    assert mine.read_bytes() == b"someone's recording"
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OSError):                            # a folder that cannot exist: the caller says so
        new_recording(blocker / "sub", when)


def test_a_full_disk_ends_the_recording_once_and_keeps_what_was_written(tmp_path):
    """The child process may write at most 64 kB per file (RLIMIT_FSIZE): the write fails as on a full disk."""
    script = textwrap.dedent(f"""
        import resource, signal, sys
        import numpy as np
        sys.path.insert(0, {str(ROOT)!r})
        from core.session import Recorder, RecordingError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # the write fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, resource.RLIM_INFINITY))
        recorder = Recorder({str(tmp_path / "full.flac")!r})
        noise = np.random.default_rng(0).normal(0, 0.1, 1600).astype(np.float32)
        errors = []
        for _ in range(100):                               # 10 s of noise: far more than 64 kB of FLAC
            try:
                recorder.write(noise)
            except RecordingError as e:
                errors.append(str(e))
        recorder.close()
        print(len(errors), recorder.num_samples)
        print(errors[0] if errors else "")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    count, samples = map(int, done.stdout.splitlines()[0].split())
    message = done.stdout.splitlines()[1]
    assert count == 1                                       # said once; later writes do nothing
    assert 0 < samples < 100 * 1600
    assert "full.flac" in message and "stopped after" in message and "listening goes on" in message
    assert (tmp_path / "full.flac").stat().st_size > 0

