"""Stable import path for problem files generated from an nn.Module: `load_user_class`.

Why this module exists: `kernelwright.api.problem_from_module` writes a problem file that imports
`load_user_class` from here, and those files outlive the call (a user's directory, a recorded run's problem
path that a resume loads again). The code lives in tools/problem/from_module.py; this path re-exports what
generated files import and must keep working. kernelwright's own code imports kernelwright.tools.problem.from_module.
"""

from kernelwright.tools.problem.from_module import load_user_class

__all__ = ["load_user_class"]
