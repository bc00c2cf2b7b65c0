"""`python main.py listen`: events as they close, exports on the way out, real PortAudio capture through the
virtual microphone (live == file), Ctrl-C, a device that vanishes, no device at all."""
import csv
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import core.capture as capture
from core.analyze import Analyzer
from core.capture import CaptureError, InputDevice
from core.cli import main
from core.config import EventConfig
from core.events import detect_events
from core.labels import LabelSet
from core.listen import LiveTimeline
from core.modelfile import load_model
from core.scorer import Scorer
from core.tagger import TagFrame
from tests.conftest import VMIC, vmic
from tests.core.test_tagger import make_energy_model

ROOT = Path(__file__).resolve().parents[2]
HOP = 0.25


@pytest.fixture(scope="module")
def energy_model(tmp_path_factory) -> Path:
    return make_energy_model(tmp_path_factory.mktemp("model") / "energy.safetensors")


@pytest.fixture(scope="module")
def scene(tmp_path_factory, esc50_clip) -> Path:
    """8 s at 16 kHz: the clip's bark at 1.0 s, white noise 3.0-4.5 s, the bark again at 6.0 s; silence between."""
    clip, rate = sf.read(esc50_clip, dtype="float32")
    bark = clip[round(2.2 * rate):round(2.7 * rate)]
    x = np.zeros(8 * 16000, dtype=np.float32)
    x[16000:16000 + len(bark)] = bark
    x[48000:72000] = np.random.default_rng(0).uniform(-0.05, 0.05, 24000)
    x[96000:96000 + len(bark)] = bark
    path = tmp_path_factory.mktemp("scene") / "scene.wav"
    sf.write(path, x, 16000, subtype="PCM_16")
    return path


def read_tags(path: Path) -> list[tuple[float, float, str, float]]:
    with open(path, newline="") as f:
        return [(float(r["Start (s)"]), float(r["End (s)"]), r["Scientific name"], float(r["Confidence"]))
                for r in csv.DictReader(f)]


def params(path: Path) -> dict[str, str]:
    with open(path, newline="") as f:
        return {r["name"]: r["value"] for r in csv.DictReader(f)}


def lag_samples(recording: np.ndarray, original: np.ndarray) -> int:
    """Where `original` starts inside `recording` (cross-correlation by FFT)."""
    n = len(recording) + len(original)
    corr = np.fft.irfft(np.fft.rfft(recording, n) * np.conj(np.fft.rfft(original, n)), n)
    return int(np.argmax(corr[:len(recording)]))


def spans(events, labels: LabelSet, shift_s: float, end_s: float) -> list[tuple[str, float, float]]:
    """(label id, start, end) moved by shift_s and clipped to [0, end_s]; what falls outside is dropped."""
    out = []
    for e in events:
        a, b = max(0.0, e.start_s - shift_s), min(end_s, e.end_s - shift_s)
        if b > a:
            out.append((labels[e.label_index].id, a, b))
    return sorted(out)


# ---- LiveTimeline: events printed as they close are the final events ---------------------------------

