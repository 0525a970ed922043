"""Gated MLP (SwiGLU) in bfloat16: down(silu(gate(x)) * up(x)), no biases."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=False).to(torch.bfloat16)
        self.up = nn.Linear(dim, hidden, bias=False).to(torch.bfloat16)
        self.down = nn.Linear(hidden, dim, bias=False).to(torch.bfloat16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


tokens, dim, hidden = 4096, 2048, 5632


def get_inputs():
    # Spread 2 so the output is O(0.4), well above the bf16 absolute tolerance.
    return [(torch.randn(tokens, dim) * 2.0).to(torch.bfloat16)]


def get_init_inputs():
    return [dim, hidden]
