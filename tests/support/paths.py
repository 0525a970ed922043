"""Where the tests' data lives, for test modules at any depth under tests/."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent  # the checkout
FIXTURES = TESTS / "fixtures"
PROBLEMS = FIXTURES / "problems"
DATA = TESTS / "data"
# The bundled example doubles as the honest raw-form fixture for the relu_affine problems.
RELU_CANDIDATE = ROOT / "examples" / "relu" / "candidate_raw.py"
KERNELBENCH = ROOT.parent / "shared" / "kernelbench"  # KernelBench's problems, where a checkout sits beside them
