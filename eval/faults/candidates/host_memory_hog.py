"""Holds 3 GiB of host memory while it computes (past the small host_memory_limit_gb the case sets)."""
import time

import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        hog = torch.ones(3 << 28)  # 3 GiB of float32, every page touched
        time.sleep(3)
        return torch.clamp_min(x, 0) * 2.0 + 1.0 + 0 * hog[0]
