"""Fills its work directory: writes 64 MiB into a file under its temporary folder (the case caps the worker's
file size, so the write hits the limit as it would hit a full disk)."""
import os
import tempfile

import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        path = os.path.join(tempfile.gettempdir(), f"kw-fault-disk-full-{os.getpid()}.bin")
        with open(path, "wb") as fh:
            for _ in range(64):
                fh.write(b"\0" * (1 << 20))
                fh.flush()
        os.remove(path)
        return torch.clamp_min(x, 0) * 2.0 + 1.0
