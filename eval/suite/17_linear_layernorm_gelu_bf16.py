"""bfloat16 Linear -> LayerNorm over features -> GELU (a row reduction between GEMM and activation)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features).to(torch.bfloat16)
        self.norm = nn.LayerNorm(out_features).to(torch.bfloat16)
        with torch.no_grad():  # non-trivial affine so a kernel that skips it fails
            # Kept near 1 / 0: a larger gain magnifies eager's bf16 rounding of the GEMM output.
            self.norm.weight.uniform_(0.8, 1.2)
            self.norm.bias.uniform_(-0.2, 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.norm(self.linear(x)))


tokens, in_features, out_features = 8192, 2048, 4096


def get_inputs():
    return [torch.randn(tokens, in_features, dtype=torch.bfloat16)]


def get_init_inputs():
    return [in_features, out_features]
