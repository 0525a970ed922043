"""Tests of kernelwright.prompts: the templates."""
