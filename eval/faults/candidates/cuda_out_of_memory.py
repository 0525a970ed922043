"""Asks the GPU for far more memory than it has."""
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        hog = torch.empty(1 << 40, dtype=torch.float32, device=x.device)  # 4 TiB
        return torch.clamp_min(x, 0) * 2.0 + 1.0 + 0 * hog[0]
