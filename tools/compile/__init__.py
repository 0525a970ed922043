"""Turning a candidate's CUDA source into code Python can call.

`nvcc` runs the compiler out of process into a content-addressed cache (parallel jobs, timeouts) and
`diagnostics` parses what it prints into located messages an LLM can act on. A candidate comes in one of two
forms: `raw_kernel` builds plain CUDA with `extern "C"` launchers without torch headers and calls them
through ctypes, and `inline` is a drop-in for torch's load_inline that keeps the heavy headers and
pybind11 out of the build (the harness swaps it in for candidates that call torch's).
"""
