"""Linear -> logsumexp over features -> ReLU of the shifted result: GEMM then a row reduction to one value per row."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lse = torch.logsumexp(self.linear(x) * 3.0, dim=1, keepdim=True)
        return torch.relu(lse - 8.0)


batch, in_features, out_features = 8192, 4096, 2048


def get_inputs():
    return [torch.randn(batch, in_features)]


def get_init_inputs():
    return [in_features, out_features]
