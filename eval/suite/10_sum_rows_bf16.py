"""Row sums of a bfloat16 matrix (fp32 accumulation, one rounding at the end)."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sum(x, dim=-1)


rows, cols = 4096, 8192


def get_inputs():
    # Mean 0.25 keeps every row sum far from zero (about 2048 +- 90).
    return [(torch.randn(rows, cols) + 0.25).to(torch.bfloat16)]


def get_init_inputs():
    return []
