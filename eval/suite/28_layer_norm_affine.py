"""LayerNorm over 8192 features with a learned (non-trivial) scale and shift."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, eps=1e-5)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-1.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


rows, hidden = 4096, 8192


def get_inputs():
    # A nonzero mean and a scale other than 1, so skipping either half of the normalisation shows.
    return [torch.randn(rows, hidden) * 3.0 + 1.0]


def get_input_variants():
    return [[torch.randn(1, hidden) * 3.0 + 1.0], [torch.randn(3, 111, hidden) * 3.0 + 1.0]]


def get_init_inputs():
    return [hidden]
