"""kernelwright.agents (see README for the architecture)."""
