"""Its worker is killed by a signal (SIGKILL, as an outside killer would send it) in the middle of forward."""
import os
import signal

import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        os.kill(os.getpid(), signal.SIGKILL)
        return x
