"""kernelwright.prompts (see README for the architecture)."""
