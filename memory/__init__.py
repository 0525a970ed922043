"""kernelwright.memory (see README for the architecture)."""
