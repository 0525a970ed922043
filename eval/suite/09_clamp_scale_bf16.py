"""Clamp to [-1.5, 2.5] then scale, in bfloat16."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, low: float, high: float, scale: float):
        super().__init__()
        self.low, self.high, self.scale = low, high, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, self.low, self.high) * self.scale


rows, cols = 8192, 8192


def get_inputs():
    return [(torch.randn(rows, cols) * 2.0).to(torch.bfloat16)]


def get_input_variants():
    return [[(torch.randn(9, 1023) * 2.0).to(torch.bfloat16)], [(torch.randn(70001) * 2.0).to(torch.bfloat16)]]


def get_init_inputs():
    return [-1.5, 2.5, 0.75]
