"""Layer norm over rows with a learned affine (same width as the rest of this folder)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, cols: int):
        super().__init__()
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(cols))
        self.bias = nn.Parameter(0.1 * torch.randn(cols))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, 1e-5)


rows, cols = 8192, 4096


def get_inputs():
    return [torch.randn(rows, cols) * 2.0 + 0.5]


def get_init_inputs():
    return [cols]
