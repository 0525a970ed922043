"""Shared test setup: markers that skip cleanly when the GPU or nvcc is missing, and session fixtures.

Constants and helpers that test modules import live in the `support` package (tests/support/)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support.paths import FIXTURES


def _has_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_gpu = _has_gpu()
    has_nvcc = shutil.which("nvcc") is not None
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        if "nvcc" in item.keywords and not has_nvcc:
            item.add_marker(pytest.mark.skip(reason="needs nvcc on PATH"))


@pytest.fixture(scope="session")
def build_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One compile cache for the whole session (workers get it via KERNELWRIGHT_CACHE_DIR)."""
    return tmp_path_factory.mktemp("kw-build-cache")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(autouse=True)
def _fresh_structlog():
    """CLI tests configure logging onto CliRunner's stream, which closes after the call; start each test clean."""
    import structlog

    yield
    structlog.reset_defaults()
