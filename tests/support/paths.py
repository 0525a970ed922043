"""Where the tests' data lives, for test modules at any depth under tests/."""

from __future__ import annotations

import os
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent  # the checkout
FIXTURES = TESTS / "fixtures"
PROBLEMS = FIXTURES / "problems"
DATA = TESTS / "data"
# The bundled example doubles as the honest raw-form fixture for the relu_affine problems.
RELU_CANDIDATE = ROOT / "examples" / "relu" / "candidate_raw.py"
# KernelBench's problems, where a checkout sits beside them; KERNELBENCH_DIR names a copy elsewhere (the GPU machine
# gets only the checkout, so scripts/gpu carries one in runs/kb).
KERNELBENCH = Path(os.environ.get("KERNELBENCH_DIR") or ROOT.parent / "shared" / "kernelbench")
