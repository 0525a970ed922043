"""Multi-head self-attention block in bfloat16: fused QKV projection, SDPA, output projection."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        with torch.no_grad():
            # Unit-variance projections, and q, k 1.5x larger: attention is then peaked enough that
            # the block's output is O(0.5) (the default init gives a near-zero average of values).
            self.qkv.weight.normal_(0.0, dim ** -0.5)
            self.qkv.weight[: 2 * dim].mul_(1.5)
            self.out.weight.normal_(0.0, dim ** -0.5)
        self.to(torch.bfloat16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, dim = x.shape
        qkv = self.qkv(x).view(batch, seq, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.out(attn.transpose(1, 2).reshape(batch, seq, dim))


batch, seq, dim, heads = 8, 2048, 1024, 16


def get_inputs():
    return [torch.randn(batch, seq, dim, dtype=torch.bfloat16)]


def get_init_inputs():
    return [dim, heads]
