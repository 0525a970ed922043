"""kernelwright.eval (see README for the architecture)."""
