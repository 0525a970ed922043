"""Shared lists for the offline-translator tests: the suite (repo's eval/suite, or KERNELWRIGHT_SUITE_DIR)
and the fixture problems."""

from __future__ import annotations

import os
from pathlib import Path

from support.paths import FIXTURES, ROOT


def suite_dir() -> Path:
    return Path(os.environ.get("KERNELWRIGHT_SUITE_DIR") or ROOT / "eval" / "suite")


def suite_problems() -> list[Path]:
    return sorted(p for p in suite_dir().glob("*.py") if p.name[:1].isdigit())


def fixture_problems() -> list[Path]:
    """Translatable fixtures: the offline feature problems, the harness fixtures and the example."""
    skip = {"data_dependent.py", "only_sort.py"}  # untraceable / nothing to generate: tested separately
    paths = sorted((FIXTURES / "offline").glob("*.py")) + sorted((FIXTURES / "problems").glob("*.py"))
    return [p for p in paths if p.name not in skip] + [ROOT / "examples" / "relu" / "problem.py"]
