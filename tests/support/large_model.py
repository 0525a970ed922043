"""A KernelBench-format problem whose weights are as large as asked: one Linear, a ReLU and a scale buffer."""

from __future__ import annotations

from pathlib import Path

WIDE = """import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)
        self.register_buffer("scale", torch.ones(n_out))

    def forward(self, x):
        return torch.relu(self.fc(x)) * self.scale


def get_inputs():
    return [torch.rand(2, N_IN)]


def get_init_inputs():
    return [N_IN, N_OUT]
"""


def wide_linear_problem(tmp_path: Path, n_in: int, n_out: int) -> Path:
    path = tmp_path / f"wide_{n_in}x{n_out}.py"
    path.write_text(WIDE.replace("N_IN, N_OUT", f"{n_in}, {n_out}").replace("(2, N_IN)", f"(2, {n_in})"))
    return path
