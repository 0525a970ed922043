"""Leaky ReLU with a constructor-given negative slope."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, negative_slope: float):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.negative_slope)


rows, cols = 4096, 8192


def get_inputs():
    return [torch.randn(rows, cols)]


def get_input_variants():
    return [[torch.randn(17, 31)], [torch.randn(2, 8191)], [torch.randn(1)]]


def get_init_inputs():
    return [0.07]
