"""A pre-norm decoder layer in bfloat16: causal multi-head attention and a GELU MLP, each with a residual."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        with torch.no_grad():
            # Sharper q, k than the default init: otherwise the attention branch adds ~0.01 to the residual
            # and a layer that skipped it would pass the tolerance. Branch outputs are kept at ~0.15-0.3 so
            # the residual stream stays below 2, where a bf16 ulp is under the absolute tolerance.
            self.qkv.weight.normal_(0.0, dim ** -0.5)
            self.qkv.weight[: 2 * dim].mul_(1.5)
            self.proj.weight.normal_(0.0, 0.5 * dim ** -0.5)
            self.fc2.weight.mul_(0.5)
        self.to(torch.bfloat16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, dim = x.shape
        qkv = self.qkv(self.norm1(x)).view(batch, seq, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
        h = x + self.proj(attn.transpose(1, 2).reshape(batch, seq, dim))
        return h + self.fc2(F.gelu(self.fc1(self.norm2(h))))


batch, seq, dim, heads, hidden = 8, 1024, 1024, 16, 4096


def get_inputs():
    return [(torch.randn(batch, seq, dim) * 0.5).to(torch.bfloat16)]


def get_init_inputs():
    return [dim, heads, hidden]
