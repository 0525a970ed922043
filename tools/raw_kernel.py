"""Stable import path of the raw candidate form: `from kernelwright.tools.raw_kernel import load_cuda`.

Why this module exists: candidate files import it, and they are written outside this package's control
and kept: by users, by the offline translator (its generated sources must stay byte-identical), by the
LLM following prompts/templates/candidate_format.md, in older run folders and in the kernel archive.
The code lives in tools/compile/raw_kernel.py; this path re-exports its public names and must keep
working. kernelwright's own code imports kernelwright.tools.compile.raw_kernel.
"""

from kernelwright.tools.compile.raw_kernel import Launcher, RawLibrary, load_cuda, parse_spec, target_arch

__all__ = ["Launcher", "RawLibrary", "load_cuda", "parse_spec", "target_arch"]
