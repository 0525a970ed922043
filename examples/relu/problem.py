"""Example problem (KernelBench format): relu, scale and shift over a large activation tensor."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) * 2.0 + 1.0


batch, dim = 4096, 8192


def get_inputs():
    return [torch.randn(batch, dim)]


def get_init_inputs():
    return []
