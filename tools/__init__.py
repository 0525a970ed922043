"""kernelwright.tools: plain typed functions (compile, verify, time, profile, GPU info, sandbox).

No LangGraph, LangChain or Chroma here: this package runs alone on a GPU box
with torch, nvidia-ml-py and structlog.
"""
