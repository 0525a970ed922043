"""log-softmax over the middle dimension of a bfloat16 (batch, classes, positions) tensor."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(x, dim=1)


batch, classes, positions = 32, 1024, 1024


def get_inputs():
    return [torch.randn(batch, classes, positions, dtype=torch.bfloat16)]


def get_input_variants():
    # A strided reduction with odd extents on both sides of the reduced dimension.
    return [[torch.randn(3, 77, 5, dtype=torch.bfloat16)], [torch.randn(1, 2000, 31, dtype=torch.bfloat16)]]


def get_init_inputs():
    return []
