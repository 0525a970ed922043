"""Never returns from forward (a Python-level hang: the CPU stand-in for a kernel that never finishes)."""
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        while True:
            pass
