"""kernelwright: agents that write, verify, profile and evolve CUDA kernels for PyTorch code."""

__version__ = "0.1.0"
