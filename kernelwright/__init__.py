"""kernelwright: agents that write, verify, profile and evolve CUDA kernels for PyTorch code.

    import kernelwright
    result = kernelwright.optimize("problem.py")          # or (MyModule, example_inputs=[x])
    report = kernelwright.evaluate("problem.py", "candidate.py")
"""

from pathlib import Path
from typing import Any

__version__ = "0.1.0"

# Imported straight from a source checkout (its root first on sys.path: Ray puts the driver's working directory
# before everything on each worker's path; `python -c` run in the checkout does the same), this folder holds only
# the front door, and `kernelwright.tools`, `kernelwright.graphs`, ... are its sibling folders (pyproject.toml's
# package-dir maps them when installed). Searching the checkout's root as part of this package resolves them the
# same way; an installed package never takes this branch.
_CHECKOUT = Path(__file__).resolve().parent.parent
if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "graphs" / "__init__.py").is_file():
    __path__.append(str(_CHECKOUT))
__all__ = ["evaluate", "optimize", "problem_from_module"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `import kernelwright` stays light (no torch, langgraph or CUDA).
    if name in __all__:
        from kernelwright import api

        return getattr(api, name)
    raise AttributeError(f"module 'kernelwright' has no attribute {name!r}")