@pytest.mark.parametrize("median,gap,min_dur", [(1, 0.0, 0.0), (3, 1.0, 0.0), (5, 0.5, 1.0), (3, 1.5, 0.5)])
def test_events_closed_live_are_final_and_come_in_time(median, gap, min_dur):
    rng = np.random.default_rng(median * 100 + int(gap * 10))
    labels = LabelSet.from_names([f"l{i}" for i in range(6)])
    config = EventConfig(median_s=median * HOP, merge_gap_s=gap, min_duration_s=min_dur,
                         label_thresholds=(("l5", 0.8),))
    W, window_s = 600, 2.0
    on = rng.random((W, len(labels))) < 0.1                      # blocky scores: runs of on and off
    scores = np.clip(np.where(np.maximum.accumulate(on, axis=0) & (rng.random((W, 6)) < 0.7), 0.9, 0.1)
                     + rng.normal(0, 0.15, (W, 6)), 0, 1).astype(np.float32)
    skipped = set(rng.choice(W, 20, replace=False).tolist()) - {W - 1}
    live = LiveTimeline(labels, window_s, HOP, config, "m", "live:test")
    closed, when = [], {}
    for k in range(W):
        if k in skipped:
            continue
        last = k == W - 1
        frame = TagFrame(k, 4000 * k, 4000 * k + 32000, k * HOP, k * HOP + (1.0 if last else window_s), scores[k], last)
        for e in live.add(frame):
            closed.append(e)
            when[e] = k
    duration_samples = 4000 * (W - 1) + 16000
    timeline = live.timeline(duration_samples)
    assert np.isnan(timeline.scores[sorted(skipped)]).all() and timeline.kind == "mic"
    final, unreported = live.finish(timeline)
    assert final == detect_events(timeline, config)              # the rule of file analysis, unchanged
    assert set(closed) <= set(final) and len(closed) == len(set(closed))
    assert set(unreported) == set(final) - set(closed)
    h = median // 2
    for e in final:   # every event is printed at most (h + 2 + gap/hop + window/hop) windows after its end
        limit = e.end_s + max(gap, HOP) + (h + 2) * HOP + window_s / 2
        if limit < timeline.duration_s - window_s:
            assert e in when and when[e] * HOP <= limit + 1e-6, (e, when.get(e))
    assert len(closed) >= len(final) // 2 > 5


# ---- the command without a device ---------------------------------------------------------------------

def test_listen_checks_its_arguments_before_listening(monkeypatch, tmp_path, capsys, energy_model):
    monkeypatch.setattr(capture, "find_input_device", lambda spec=None: InputDevice(0, "mic", "ALSA", 1, 16000, True))
    monkeypatch.setattr("core.modelfile.MODELS_DIR", tmp_path / "no-models")  # a checkout without assets/models
    assert main(["listen", "--out", str(tmp_path)]) == 2
    assert "no default model is shipped yet" in capsys.readouterr().err
    assert main(["listen", "--model", str(energy_model), "--hop", "0.1"]) == 2
    assert "live hop must be between 0.25 and 5 s" in capsys.readouterr().err
    (tmp_path / "s.tags.csv").write_text("mine\n")
    assert main(["listen", "--model", str(energy_model), "--out", str(tmp_path), "--name", "s"]) == 2
    assert "s.tags.csv already exists; pass --force" in capsys.readouterr().err


# ---- real capture through the virtual microphone -------------------------------------------------------

