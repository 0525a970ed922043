"""Fixtures of the offline-translator tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def cache_env(build_cache: Path) -> Iterator[Path]:
    """The shared build cache for candidates imported in this process (load_cuda reads KERNELWRIGHT_CACHE_DIR)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("KERNELWRIGHT_CACHE_DIR", str(build_cache))
    yield build_cache
    mp.undo()
