"""A trivial problem for measuring the harness's own overhead (the kernel takes microseconds)."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.relu(x) * 2.0 + 1.0


def get_inputs():
    return [torch.randn(64, 1024)]


def get_init_inputs():
    return []
