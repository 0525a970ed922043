"""The checkout imported straight from its root (no install, no editable finder): what a Ray worker does, since Ray
puts the driver's working directory first on every worker's sys.path. The front-door folder must not hide the
subpackages that sit beside it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_subpackages_resolve_from_a_checkout_root_on_sys_path(tmp_path: Path) -> None:
    # -S: no site-packages, so no editable install's finder can map the names; only the checkout itself is searched
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import kernelwright.graphs, kernelwright.tools.errors;"
            "print(kernelwright.graphs.__file__); print(kernelwright.tools.errors.__file__)")
    done = subprocess.run([sys.executable, "-S", "-c", code, str(REPO)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(REPO / "graphs" / "__init__.py"), str(REPO / "tools" / "errors.py")]
