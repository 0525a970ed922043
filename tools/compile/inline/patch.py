"""Swap torch.utils.cpp_extension.load_inline for fast_load_inline in this process, and back.

The harness calls this inside its own sandbox worker before it imports a
candidate, so `from torch.utils.cpp_extension import load_inline` in the
candidate (which runs at import) binds the fast version. Only this process's
torch module object changes; nothing is written anywhere else.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import structlog
import torch.utils.cpp_extension as cpp_extension

from kernelwright.tools.compile.inline.loader import fast_load_inline
from kernelwright.tools.compile.nvcc import NvccCompiler

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Installation:
    """What install_fast_load_inline replaced; pass it to uninstall_fast_load_inline."""

    previous: Callable[..., Any]
    installed: Callable[..., Any]


def install_fast_load_inline(compiler: NvccCompiler | None = None) -> Installation:
    """Make torch.utils.cpp_extension.load_inline build with fast_load_inline (one compiler for all calls)."""
    compiler = compiler or NvccCompiler()
    installed = functools.wraps(fast_load_inline)(functools.partial(fast_load_inline, compiler=compiler))
    previous = cpp_extension.load_inline
    cpp_extension.load_inline = installed
    log.debug("inline.installed", cache_dir=str(compiler.cache_dir))
    return Installation(previous=previous, installed=installed)


def uninstall_fast_load_inline(installation: Installation) -> None:
    """Put back what install_fast_load_inline replaced (only if ours is still the one installed)."""
    if cpp_extension.load_inline is installation.installed:
        cpp_extension.load_inline = installation.previous
    else:
        log.warning("inline.uninstall_skipped", reason="load_inline was replaced again after our install")


@contextmanager
def fast_load_inline_installed(compiler: NvccCompiler | None = None) -> Iterator[Installation]:
    """`with fast_load_inline_installed(): import candidate` — restored on exit, also on error."""
    installation = install_fast_load_inline(compiler)
    try:
        yield installation
    finally:
        uninstall_fast_load_inline(installation)
