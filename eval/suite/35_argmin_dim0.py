"""Index of the minimum down each column (reduction over the leading, strided dimension)."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.argmin(x, dim=0)


rows, cols = 4096, 8192


def get_inputs():
    return [torch.randn(rows, cols)]


def get_init_inputs():
    return []
