"""bench/bench_precision.py's machinery: a variant that puts no bf16 into the model must be the model exactly,
and one that does must differ, or the bench's verdict (bf16 fails the gate) would rest on a broken variant."""
from __future__ import annotations

import torch

from bench.bench_precision import _blocks_bf16, ceiling
from core.config import ModelConfig
from core.model import AST


def test_blocks_variant_is_the_model_with_no_bf16_blocks_and_differs_with_some():
    torch.manual_seed(0)
    model = AST(ModelConfig(num_frames=64, embed_dim=64, num_heads=2, depth=3, num_classes=7)).eval()
    x = torch.randn(2, 64, 128)
    with torch.inference_mode():
        exact, none, some = model(x), _blocks_bf16(model, 0)(x), _blocks_bf16(model, 2)(x)
    assert torch.equal(none, exact)
    assert 0 < (some - exact).abs().max() < 0.1
    assert next(model.parameters()).dtype == torch.float32   # the variant works on a copy


def test_ceiling_measures_every_engine_it_has():
    gflops = ceiling(threads=1, seconds=0.01)
    assert {"torch fp32", "torch bf16"} <= set(gflops)
    assert all(v > 0 for v in gflops.values())