def play_once_recording(wav: Path, scene: Path, after_s: float = 1.12, timeout_s: float = 60.0) -> None:
    """Play `scene` into the virtual microphone `after_s` (about half a hop off the grid) after `listen` has
    started recording to `wav` (its first 0.1 s of float32 audio is on disk), whatever its start-up took."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not (wav.exists() and wav.stat().st_size > 44 + 4 * 1600):
        time.sleep(0.01)
    time.sleep(after_s - 0.1)
    vmic("play", str(scene))


@pytest.mark.parametrize("rate", [None, 48000], ids=["16k", "48k-resampled"])
def test_live_equals_file_through_the_virtual_microphone(virtual_mic, energy_model, scene, tmp_path, rate, capsys):
    out = tmp_path / "out"
    player = threading.Thread(target=play_once_recording, args=(out / "live.wav", scene), daemon=True)
    player.start()
    # a merge gap far from the event gaps of the scene: hop-sized shifts cannot flip a merge decision; and
    # the median the scene was designed with (3 windows at this hop; the 3 s default spans 13 windows, which
    # bridges the scene's 0.75 s dips or not depending on the sub-hop alignment of the playback)
    rule = EventConfig(merge_gap_s=0.3, median_s=0.75)
    code = main(["listen", "--model", str(energy_model), "--duration", "10.5", "--hop", str(HOP), "--record",
                 "--merge-gap", "0.3", "--median", "0.75", "--out", str(out), "--name", "live",
                 "--formats", "tags,scores,params,dcase"]
                + (["--rate", str(rate)] if rate else []))
    player.join()
    printed = capsys.readouterr()
    assert code == 0, printed.err
    loaded = load_model(energy_model)
    scorer, labels = Scorer(loaded, "cpu"), loaded.labels
    live_tags = read_tags(out / "live.tags.csv")
    p = params(out / "live.params.csv")
    assert p["source"] == "mic" and p["duration_s"] == "10.500" and p["capture_rate_hz"] == str(rate or 16000)
    assert p["clock_start"].endswith(("+00:00", "Z")) or "+" in p["clock_start"] or "-" in p["clock_start"][19:]
    with open(out / "live.tags.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["File"] for r in rows} == {str(out / "live.wav")} and {r["source"] for r in rows} == {"mic"}
    # 1. the recording analysed as a file gives exactly the live events and scores
    recorded = Analyzer(scorer, hop_s=HOP).analyze(str(out / "live.wav"))
    assert recorded.duration_s == 10.5
    file_events = detect_events(recorded, rule)
    assert live_tags == [(e.start_s, e.end_s, labels[e.label_index].id, round(e.peak_score, 4)) for e in file_events]
    with open(out / "live.scores.csv", newline="") as f:
        live_scores = np.array([[float(v) for v in r[2:]] for r in list(csv.reader(f))[1:]])
    np.testing.assert_allclose(live_scores, recorded.scores, atol=1e-4)
    # every event was printed, most of them while listening
    assert sum(labels[e.label_index].name in printed.out for e in file_events) == len(file_events)
    # 2. the original file gives the same events, moved by the playback lag, within one hop
    audio, _ = sf.read(out / "live.wav", dtype="float32")
    original, _ = sf.read(scene, dtype="float32")
    lag_s = lag_samples(audio, original) / 16000
    assert 0.5 < lag_s < 2.5, lag_s
    reference = Analyzer(scorer, hop_s=HOP).analyze(str(scene))
    want = spans(detect_events(reference, rule), labels, 0.0, reference.duration_s)
    got = spans(file_events, labels, lag_s, reference.duration_s)
    assert [w[0] for w in want] == [g[0] for g in got], (want, got)
    assert [w[0] for w in want].count("/t/sound") == 3
    for (label, a, b), (_, c, d) in zip(want, got):
        assert abs(a - c) <= HOP + 1e-6 and abs(b - d) <= HOP + 1e-6, (label, (a, b), (c, d))


def start_listen(args: list[str]) -> tuple[subprocess.Popen, list[str]]:
    """`python main.py listen ...` in its own process; returns once it says it is listening."""
    proc = subprocess.Popen([sys.executable, "main.py", "listen", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while not any("listening on" in line for line in lines):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"listen did not start: {''.join(lines)}")
        time.sleep(0.05)
    return proc, lines


def test_ctrl_c_stops_cleanly_and_writes_the_exports(virtual_mic, energy_model, tmp_path):
    proc, lines = start_listen(["--model", str(energy_model), "--hop", "0.5", "--out", str(tmp_path),
                                "--name", "ctrlc", "--formats", "tags,scores,params,audacity"])
    time.sleep(2.5)
    proc.send_signal(signal.SIGINT)
    out, rest = proc.communicate(timeout=60)  # the reader thread and communicate() share stderr
    time.sleep(0.1)
    err = "".join(lines) + (rest or "")
    assert proc.returncode == 0, err
    assert "stopping: scoring the last windows" in err and "Traceback" not in err
    p = params(tmp_path / "ctrlc.params.csv")
    assert 2.0 < float(p["duration_s"]) < 6.0 and p["file"] == "live:default"
    assert read_tags(tmp_path / "ctrlc.tags.csv")[0][2] == "/t/silence"     # nothing was played
    assert "Silence" in out and (tmp_path / "ctrlc.labels.txt").exists()


def test_device_vanishing_mid_stream_stops_cleanly_with_exports(virtual_mic, energy_model, tmp_path):
    try:
        proc, lines = start_listen(["--model", str(energy_model), "--hop", "0.5", "--record",
                                    "--out", str(tmp_path), "--name", "gone"])
        time.sleep(2.5)
        assert vmic("stop").returncode == 0
        out, rest = proc.communicate(timeout=60)  # the reader thread and communicate() share stderr
        time.sleep(0.1)
        err = "".join(lines) + (rest or "")
        assert proc.returncode == 1, err
        assert "stopped delivering audio after" in err and "what was heard before is exported" in err
        assert "Traceback" not in err
        p = params(tmp_path / "gone.params.csv")
        heard = float(p["duration_s"])
        assert heard >= 1.5 and sf.info(tmp_path / "gone.wav").duration == pytest.approx(heard, abs=1e-3)
        with open(tmp_path / "gone.scores.csv", newline="") as f:
            assert len(list(csv.reader(f))) > 2
        # and with the sound server gone, a new session finds no input at all
        again = subprocess.run([sys.executable, "main.py", "listen", "--model", str(energy_model),
                                "--duration", "2", "--out", str(tmp_path / "again")], cwd=ROOT,
                               capture_output=True, text=True, timeout=60)   # never exports into the checkout
        assert again.returncode == 2 and again.stderr.startswith("error: no audio input device found")
    finally:
        vmic("start")


def restart_virtual_mic(killed_pid: int) -> None:
    """Start the virtual microphone again once the killed daemon is reaped (PulseAudio refuses to start
    while its pid file names a process that still exists, even a zombie); others use it too."""
    deadline = time.monotonic() + 20
    while Path(f"/proc/{killed_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    while vmic("start").returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.5)


def test_a_sound_server_killed_mid_stream_is_reported_and_a_fresh_capture_works(virtual_mic, esc50_clip):
    """Issue 12 defect 3 with the real PortAudio: the server dies under the stream; the loss is reported,
    stop() returns promptly, and after the server is back the old device entry opens on the new server."""
    capture.refresh_devices()
    device = capture.find_input_device()
    pid = int((Path(os.environ.get("VMIC_DIR", "/tmp/vmic")) / "pulse" / "pid").read_text())
    cap = capture.Capture(device)
    try:
        cap.start()
        assert cap.ring.wait_for(cap.rate_hz, timeout_s=10), "no audio from the virtual microphone"
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        while cap.check() is None and time.monotonic() - t0 < 10:
            time.sleep(0.02)
        assert "stopped delivering audio" in (cap.check() or ""), "the loss was not reported within 10 s"
        t1 = time.monotonic()
        cap.stop()
        assert time.monotonic() - t1 < 1.5
        with pytest.raises(capture.NoInputDeviceError, match="'default' is gone and PortAudio lists no other"):
            capture.Capture(device)          # not "does not accept 44100 Hz": the server is down
    finally:
        cap.stop()
        restart_virtual_mic(pid)
    fresh = capture.Capture(device)          # re-initialises PortAudio, finds "default" again by name
    fresh.start()
    try:
        player = threading.Thread(target=vmic, args=("play", str(esc50_clip)))
        player.start()
        player.join(30)
        end = fresh.ring.write_index
        assert fresh.check() is None and end > 4 * fresh.rate_hz
        heard = fresh.ring.read(end - 4 * fresh.rate_hz, end)
        assert float(np.max(np.abs(heard))) > 0.05           # the dog barks through the new server
    finally:
        fresh.stop()


# ---- core.session: one session for `listen` and the window; the bars' "open" comes from the rule --------

def test_open_labels_are_the_event_rule_at_the_newest_window():
    from core.events import open_at_end
    rng = np.random.default_rng(7)
    labels = LabelSet.from_names([f"l{i}" for i in range(4)])
    config = EventConfig(median_s=3 * HOP, merge_gap_s=0.5, label_thresholds=(("l3", 0.8),))
    on = rng.random((400, 4)) < 0.05
    scores = np.clip(np.where(np.maximum.accumulate(on, axis=0) & (rng.random((400, 4)) < 0.5), 0.9, 0.1)
                     + rng.normal(0, 0.15, (400, 4)), 0, 1).astype(np.float32)
    live = LiveTimeline(labels, 2.0, HOP, config, "m", "live:test")
    differs = 0
    raw_open = np.zeros(4, dtype=bool)
    for k in range(400):
        live.add(TagFrame(k, 4000 * k, 4000 * k + 32000, k * HOP, k * HOP + 2.0, scores[k]))
        got = live.open_labels()
        for label, (on_, off_) in enumerate([(0.3, 0.2)] * 3 + [(0.8, 0.8 * 2 / 3)]):
            assert got[label] == open_at_end(scores[:k + 1, label], on_, off_, config.median_s, HOP), (k, label)
            raw_open[label] = scores[k, label] >= (off_ if raw_open[label] else on_)   # the old bars' rule
        differs += int((got != raw_open).any())
    assert differs > 0      # the old raw-score rule disagreed with the engine on these windows


def test_a_live_session_drives_a_source_into_events_and_provenance(energy_model, scene, tmp_path):
    from core.capture import FilePlayback
    from core.session import LiveFrames, LiveSession, Recorder
    from core.tagger import TaggerEnd
    loaded = load_model(energy_model)
    source = FilePlayback(scene, speed=8.0)
    recorder = Recorder(tmp_path / "heard.wav")
    session = LiveSession(loaded, "cpu", source, HOP, EventConfig(merge_gap_s=0.3), recorder, display=True)
    assert session.live.source == str(tmp_path / "heard.wav")
    session.start()
    closed, frames, opened = [], 0, set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        item = session.results.get(timeout=10)
        if isinstance(item, LiveFrames):
            frames += len(item.frames)
        elif isinstance(item, TaggerEnd):
            break
        elif isinstance(item, TagFrame):
            closed += session.add(item)
            opened.update(loaded.labels[i].id for i in np.flatnonzero(session.open_labels()))
    result = session.finish(item)
    assert result.error is None and frames > 700
    timeline = result.timeline
    assert timeline.duration_s == 8.0 and timeline.kind == "mic" and timeline.clock_start is not None
    assert {"input_device", "capture_rate_hz", "input_overflows", "windows_skipped", "windows_lost"} <= set(timeline.extra)
    assert timeline.extra["input_device"] == "playback of scene.wav"
    assert timeline.extra["inference"] == "torch fp32, 1 thread"        # a bare device: the model exactly
    assert result.events == detect_events(timeline, EventConfig(merge_gap_s=0.3))
    assert set(closed) | set(result.unreported) == set(result.events) and len(closed) > 0
    assert "/t/sound" in opened
    assert sf.info(tmp_path / "heard.wav").duration == 8.0            # the recorder got every sample, and is closed


def test_a_recording_that_fails_is_said_once_and_the_session_goes_on(energy_model, scene, tmp_path, monkeypatch,
                                                                     capsys):
    """A full disk 2 s into `listen --record`: one error line, and every window of the stream is still tagged."""
    import argparse

    from core.capture import FilePlayback
    from core.listen import _drive
    from core.session import LiveSession, Recorder
    real_write = sf.SoundFile.write
    written = [0]

    def write(self, data):
        if written[0] >= 2 * 16000:
            raise sf.LibsndfileError(2, "Error writing: ")      # what libsndfile raises on a full disk
        written[0] += len(data)
        return real_write(self, data)
    monkeypatch.setattr(sf.SoundFile, "write", write)
    recorder = Recorder(tmp_path / "heard.wav")
    session = LiveSession(load_model(energy_model), "cpu", FilePlayback(scene, speed=8.0), HOP, recorder=recorder)
    session.start()
    result = session.finish(_drive(argparse.Namespace(duration=None), session))
    err = capsys.readouterr().err.splitlines()
    failures = [line for line in err if "heard.wav stopped after" in line]
    assert len(failures) == 1 and failures[0].startswith("error: recording to ")
    assert result.error is None and result.timeline.duration_s == 8.0       # tagging went on to the end
    assert recorder.error is not None and 2 * 16000 <= recorder.num_samples < 8 * 16000
