"""Clips of events: the recording's own samples (rate, channels, bit depth), padded and clipped to the file,
safe unique names, one request all or nothing; `python main.py clips` analyses and cuts."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.audio_io import StreamingResampler
from core.cli import main
from core.clips import clip_names, export_clips
from core.errors import AudioError, ConfigError, ExportExistsError
from core.labels import LabelSet
from core.review import Mark
from core.timeline import Event
from tests.core.test_tagger import make_energy_model

DATA = Path(__file__).resolve().parents[1] / "data"
LABELS = LabelSet.from_names(["Dog", "Baby cry, infant cry", "=cmd|x/y"], ids=["/m/0bt9lr", "/t/dd00002", "x"])


def event(label: int, start: float, end: float) -> Event:
    return Event(label, start, end, 0.9, 0.8, (start + end) / 2)


def source_region(path: Path, start_s: float, end_s: float, dtype: str = "int32") -> np.ndarray:
    """The samples of [start_s, end_s] of `path`, clipped to it, as soundfile reads them."""
    info = sf.info(path)
    first = max(0, round(start_s * info.samplerate))
    stop = min(info.frames, round(end_s * info.samplerate))
    return sf.read(path, start=first, stop=stop, dtype=dtype, always_2d=True)[0]


@pytest.fixture(scope="module")
def stereo_44k(tmp_path_factory) -> Path:
    """A 44.1 kHz stereo 24-bit FLAC made from a real clip: the bark upsampled, the right channel inverted
    and quieter, so that a swapped or mixed channel shows."""
    mono, _ = sf.read(DATA / "1-100032-A-0.flac", dtype="float32")
    r = StreamingResampler(16000, 44100)
    up = np.concatenate([r.process(mono), r.flush()])
    path = tmp_path_factory.mktemp("stereo") / "bark 44k stereo.flac"
    sf.write(path, np.stack([up, -0.5 * up], axis=1).clip(-1, 1), 44100, subtype="PCM_24")
    return path


def test_clips_of_a_16k_clip_are_its_samples_padded_and_clipped_to_the_file(tmp_path):
    audio = DATA / "1-100032-A-0.flac"                                          # 5 s, 16 kHz mono PCM_16
    events = [event(0, 0.4, 1.25), event(1, 2.0, 3.0), event(0, 4.5, 5.0)]
    paths = export_clips(audio, events, LABELS, tmp_path / "clips")
    assert [p.name for p in paths] == ["1-100032-A-0_Dog_0.400s.flac", "1-100032-A-0_Baby_cry_infant_cry_2.000s.flac",
                                       "1-100032-A-0_Dog_4.500s.flac"]
    for path, (start, end) in zip(paths, [(0.0, 2.25), (1.0, 4.0), (3.5, 5.0)]):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        clip = sf.read(path, dtype="int32", always_2d=True)[0]
        np.testing.assert_array_equal(clip, source_region(audio, start, end))
    assert sorted(p.name for p in (tmp_path / "clips").iterdir()) == sorted(p.name for p in paths)  # no temp/lock


def test_a_44k_stereo_file_gives_44k_stereo_clips_bit_exact(tmp_path, stereo_44k):
    events = [event(0, 1.0, 2.0), event(1, 3.9, 4.6)]
    flac = export_clips(stereo_44k, events, LABELS, tmp_path / "flac", pre_s=0.5, post_s=0.25)
    wav = export_clips(stereo_44k, events, LABELS, tmp_path / "wav", pre_s=0.5, post_s=0.25, audio_format="wav")
    assert [p.name for p in wav] == ["bark_44k_stereo_Dog_1.000s.wav", "bark_44k_stereo_Baby_cry_infant_cry_3.900s.wav"]
    for path, (start, end) in zip(flac + wav, [(0.5, 2.25), (3.4, 4.85)] * 2):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (44100, 2, "PCM_24")
        expected = source_region(stereo_44k, start, end)
        assert len(expected) == round(end * 44100) - round(start * 44100)
        np.testing.assert_array_equal(sf.read(path, dtype="int32", always_2d=True)[0], expected)


def test_float_sources_stay_exact_in_wav_and_become_24_bit_flac(tmp_path):
    x = np.random.default_rng(0).uniform(-1.5, 1.5, (48000, 2)).astype(np.float32)   # beyond full scale too
    audio = tmp_path / "float.wav"
    sf.write(audio, x, 48000, subtype="FLOAT")
    [wav] = export_clips(audio, [event(0, 0.2, 0.3)], LABELS, tmp_path / "w", pre_s=0, post_s=0, audio_format="wav")
    np.testing.assert_array_equal(sf.read(wav, dtype="float32")[0], x[9600:14400])
    [flac] = export_clips(audio, [event(0, 0.2, 0.3)], LABELS, tmp_path / "f", pre_s=0, post_s=0)
    assert sf.info(flac).subtype == "PCM_24"
    np.testing.assert_allclose(sf.read(flac, dtype="float32")[0], x[9600:14400].clip(-1, 1), atol=2 ** -22)


def test_names_are_safe_and_unique():
    names = clip_names("../my rec:1", [("=cmd|x/y", 1.0), ("Dog", 2.5), ("Dog", 2.5), ("dog", 2.5), ("Ünïcode 鳥", 0.0)],
                       ".flac")
    assert names == ["my_rec_1_cmd_x_y_1.000s.flac", "my_rec_1_Dog_2.500s.flac", "my_rec_1_Dog_2.500s_2.flac",
                     "my_rec_1_dog_2.500s_3.flac", "my_rec_1_Ünïcode_鳥_0.000s.flac"]
    assert clip_names("...", [("///", 1.0)], ".wav") == ["clip_clip_1.000s.wav"]
    assert len(clip_names("x" * 300, [("y" * 300, 1.0)], ".flac")[0].encode()) < 200


def test_a_relabelled_event_is_named_by_its_new_label(tmp_path):
    bark = event(0, 1.0, 2.0)
    marks = {bark: Mark.of(bark, LABELS, "relabel", relabel_to="Baby cry, infant cry")}
    [path] = export_clips(DATA / "1-100032-A-0.flac", [bark], LABELS, tmp_path, reviews=marks)
    assert path.name == "1-100032-A-0_Baby_cry_infant_cry_1.000s.flac"


def test_existing_clips_are_not_replaced_and_nothing_of_the_request_is_written(tmp_path):
    audio, events = DATA / "1-100032-A-0.flac", [event(0, 1.0, 2.0), event(1, 2.0, 3.0)]
    (tmp_path / "1-100032-A-0_Baby_cry_infant_cry_2.000s.flac").write_bytes(b"keep me")
    with pytest.raises(ExportExistsError, match="already exists; nothing was written"):
        export_clips(audio, events, LABELS, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1-100032-A-0_Baby_cry_infant_cry_2.000s.flac"]
    paths = export_clips(audio, events, LABELS, tmp_path, overwrite=True)
    assert len(sf.read(paths[1])[0]) == 3 * 16000                                 # replaced: [1 s, 4 s]


def test_a_region_that_does_not_decode_fails_the_whole_request(tmp_path):
    audio = tmp_path / "cut.flac"
    data = (DATA / "1-44831-A-1.flac").read_bytes()
    audio.write_bytes(data[:len(data) // 2])                                      # cut mid-stream
    with pytest.raises(AudioError, match="Decoding .* failed"):
        export_clips(audio, [event(0, 0.2, 0.5), event(0, 4.0, 4.5)], LABELS, tmp_path / "out")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_bad_requests_are_refused(tmp_path):
    audio = DATA / "1-100032-A-0.flac"
    with pytest.raises(ConfigError, match="clip format must be one of flac, wav, got 'mp3'"):
        export_clips(audio, [event(0, 1, 2)], LABELS, tmp_path, audio_format="mp3")
    with pytest.raises(ConfigError, match="pre_s must be a number of seconds >= 0"):
        export_clips(audio, [event(0, 1, 2)], LABELS, tmp_path, pre_s=-1)
    with pytest.raises(AudioError, match="not found"):
        export_clips(tmp_path / "missing.wav", [event(0, 1, 2)], LABELS, tmp_path)
    assert export_clips(audio, [], LABELS, tmp_path / "none") == [] and not (tmp_path / "none").exists()


def test_the_clips_command_analyses_and_cuts(tmp_path, capsys):
    model = make_energy_model(tmp_path / "energy.safetensors")
    scene = np.zeros(8 * 16000, dtype=np.float32)                               # a bark at 3-5 s, else silence
    bark, _ = sf.read(DATA / "1-100032-A-0.flac", dtype="float32")
    scene[3 * 16000:5 * 16000] = bark[2 * 16000:4 * 16000]
    audio = tmp_path / "in" / "scene.wav"
    audio.parent.mkdir()
    sf.write(audio, scene, 16000, subtype="PCM_16")
    out = tmp_path / "clips"
    args = ["clips", str(audio), "--out", str(out), "--model", str(model), "--hop", "0.5", "--labels", "Sound"]
    assert main(args) == 0
    assert "scene.wav: 1 clips ->" in capsys.readouterr().err
    [clip] = list(out.iterdir())
    assert clip.name.startswith("scene_Sound_") and clip.suffix == ".flac"
    start = float(clip.name.removeprefix("scene_Sound_").removesuffix("s.flac"))
    assert 1.0 < start < 4.0                                                      # the bark, not the silence
    samples = sf.read(clip, dtype="int32", always_2d=True)[0]
    first = round((start - 1.0) * 16000)                                          # 1 s of pre-roll
    np.testing.assert_array_equal(samples, sf.read(audio, dtype="int32", always_2d=True)[0][first:first + len(samples)])
    assert len(samples) >= 3 * 16000 and np.abs(samples).max() > 0.1 * 2 ** 31
    assert main(args) == 1                                                        # exists: refused, kept
    assert "already exists" in capsys.readouterr().err
    assert main([*args[:-1], "Dgo"]) == 2
    assert "--labels names 'Dgo', which is not a label of this model" in capsys.readouterr().err
