"""Small CNN stage: Conv2d 3x3 -> BatchNorm (eval, non-trivial statistics) -> ReLU -> 2x2 max pooling."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.pool = nn.MaxPool2d(2)
        with torch.no_grad():
            self.bn.running_mean.copy_(torch.randn(out_channels) * 0.2)
            self.bn.running_var.uniform_(0.1, 0.5)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.3, 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.bn(self.conv(x))))


batch, in_channels, out_channels, size = 32, 64, 128, 128


def get_inputs():
    return [torch.randn(batch, in_channels, size, size)]


def get_init_inputs():
    return [in_channels, out_channels]
