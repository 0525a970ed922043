"""Tests of the front door (kernelwright/): the CLI, the Python API, settings, run views and messages."""
