"""bfloat16 Linear -> tanh GELU -> per-feature learned gain: an elementwise epilogue with a broadcast parameter."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features).to(torch.bfloat16)
        # A positive gain, not a shift: a shift cancels GELU values to near zero, where bf16 rounding of the
        # intermediate exceeds the absolute tolerance for any kernel that keeps it in fp32.
        self.gain = nn.Parameter((torch.rand(out_features) + 0.5).to(torch.bfloat16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.linear(x), approximate="tanh") * self.gain


tokens, in_features, out_features = 8192, 4096, 8192


def get_inputs():
    return [torch.randn(tokens, in_features, dtype=torch.bfloat16)]


def get_init_inputs():
    return [in_features, out_features]
