"""Fixtures of the offline-translator tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kernelwright.tools.sandbox.pool import WorkerOptions
from support.offline import BUILD_ARCH


@pytest.fixture(scope="module")
def cache_env(build_cache: Path) -> Iterator[Path]:
    """The shared build cache for candidates imported in this process (load_cuda reads KERNELWRIGHT_CACHE_DIR)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("KERNELWRIGHT_CACHE_DIR", str(build_cache))
    yield build_cache
    mp.undo()


@pytest.fixture(scope="module")
def arch_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh build cache that candidates imported here also use (KERNELWRIGHT_CACHE_DIR), building for
    BUILD_ARCH: a test's own build of a candidate's CUDA is then the one its import finds."""
    root = tmp_path_factory.mktemp("candidate-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("KERNELWRIGHT_CACHE_DIR", str(root))
    mp.setenv("KERNELWRIGHT_ARCH", BUILD_ARCH)
    yield root / "build"
    mp.undo()


@pytest.fixture(scope="module")
def worker_options(build_cache: Path) -> WorkerOptions:
    """Harness workers that build into the shared cache."""
    return WorkerOptions(env={"KERNELWRIGHT_CACHE_DIR": str(build_cache)})
