"""The accuracy gate of reduced precision (docs/speed.md), shared by tests/core/test_backends.py and the benches.

A reduced-precision run passes when, on the same real audio, its scores stay within MAX_SCORE_DIFFERENCE of
the fp32 run's and at least MIN_SAME_EVENTS of the events are identical (label, start and end). Random weights
give logits near 0, where a sigmoid hides errors; `scale_head` gives a random AST the logit spread of a trained
one (the released AudioSet weights cannot be downloaded here), so the gate sees what bf16 does to scores of that
size.
"""
from __future__ import annotations

import numpy as np
import torch

from core.timeline import Event

MAX_SCORE_DIFFERENCE = 0.02
MIN_SAME_EVENTS = 0.98


@torch.no_grad()
def scale_head(model: torch.nn.Module, windows: torch.Tensor, std: float = 3.0, mean: float = -5.0,
               seed: int = 0) -> None:
    """Give `model` (a core.model.AST) a random head whose logits over `windows` (N, T, F normalised) have the
    spread of a trained AudioSet AST's: standard deviation `std` and mean `mean` over all windows and labels
    (one scale and one offset, so what the body computes is kept, only magnified as training magnifies it).
    Mean -5: most of 527 labels are absent from any window (AST.md's reference logits on a real clip begin
    -0.88, -7.0, -8.7); about 8 % of label-windows then score above the default threshold of 0.3."""
    pooled = model.mlp_head[0](model.forward_features(windows))                 # (N, D) after the head's norm
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(model.config.num_classes, pooled.shape[1], generator=g)  # (L, D)
    weight *= std / (pooled @ weight.T).std()
    model.mlp_head[1].weight.copy_(weight)
    model.mlp_head[1].bias.fill_(mean - float((pooled @ weight.T).mean()))


def same_events(reference: list[Event], other: list[Event], tolerance_s: float = 1e-3) -> float:
    """Share of events that both lists hold (same label, start and end within `tolerance_s`), over the longer
    list; 1.0 when both are empty."""
    def key(e: Event) -> tuple[int, int, int]:
        return e.label_index, round(e.start_s / tolerance_s), round(e.end_s / tolerance_s)

    a, b = {key(e) for e in reference}, {key(e) for e in other}
    return len(a & b) / max(len(a), len(b)) if a or b else 1.0


def gate(reference_scores: np.ndarray, scores: np.ndarray, reference_events: list[Event],
         events: list[Event]) -> dict:
    """The gate's numbers and verdict for one run against its fp32 reference."""
    difference = float(np.abs(reference_scores.astype(np.float64) - scores).max())
    share = same_events(reference_events, events)
    return {"max_score_difference": difference, "same_events": share, "events_fp32": len(reference_events),
            "events": len(events), "passed": difference <= MAX_SCORE_DIFFERENCE and share >= MIN_SAME_EVENTS}
