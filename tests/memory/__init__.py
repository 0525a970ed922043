"""Tests of kernelwright.memory: the kernel archive, alone and inside runs."""
