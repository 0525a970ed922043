"""scripts/check_install.py: setup's check of our own dependency tree (pip's runs with --no-warn-conflicts,
since the venv sees unrelated system packages whose conflicts are not ours)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.paths import ROOT

CHECK = ROOT / "scripts" / "check_install.py"
SETUP = ROOT / "scripts" / "setup.sh"


def _dist(site: Path, name: str, version: str, *requires: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"  # the wheel spelling of the name
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", *(f"Requires-Dist: {r}" for r in requires)]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


def _check(site: Path, root: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, str(CHECK), root], capture_output=True, text=True, env=env, timeout=120)


def test_a_satisfied_tree_passes_silently_whatever_else_is_broken(tmp_path: Path) -> None:
    _dist(tmp_path, "kwfake-root", "1.0", "kwfake-dep>=2", "kwfake-tool; extra == 'dev'",
          "kwfake-absent; python_version < '3'")  # a marker that does not apply is not required
    _dist(tmp_path, "kwfake-dep", "2.1", "kwfake-leaf==1.*")
    _dist(tmp_path, "kwfake-leaf", "1.4")
    _dist(tmp_path, "kwfake-tool", "0.1")
    _dist(tmp_path, "kwfake-unrelated", "1.0", "kwfake-leaf>=9")  # someone else's conflict: not ours to judge
    result = _check(tmp_path, "kwfake-root[dev]")
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stderr


def test_each_unmet_requirement_of_ours_fails_with_its_name(tmp_path: Path) -> None:
    _dist(tmp_path, "kwfake-root", "1.0", "kwfake-dep>=2", "kwfake-tool; extra == 'dev'")
    _dist(tmp_path, "kwfake-dep", "2.1", "kwfake-leaf>=3")
    _dist(tmp_path, "kwfake-leaf", "1.4")
    plain = _check(tmp_path, "kwfake-root")  # without the extra, its tool is not needed
    assert plain.returncode == 1 and "kwfake-tool" not in plain.stderr and "with 1 unmet" in plain.stderr
    result = _check(tmp_path, "kwfake-root[dev]")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        'error: kwfake-root requires kwfake-tool; extra == "dev", which is not installed',
        "error: kwfake-dep requires kwfake-leaf>=3, but kwfake-leaf 1.4 is installed",
        "error: kwfake-root[dev] is installed with 2 unmet requirement(s)",
    ]


def test_this_install_of_kernelwright_meets_its_own_requirements() -> None:
    result = subprocess.run([sys.executable, str(CHECK), "kernelwright[dev]"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_setup_hands_pips_conflict_check_to_ours_after_each_install() -> None:
    lines = [line.strip() for line in SETUP.read_text().splitlines()]
    installs = [i for i, line in enumerate(lines) if " -m pip install " in line]
    assert installs and all("--no-warn-conflicts" in lines[i] for i in installs)
    ours = next(i for i in installs if "-e '.[dev,ray]'" in lines[i])
    assert lines[ours + 1] == "\"$VPY\" scripts/check_install.py 'kernelwright[dev,ray]'"  # before the stamp is written
    assert "set -euo pipefail" in lines  # so a failed install or check stops setup
