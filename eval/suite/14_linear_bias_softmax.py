"""Linear -> add a fixed per-class bias buffer -> softmax over classes (row reduction after the GEMM)."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)
        self.register_buffer("class_bias", torch.linspace(-1.0, 1.0, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.linear(x) * 4.0 + self.class_bias
        return torch.softmax(logits, dim=-1)


batch, in_features, num_classes = 8192, 2048, 1024


def get_inputs():
    return [torch.randn(batch, in_features)]


def get_init_inputs():
    return [in_features, num_classes]
