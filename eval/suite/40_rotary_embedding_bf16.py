"""Rotary position embedding (rotate-half form) applied to bfloat16 queries and keys; returns both.

Computed in fp32 and rounded once (as LLM code usually does): three bf16 roundings would differ from
any fused kernel by more than the bf16 tolerance.
"""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, seq: int, head_dim: int, base: float):
        super().__init__()
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(seq, dtype=torch.float32), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)  # (seq, head_dim)
        self.register_buffer("cos", angles.cos())
        self.register_buffer("sin", angles.sin())

    @staticmethod
    def _rotate_half(x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        return torch.cat([-x[..., half:], x[..., :half]], dim=-1)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        qf, kf = q.float(), k.float()
        q_rot = qf * self.cos + self._rotate_half(qf) * self.sin
        k_rot = kf * self.cos + self._rotate_half(kf) * self.sin
        return q_rot.to(q.dtype), k_rot.to(k.dtype)


batch, heads, seq, head_dim = 8, 32, 2048, 128


def get_inputs():
    return [torch.randn(batch, heads, seq, head_dim, dtype=torch.bfloat16),
            torch.randn(batch, heads, seq, head_dim, dtype=torch.bfloat16)]


def get_init_inputs():
    return [seq, head_dim, 10000.0]
