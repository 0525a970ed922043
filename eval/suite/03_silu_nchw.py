"""SiLU (x * sigmoid(x)) on an NCHW feature map."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


batch, channels, height, width = 32, 256, 64, 64


def get_inputs():
    return [torch.randn(batch, channels, height, width) * 3.0]


def get_init_inputs():
    return []
