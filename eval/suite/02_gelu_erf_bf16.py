"""Exact (erf) GELU in bfloat16 over 64M elements."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x)


tokens, hidden = 16384, 4096


def get_inputs():
    return [torch.randn(tokens, hidden, dtype=torch.bfloat16)]


def get_input_variants():
    return [[torch.randn(3, 777, dtype=torch.bfloat16)], [torch.randn(2, 3, 4099, dtype=torch.bfloat16)]]


def get_init_inputs():
    return []
