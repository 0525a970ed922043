"""Attention probabilities with ALiBi: softmax(Q K^T / sqrt(d) - slope_h * |i - j|)."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, heads: int, seq: int, head_dim: int):
        super().__init__()
        self.scale = head_dim ** -0.5
        slopes = torch.tensor([2.0 ** (-8.0 * (h + 1) / heads) for h in range(heads)])
        self.register_buffer("slopes", slopes.view(heads, 1, 1))
        pos = torch.arange(seq, dtype=torch.float32)
        self.register_buffer("distance", (pos[None, :] - pos[:, None]).abs())

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        scores = torch.matmul(q, k.transpose(-2, -1)) * self.scale - self.slopes * self.distance
        return torch.softmax(scores, dim=-1)


batch, heads, seq, head_dim = 8, 16, 1024, 64


def get_inputs():
    return [torch.randn(batch, heads, seq, head_dim), torch.randn(batch, heads, seq, head_dim)]


def get_init_inputs():
    return [heads, seq, head_dim]
