"""kernelwright: agents that write, verify, profile and evolve CUDA kernels for PyTorch code.

    import kernelwright
    result = kernelwright.optimize("problem.py")          # or (MyModule, example_inputs=[x])
    report = kernelwright.evaluate("problem.py", "candidate.py")
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["evaluate", "optimize", "problem_from_module"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `import kernelwright` stays light (no torch, langgraph or CUDA).
    if name in __all__:
        from kernelwright import api

        return getattr(api, name)
    raise AttributeError(f"module 'kernelwright' has no attribute {name!r}")
