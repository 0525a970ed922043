"""Honest, in plain PyTorch: the candidate each case evaluates after its fault, to show the evaluator goes on."""
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.clamp_min(x, 0) * 2.0 + 1.0
