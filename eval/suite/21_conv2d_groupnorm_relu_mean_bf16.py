"""bfloat16 Conv2d -> GroupNorm -> ReLU -> global mean over H, W: a conv followed by two reductions."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, groups: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3).to(torch.bfloat16)
        self.norm = nn.GroupNorm(groups, out_channels).to(torch.bfloat16)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.5, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.norm(self.conv(x)))
        return y.mean(dim=(2, 3))


batch, in_channels, out_channels, groups, size = 64, 32, 128, 16, 64


def get_inputs():
    return [torch.randn(batch, in_channels, size, size, dtype=torch.bfloat16)]


def get_init_inputs():
    return [in_channels, out_channels, groups]
