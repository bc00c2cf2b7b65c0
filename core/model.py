"""The Audio Spectrogram Transformer (Gong, Chung and Glass, 2021, arXiv 2104.01778).

One readable module with the parameter names of the original checkpoints (`patch_embed.proj`,
`blocks.N.attn.qkv`, ..., `mlp_head`), so an original `.pth` loads after stripping its `module.v.` /
`module.` prefixes. Used by whichever thread owns the model (tagger, analysis, training).

Input (B, T frames, F mel) normalised log-mel; output logits (B, num_classes); scores are sigmoid.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.config import ModelConfig


class PatchEmbed(nn.Module):
    """Overlapping 16x16 patches of the spectrogram, frequency-major token order."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.proj = nn.Conv2d(1, cfg.embed_dim, kernel_size=cfg.patch_size,
                              stride=(cfg.frequency_stride, cfg.time_stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2).unsqueeze(1)   # (B, T, F) -> (B, 1, F, T)
        x = self.proj(x)                     # (B, D, f, t)
        return x.flatten(2).transpose(1, 2)  # (B, f*t, D), row-major over (f, t)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.qkv = nn.Linear(cfg.embed_dim, 3 * cfg.embed_dim, bias=cfg.qkv_bias)  # rows q | k | v
        self.proj = nn.Linear(cfg.embed_dim, cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)  # (B, N, 3, H, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)                           # 3 x (B, H, N, hd)
        x = F.scaled_dot_product_attention(q, k, v)                              # scale hd^-0.5
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        hidden = int(cfg.embed_dim * cfg.mlp_ratio)
        self.fc1 = nn.Linear(cfg.embed_dim, hidden)
        self.act = nn.GELU()  # exact (erf) GELU
        self.fc2 = nn.Linear(hidden, cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.mlp = Mlp(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class AST(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg  # ModelConfig checked its sizes (types, ranges, embed_dim % num_heads)
        D = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_patches + 2, D))
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(D, eps=cfg.norm_eps)
        self.mlp_head = nn.Sequential(nn.LayerNorm(D, eps=cfg.head_norm_eps), nn.Linear(D, cfg.num_classes))
        self.apply(_init_weights)
        for p in (self.cls_token, self.dist_token, self.pos_embed):
            nn.init.trunc_normal_(p, std=0.02)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, F) normalised fbank -> pooled embedding (B, D) = mean of cls and distillation outputs."""
        x = self.patch_embed(x)                                                     # (B, P, D)
        B = x.shape[0]
        tokens = torch.cat([self.cls_token.expand(B, -1, -1), self.dist_token.expand(B, -1, -1)], dim=1)
        x = torch.cat([tokens, x], dim=1) + self.pos_embed                          # (B, P + 2, D)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return (x[:, 0] + x[:, 1]) / 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> logits (B, num_classes)."""
        if x.shape[1:] != (self.config.num_frames, self.config.num_mel_bins):
            raise ValueError(f"AST expects input (B, {self.config.num_frames}, {self.config.num_mel_bins}), "
                             f"got {tuple(x.shape)}; resize the model with resize_window() first")
        return self.mlp_head(self.forward_features(x))

    @torch.no_grad()
    def resize_window(self, num_frames: int) -> None:
        """Adapt the position table to another window length in place (done once, at load time)."""
        if num_frames == self.config.num_frames:
            return
        new_cfg = dataclasses.replace(self.config, num_frames=num_frames)
        table = resize_pos_embed(self.pos_embed.data, self.config.grid, new_cfg.grid)
        self.pos_embed = nn.Parameter(table)
        self.config = new_cfg


def resize_pos_embed(pos_embed: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> torch.Tensor:
    """Resize a (1, 2 + f*t, D) position table as the original AST code does.

    Each axis is centre-cut when the new size is smaller and bilinearly interpolated when larger
    (time first, then frequency); the cls and distillation rows are kept.
    """
    (f0, t0), (f1, t1) = old_grid, new_grid
    D = pos_embed.shape[-1]
    grid = pos_embed[:, 2:].reshape(1, f0, t0, D).permute(0, 3, 1, 2)  # (1, D, f0, t0), frequency-major
    if t1 < t0:
        start = t0 // 2 - t1 // 2
        grid = grid[..., start:start + t1]
    elif t1 > t0:
        grid = F.interpolate(grid, size=(f0, t1), mode="bilinear")
    if f1 < f0:
        start = f0 // 2 - f1 // 2
        grid = grid[:, :, start:start + f1]
    elif f1 > f0:
        grid = F.interpolate(grid, size=(f1, t1), mode="bilinear")
    grid = grid.permute(0, 2, 3, 1).reshape(1, f1 * t1, D)  # (1, f1*t1, D)
    return torch.cat([pos_embed[:, :2], grid], dim=1).contiguous()


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
