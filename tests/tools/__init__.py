"""Tests of kernelwright.tools: problem files, compile, verify, measure, sandbox and the harness."""
