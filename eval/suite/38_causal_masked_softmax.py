"""Causal masked softmax over precomputed attention scores (mask is a registered buffer)."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, max_seq: int, scale: float):
        super().__init__()
        self.scale = scale
        self.register_buffer("causal", torch.ones(max_seq, max_seq, dtype=torch.bool).tril())

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        seq = scores.shape[-1]
        masked = (scores * self.scale).masked_fill(~self.causal[:seq, :seq], float("-inf"))
        return torch.softmax(masked, dim=-1)


batch, heads, seq = 8, 16, 1024


def get_inputs():
    return [torch.randn(batch, heads, seq, seq) * 8.0]


def get_init_inputs():
    return [seq, 0.25]
