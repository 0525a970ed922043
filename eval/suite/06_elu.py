"""ELU with alpha 0.7 over a 3-D activation tensor."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, alpha: float):
        super().__init__()
        self.act = nn.ELU(alpha=alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x)


batch, seq, hidden = 16, 2048, 1024


def get_inputs():
    return [torch.randn(batch, seq, hidden) * 2.0]


def get_init_inputs():
    return [0.7]
