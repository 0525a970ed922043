"""kernelwright.graphs (see README for the architecture)."""
