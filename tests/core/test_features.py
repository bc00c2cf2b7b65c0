"""Features equal torchaudio's Kaldi fbank with AST's arguments; streaming equals offline."""
import numpy as np
import pytest
import soundfile as sf
import torch
from torchaudio.compliance import kaldi

from core.config import FeatureConfig
from core.features import Fbank, FbankStreamer, fbank, model_input, normalize, num_frames_for, pad_or_cut


def kaldi_ast(wave: torch.Tensor) -> torch.Tensor:
    return kaldi.fbank(wave[None], htk_compat=True, sample_frequency=16000, use_energy=False,
                       window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10)


@pytest.mark.parametrize("num_samples", [400, 401, 559, 560, 16000, 48321])
def test_fbank_equals_kaldi_on_noise(num_samples):
    wave = torch.rand(num_samples, generator=torch.Generator().manual_seed(num_samples)) * 2 - 1
    ours = fbank(wave)
    assert ours.shape == (num_frames_for(num_samples), 128)
    torch.testing.assert_close(ours, kaldi_ast(wave), atol=1e-4, rtol=0)


def test_fbank_equals_kaldi_on_real_clip(esc50_clip):
    wave = torch.from_numpy(sf.read(esc50_clip, dtype="float32")[0])
    ref = kaldi_ast(wave)
    assert ref.shape == (498, 128)
    torch.testing.assert_close(fbank(wave), ref, atol=1e-4, rtol=0)


def test_batched_equals_one_by_one():
    waves = torch.randn(4, 8000, generator=torch.Generator().manual_seed(1)) * 0.3
    batched = Fbank()(waves)
    assert batched.shape == (4, 48, 128)
    for i in range(4):
        torch.testing.assert_close(batched[i], kaldi_ast(waves[i]), atol=1e-4, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_fbank_on_cuda_equals_cpu():
    wave = torch.randn(2, 32000, generator=torch.Generator().manual_seed(2)) * 0.3
    # cuFFT vs the CPU FFT in float32: measured on an H200, 14 of 50688 log-mel values differ by more than
    # 1e-4 (at most 6.9e-4, on values near 14), all within 5.0e-5 relative
    torch.testing.assert_close(fbank(wave.cuda()).cpu(), fbank(wave), atol=1e-4, rtol=1e-4)


def test_shorter_than_one_frame_gives_no_frames():
    assert fbank(torch.zeros(399)).shape == (0, 128)
    assert num_frames_for(0) == 0 and num_frames_for(400) == 1 and num_frames_for(560) == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_equals_offline_for_random_chunks(esc50_clip, seed):
    wave = sf.read(esc50_clip, dtype="float32")[0]
    rng = np.random.default_rng(seed)
    streamer, pieces, i = FbankStreamer(), [], 0
    while i < len(wave):
        n = int(rng.choice([0, 1, 7, 159, 160, 161, 399, 400, 1234, 5000]))
        pieces.append(streamer.push(wave[i:i + n]))
        i += n
    streamed = torch.cat(pieces)
    assert streamer.num_frames == streamed.shape[0] == num_frames_for(len(wave))
    torch.testing.assert_close(streamed, fbank(torch.from_numpy(wave)), atol=1e-5, rtol=0)


def test_pad_cut_and_normalise_as_ast():
    cfg = FeatureConfig(num_frames=100, mean=-5.0, std=2.0)
    feats = torch.full((60, 128), -1.0)
    padded = pad_or_cut(feats, 100)
    assert padded.shape == (100, 128) and (padded[60:] == 0).all() and (padded[:60] == -1).all()
    assert pad_or_cut(torch.zeros(150, 128), 100).shape == (100, 128)
    # zero padding happens before normalising, as in AST: padded frames become -mean / (2 std)
    x = model_input(torch.zeros(0), cfg)
    assert x.shape == (100, 128)
    torch.testing.assert_close(x, torch.full((100, 128), 1.25))
    torch.testing.assert_close(normalize(torch.tensor([-1.0]), cfg), torch.tensor([1.0]))


def test_model_input_equals_hugging_face_extractor(esc50_clip):
    transformers = pytest.importorskip("transformers")
    wave = sf.read(esc50_clip, dtype="float32")[0]
    extractor = transformers.ASTFeatureExtractor()  # AudioSet defaults: 1024 frames, mean/std
    ref = extractor(wave, sampling_rate=16000, return_tensors="pt").input_values[0]
    ours = model_input(torch.from_numpy(wave), FeatureConfig())
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)
