"""RMSNorm in bfloat16, statistics in fp32 (the usual LLM formulation), learned gain."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, hidden: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter((1.0 + 0.2 * torch.randn(hidden)).to(torch.bfloat16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.to(torch.float32)
        inv_rms = torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return (xf * inv_rms).to(torch.bfloat16) * self.weight


tokens, hidden = 8192, 4096


def get_inputs():
    return [(torch.randn(tokens, hidden) * 2.0).to(torch.bfloat16)]


def get_input_variants():
    return [[(torch.randn(7, hidden) * 2.0).to(torch.bfloat16)], [(torch.randn(2, 3, hidden) * 2.0).to(torch.bfloat16)]]


def get_init_inputs():
    return [hidden, 1e-6]
