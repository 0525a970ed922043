"""ConvTranspose2d (stride 2 upsampling) -> add a per-channel bias -> tanh -> scale."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)
        self.bias = nn.Parameter(torch.randn(out_channels, 1, 1) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.deconv(x) + self.bias) * 2.0


batch, in_channels, out_channels, size = 32, 128, 64, 32


def get_inputs():
    return [torch.randn(batch, in_channels, size, size) * 2.0]


def get_init_inputs():
    return [in_channels, out_channels]
