"""Per-sample cross-entropy with label smoothing over 16384 classes (reduction='none')."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, smoothing: float):
        super().__init__()
        self.smoothing = smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, reduction="none", label_smoothing=self.smoothing)


batch, classes = 4096, 16384


def get_inputs():
    return [torch.randn(batch, classes) * 2.0, torch.randint(0, classes, (batch,))]


def get_init_inputs():
    return [0.1]
