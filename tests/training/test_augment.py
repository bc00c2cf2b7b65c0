"""Augmentations keep shapes, padding and label mass."""
from __future__ import annotations

import math

import torch

from training import augment


def _batch(B=6, T=50, F=16, L=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, T, F, generator=g) * 2 - 6  # well above the fbank floor
    valid = torch.ones(B, T, dtype=torch.bool)
    valid[0, 30:] = False
    x[0, 30:] = 0.0  # AST padding
    y = torch.zeros(B, L)
    y[torch.arange(B), torch.arange(B) % L] = 1.0
    y[5] = 0.0  # a negative
    return x, valid, y, g


def test_gain_shifts_valid_frames_only():
    x, valid, _, g = _batch()
    out = augment.random_gain(x, valid, 6.0, g)
    assert out.shape == x.shape and torch.equal(out[0, 30:], x[0, 30:])
    delta = (out - x)[:, :30]
    assert (delta.std(dim=(1, 2)) < 1e-4).all() and (delta.abs() <= 6 * augment.DB + 1e-5).all()


def test_background_fills_padding_and_only_adds_energy():
    x, valid, _, g = _batch()
    bank = torch.full((3, 50, 16), -12.0)
    out, out_valid = augment.add_background(x, valid, bank, 1.0, (10.0, 10.0), g)
    assert out.shape == x.shape and out_valid.all()
    assert (out[:, :30] >= x[:, :30] - 1e-5).all()        # mixing in power adds energy
    assert (out[0, 30:] < 0).all()                         # the padding became background, not zeros


def test_time_shift_is_a_roll():
    x, valid, _, g = _batch()
    out, out_valid = augment.time_shift(x, valid, 10, g)
    for b in range(len(x)):
        assert any(torch.equal(out[b], torch.roll(x[b], s, 0)) for s in range(-10, 11))
    assert out_valid.sum() == valid.sum()


def test_spec_augment_masks_within_bounds():
    x, _, _, g = _batch()
    out = augment.spec_augment(x, freq_mask=4, time_mask=8, num_masks=2, gen=g)
    assert out.shape == x.shape
    masked = (out == 0) & (x != 0)
    assert masked.any()
    assert torch.equal(out[~masked], x[~masked])


def test_mixup_keeps_label_mass_and_shapes():
    x, valid, y, g = _batch()
    out, out_valid, mixed = augment.mixup(x, valid, y, alpha=10.0, gen=g)
    assert out.shape == x.shape and mixed.shape == y.shape
    assert math.isclose(float(mixed.sum()), float(y.sum()), rel_tol=1e-6)
    assert ((mixed >= 0) & (mixed <= 1)).all()
    # one weight per batch: every row holds 0, 1, lam or 1 - lam of a label
    mass = sorted({round(float(m), 5) for m in mixed.sum(1)} - {0.0, 1.0})
    assert len(mass) <= 2 and (len(mass) < 2 or math.isclose(mass[0] + mass[1], 1.0, abs_tol=1e-4))
    # where both clips have audio the mix is a power sum: louder than either weighted part
    assert (out[:, :30] <= torch.logaddexp(x[:, :30], x[:, :30].amax()) + 1e-4).all()


def test_spectral_shape_tilts_or_band_limits_the_clip_only():
    from core.config import FeatureConfig
    x, valid, _, g = _batch(B=64, F=128)
    x = torch.where(valid[..., None], x + 16, x)   # loud enough that 60 dB down stays above the floor
    out = augment.spectral_shape(x, valid, 1.0, FeatureConfig(), g)
    assert out.shape == x.shape and torch.equal(out[0, 30:], x[0, 30:])   # padding untouched
    assert (out >= augment.LOG_FLOOR).all()
    delta = (out - x)[:, :30]                                               # (B, 30, F): one curve per clip
    assert (delta.std(dim=1) < 1e-4).all()
    curve = delta[:, 0]                                                     # (B, F) in log power
    f = augment.mel_centres_hz(128)
    band_limited = (curve < -50 * augment.DB).any(1)                        # 60 dB down somewhere
    assert 0 < band_limited.sum() < 64                                     # both kinds drawn
    for c in curve[band_limited]:   # every band limit passes 1-3 kHz (speech) untouched
        assert c[(f > 1000) & (f < 3000)].abs().max() < 1e-4
    tilts = curve[~band_limited]
    assert (tilts.abs().max(1).values <= 6 * 3 * augment.DB + 1e-5).all()   # +-6 dB/octave, 3 octaves each side
    # the same generator state gives the same result; prob 0 is the identity
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(augment.spectral_shape(x, valid, 0.5, FeatureConfig(), g1),
                       augment.spectral_shape(x, valid, 0.5, FeatureConfig(), g2))
    assert torch.equal(augment.spectral_shape(x, valid, 0.0, FeatureConfig(), g), x)


def test_mel_centres_span_the_fbank_range():
    f = augment.mel_centres_hz(128)
    assert f.shape == (128,) and (f.diff() > 0).all() and 20 < f[0] < 60 and 7700 < f[-1] < 8000
