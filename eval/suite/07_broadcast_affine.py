"""Three-way broadcasting: (x - row_offset) * col_scale + 1, row vector and column vector inputs."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor, row_offset: torch.Tensor, col_scale: torch.Tensor) -> torch.Tensor:
        return (x - row_offset) * col_scale + 1.0


rows, cols = 4096, 8192


def get_inputs():
    return [torch.randn(rows, cols), torch.randn(cols), torch.rand(rows, 1) + 0.5]


def get_input_variants():
    return [[torch.randn(3, 1001), torch.randn(1001), torch.rand(3, 1) + 0.5],
            [torch.randn(4099, 7), torch.randn(7), torch.rand(4099, 1) + 0.5]]


def get_init_inputs():
    return []
