"""Python source that makes a package unimportable in a fresh interpreter (`python -c PREAMBLE + code`), to test
what a user without an optional dependency sees."""

from __future__ import annotations


def without(package: str) -> str:
    """A preamble under which `import package` (and its submodules) raises ModuleNotFoundError."""
    return f"""
import sys, importlib.abc
class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == {package!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _Blocked())
"""
