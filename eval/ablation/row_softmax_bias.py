"""Softmax over rows after adding a learned per-column bias (an attention-logit shape)."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, cols: int):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(cols) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x + self.bias, dim=-1)


rows, cols = 8192, 4096


def get_inputs():
    return [torch.randn(rows, cols) * 2.0]


def get_init_inputs():
    return [cols]
